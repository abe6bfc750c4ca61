"""What combines with what: one table of the entry points and the features a call uses.

``TABLE[entry][feature]`` says what a call of ``entry`` that uses ``feature``
does: it works (:data:`WORKS`, or :class:`Works` with a note on how), it is
refused (:class:`Refused`: the exception and why), or the feature does not
exist there (the cell is absent). :data:`PAIRS` holds the refusals of two
features together, whatever the entry.

The entry points call :func:`refuse` with the features a call uses before
anything runs (no objective call, no kernel launch, no Dask task), so every
refusal's message comes from here and names the combination.
``tests/test_composition.py`` generates its tests from the table: every cell
that works is run on a tiny problem and compared with its reference, every
refused one is checked to fail first. ``markdown()`` renders the table for the
docs page ``docs/composition.md`` ("What combines with what").

This module imports nothing from the package: every layer may read it.
"""

from __future__ import annotations

from typing import NamedTuple

#: The entry points (rows), in the order of the docs' table.
ENTRIES = {
    "apply": "RMSprop.apply",
    "apply_cuda": "RMSprop.apply, CUDA arrays",
    "minimize": "nr.minimize, Python loop",
    "minimize_compiled": "nr.minimize, @njit objective",
    "many_compiled": "minimize_many, @njit objective",
    "many_vectorized": "minimize_many, vectorized=True",
    "many_vectorized_compiled": "minimize_many, vectorized=True, @njit objective",
    "many_each": "minimize_many, other objectives",
    "many_client": "minimize_many(client=...)",
    "many_cuda": "minimize_many, CUDA X0",
}

#: The features (columns): data sources, the objective's forms, options, stopping
#: rules, state.
FEATURES = {
    "dask_data": "dask arrays in args",
    "per_run_data": "per-run arrays (run_args)",
    "minibatches": "batch_size",
    "per_run_seed": "a seed per run",
    "callback": "callback",
    "finite_differences": "finite-difference jac",
    "callable_lr": "zero-argument callable learning_rate",
    "options": "every RMSprop option and flavor",
    "per_run_options": "per-run option values",
    "bounds": "bounds",
    "tolerances": "gtol / ftol",
    "maxiter_inf": "maxiter=inf (with another rule)",
    "checkpoint": "checkpoint / resume",
    "pickle": "pickle, copy.deepcopy",
    "from_config": "get_config / from_config",
}


class Works(NamedTuple):
    """The combination works; ``note`` says how, where that is not obvious."""

    note: str = ""


class Refused(NamedTuple):
    """The combination is refused before anything runs, with ``error(reason)``."""

    error: type
    reason: str


WORKS = Works()

_ONE_RUN_EACH = Works("each run's nr.minimize")
_PYTHON_LOOP = Works("the Python loop")
_ON_WORKERS = Works("as the local call, on the workers")
_SCHEDULE = Refused(
    ValueError,
    "a zero-argument callable is not supported here; use a schedule (a function of the step)",
)

TABLE: dict = {
    "apply": {
        "options": WORKS,
        "checkpoint": Works("state_dict / load_state_dict"),
        "pickle": WORKS,
        "from_config": WORKS,
    },
    "apply_cuda": {
        "options": WORKS,
        "checkpoint": Works("state_dict to host arrays, load_state_dict"),
        "pickle": Refused(
            TypeError,
            "state on a CUDA device does not pickle; save get_config() and state_dict() "
            "(host NumPy arrays) instead",
        ),
        "from_config": WORKS,
    },
    "minimize": {
        "dask_data": Works("streamed through a shuffle buffer"),
        "minibatches": WORKS,
        "callback": WORKS,
        "finite_differences": WORKS,
        "callable_lr": WORKS,
        "options": WORKS,
        "bounds": WORKS,
        "tolerances": WORKS,
        "maxiter_inf": WORKS,
        "checkpoint": Works("options={'resume': res}"),
    },
    "minimize_compiled": {
        "dask_data": Works("streamed through a shuffle buffer"),
        "minibatches": WORKS,
        "callback": _PYTHON_LOOP,
        "callable_lr": _PYTHON_LOOP,
        "options": WORKS,
        "bounds": WORKS,
        "tolerances": WORKS,
        "maxiter_inf": WORKS,
        "checkpoint": Works("options={'resume': res}"),
    },
    "many_compiled": {
        "dask_data": _ONE_RUN_EACH,
        "per_run_data": WORKS,
        "minibatches": WORKS,
        "per_run_seed": WORKS,
        "callback": Works("one step per round"),
        "callable_lr": _ONE_RUN_EACH,
        "options": WORKS,
        "per_run_options": WORKS,
        "bounds": WORKS,
        "tolerances": WORKS,
        "maxiter_inf": WORKS,
        "checkpoint": Works("resume: each run's nr.minimize continues"),
    },
    "many_vectorized": {
        "dask_data": Refused(
            ValueError,
            "each run's nr.minimize streams its own minibatches from dask arrays; use "
            "vectorized=False, or load them first (np.asarray(a))",
        ),
        "per_run_data": WORKS,
        "minibatches": Works("one order for every run"),
        "per_run_seed": Refused(
            ValueError, "every run draws the same minibatches: give one seed, not one per run"
        ),
        "callback": WORKS,
        "finite_differences": Refused(
            ValueError,
            "jac must be True (fun returns (f, G)) or a callable jac(X, *args) -> G; finite "
            "differences need vectorized=False",
        ),
        "callable_lr": _SCHEDULE,
        "options": WORKS,
        "per_run_options": WORKS,
        "bounds": WORKS,
        "tolerances": WORKS,
        "maxiter_inf": WORKS,
        "checkpoint": Refused(
            NotImplementedError,
            "resume continues each run with its own nr.minimize, which calls a per-run "
            "objective; resume the runs with a per-run objective (vectorized=False)",
        ),
    },
    "many_each": {
        "dask_data": Works("streamed by each run"),
        "per_run_data": WORKS,
        "minibatches": WORKS,
        "per_run_seed": WORKS,
        "callback": Refused(
            ValueError, "a callback needs vectorized=True or an @njit fun with jac=True"
        ),
        "finite_differences": WORKS,
        "callable_lr": WORKS,
        "options": WORKS,
        "per_run_options": WORKS,
        "bounds": WORKS,
        "tolerances": WORKS,
        "maxiter_inf": WORKS,
        "checkpoint": Works("resume"),
    },
    "many_client": {
        "dask_data": Works("per-run rows read by the workers; shared arrays streamed"),
        "per_run_data": _ON_WORKERS,
        "minibatches": _ON_WORKERS,
        "per_run_seed": _ON_WORKERS,
        "callback": Refused(
            ValueError,
            "the runs step on the workers: leave the callback out (disp=True shows the "
            "blocks' progress)",
        ),
        "finite_differences": _ON_WORKERS,
        "options": _ON_WORKERS,
        "per_run_options": _ON_WORKERS,
        "bounds": _ON_WORKERS,
        "tolerances": _ON_WORKERS,
        "maxiter_inf": _ON_WORKERS,
        "checkpoint": Works("resume: the blocks' checkpoints go to the workers"),
    },
    "many_cuda": {
        "dask_data": Refused(ValueError, "the state lives on the GPU: pass device arrays"),
        "per_run_data": Works("device arrays, rows gathered on the device"),
        "minibatches": Refused(
            ValueError, "pass the batch's rows from the objective, or use a host X0"
        ),
        "callback": WORKS,
        "finite_differences": Refused(
            ValueError, "jac must be True (fun returns device (f, G)) or a callable"
        ),
        "callable_lr": _SCHEDULE,
        "options": WORKS,
        "per_run_options": WORKS,
        "bounds": WORKS,
        "tolerances": WORKS,
        "maxiter_inf": WORKS,
        "checkpoint": Refused(
            NotImplementedError,
            "resume continues each run with its own nr.minimize on the host; resume the "
            "runs with a host X0 and a per-run objective",
        ),
    },
}

#: With an ``@njit`` fun and ``jac=True`` the vectorized runs take the compiled loop,
#: which refuses what the Python vectorized loop refuses; a callback or minibatches keep
#: the Python vectorized loop (which calls the compiled fun). Finite differences are not
#: a feature of this row: without ``jac=True`` the call is the Python row's, which
#: refuses them.
TABLE["many_vectorized_compiled"] = {
    **{f: c for f, c in TABLE["many_vectorized"].items() if f != "finite_differences"},
    "minibatches": Works("the Python vectorized loop; one order for every run"),
    "callback": Works("the Python vectorized loop"),
}

#: Two features that never combine, whatever the entry.
PAIRS = {
    ("checkpoint", "dask_data"): Refused(
        NotImplementedError,
        "resuming a streamed run is not supported: the shuffle buffer's content is not in "
        "a checkpoint",
    ),
}


def refusal(entry: str, features) -> Refused | None:
    """The first refusal of ``entry`` with ``features`` (in the table's column order), or
    None when the call may run."""
    used = [f for f in FEATURES if f in set(features)]
    for f in used:
        cell = TABLE[entry].get(f)
        if isinstance(cell, Refused):
            return Refused(cell.error, f"{ENTRIES[entry]} with {FEATURES[f]}: {cell.reason}.")
    for (a, b), cell in PAIRS.items():
        if a in used and b in used:
            return Refused(
                cell.error, f"{ENTRIES[entry]} with {FEATURES[a]} and {FEATURES[b]}: {cell.reason}."
            )
    return None


def refuse(entry: str, features) -> None:
    """Raise the table's exception when ``entry`` refuses one of ``features``."""
    r = refusal(entry, features)
    if r is not None:
        raise r.error(r.reason)


#: Short column titles of :func:`markdown`.
SHORT = {
    "apply": "apply",
    "apply_cuda": "apply, CUDA",
    "minimize": "minimize",
    "minimize_compiled": "minimize, @njit",
    "many_compiled": "many, @njit",
    "many_vectorized": "many, vectorized",
    "many_vectorized_compiled": "many, vectorized @njit",
    "many_each": "many, other fun",
    "many_client": "many, client",
    "many_cuda": "many, CUDA X0",
}


def markdown() -> str:
    """The table as Markdown (a row per feature, a column per entry point; ``yes``, ``no``
    or empty where the feature does not exist), then the notes and the refusals."""
    entries = list(ENTRIES)
    notes: dict = {}
    lines = [
        "| | " + " | ".join(SHORT[e] for e in entries) + " |",
        "|---" * (len(entries) + 1) + "|",
    ]
    for f, title in FEATURES.items():
        cells = []
        for e in entries:
            cell = TABLE[e].get(f)
            if cell is None:
                cells.append("")
            elif isinstance(cell, Refused):
                cells.append("no")
            elif cell.note:
                mark = notes.setdefault(cell.note, len(notes) + 1)
                cells.append(f"yes ({mark})")
            else:
                cells.append("yes")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", "Columns: " + "; ".join(f"{SHORT[e]}: `{ENTRIES[e]}`" for e in entries) + "."]
    lines += ["", "Notes: " + "; ".join(f"({i}) {n}" for n, i in notes.items()) + "."]
    lines += ["", "Refused (before anything runs):", ""]
    for e in entries:
        for f, cell in TABLE[e].items():
            if isinstance(cell, Refused):
                lines.append(f"- {ENTRIES[e]} with {FEATURES[f]}: {cell.reason}.")
    for (a, b), cell in PAIRS.items():
        lines.append(f"- {FEATURES[a]} with {FEATURES[b]}, anywhere: {cell.reason}.")
    return "\n".join(lines)
