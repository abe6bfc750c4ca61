"""The checks and per-run options of ``minimize_many``, made before anything runs."""

from __future__ import annotations

import numpy as np

from ..engine import arrays
from ..engine.hyperparameters import _is_integer
from ..frontend.data import positions
from ..optimizer import RMSprop

#: Options that may hold one value per run.
PER_RUN_OPTIONS = tuple(
    h.name for h in RMSprop._hyperparameters if h.option and not isinstance(h.default, bool)
) + ("maxiter", "maxfev", "gtol", "tol", "ftol", "patience", "tol_momentum", "seed")


# ===================================================================== checks
def check_X0(X0) -> np.ndarray:
    """``X0`` as a 2-D float32/float64 array ``(k, n)`` (copied). A run whose row is not
    finite ends at once with status 2, as its ``nr.minimize`` does."""
    try:
        a = np.asarray(X0)
    except Exception as exc:
        raise TypeError(f"`X0` must be a 2-D array of real numbers: {exc}") from None
    if a.ndim != 2:
        raise ValueError(f"`X0` must be 2-D, (runs, parameters); got shape {a.shape}.")
    if a.dtype.kind == "c":
        raise TypeError("`X0` must be real; got a complex array.")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"`X0` must hold real numbers; got dtype {a.dtype}.")
    dt = np.float32 if a.dtype == np.float32 else np.float64
    X = np.array(a, dtype=dt, order="C")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"`X0` must have at least one run and one parameter; got shape {X.shape}.")
    return X


def check_run_args(args: tuple, run_args, k: int) -> dict:
    """The per-run arguments: ``{position: axis}``, sorted by position.

    An entry of ``run_args`` is a position (the runs along axis 0) or a pair
    ``(position, axis)`` naming the axis of that argument that holds the
    ``k`` runs (negative axes counted from the end). Each is checked to be an
    array with ``k`` entries along that axis.
    """
    if isinstance(run_args, (str, bytes)) or not hasattr(run_args, "__iter__"):
        raise TypeError(
            f"`run_args` must be a sequence of positions in `args` or (position, axis) "
            f"pairs; got {run_args!r}."
        )
    pos, axes = [], []
    for entry in run_args:
        if isinstance(entry, (tuple, list)):
            if len(entry) != 2 or not all(_is_integer(v) for v in entry):
                raise ValueError(
                    f"`run_args` entry {entry!r} must be a position or a pair "
                    "(position, axis) of integers."
                )
            pos.append(entry[0])
            axes.append(int(entry[1]))
        else:
            pos.append(entry)
            axes.append(0)
    idx = positions(args, pos, "run_args")  # checked, sorted, negatives resolved
    by_pos: dict = {}
    for p_, ax in zip(pos, axes, strict=True):
        j = int(p_) % len(args)
        shape = tuple(getattr(args[j], "shape", None) or np.shape(args[j]))
        if not -len(shape) <= ax < len(shape):
            raise ValueError(
                f"`run_args` names axis {ax} of args[{j}], which has shape {shape} (no such axis)."
            )
        ax %= len(shape)
        if by_pos.get(j, ax) != ax:
            raise ValueError(f"`run_args` names args[{j}] twice, with different axes.")
        by_pos[j] = ax
        if shape[ax] != k:
            raise ValueError(
                f"`run_args` names args[{j}], which must hold one entry per run: axis "
                f"{ax} of length {k} (X0 has {k} runs); got shape {shape}."
            )
    return {j: by_pos[j] for j in idx}


def take_runs(a, axis: int, runs):
    """The runs ``runs`` (an index, an index array or a slice) of a per-run argument ``a``
    along ``axis``: run ``i``'s own argument for an integer, the selected runs (along
    the same axis) otherwise."""
    if axis == 0:
        return a[runs]
    return a[(slice(None),) * axis + (runs,)]


def split_options(options: dict, k: int) -> tuple:
    """``(shared, per_run)``: the options, and those given as ``k`` per-run values."""
    shared, per_run = {}, {}
    for name, value in options.items():
        if (
            isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim)
        ) and name not in ("data_args", "finite_diff_rel_step", "resume"):
            if name not in PER_RUN_OPTIONS:
                raise ValueError(
                    f"`options[{name!r}]` is shared by every run; only numeric options "
                    f"take one value per run ({', '.join(PER_RUN_OPTIONS)})."
                )
            values = (
                list(np.asarray(value, dtype=object).reshape(-1))
                if isinstance(value, np.ndarray)
                else list(value)
            )
            if np.ndim(value) != 1 or len(values) != k:
                raise ValueError(
                    f"`options[{name!r}]` must be one number or a sequence of "
                    f"{k} numbers (one per run); got {len(values)} values."
                )
            for i, v in enumerate(values):
                if (
                    isinstance(v, (bool, np.bool_))
                    or not isinstance(v, (int, float, np.number))
                    or (name == "seed" and not _is_integer(v))
                ):
                    raise TypeError(
                        f"`options[{name!r}][{i}]` must be a number; got {v!r}. A per-run "
                        "sequence holds numbers only (leave the option out to turn it off)."
                    )
            per_run[name] = values
        else:
            shared[name] = value
    return shared, per_run


def run_options(shared: dict, per_run: dict, i: int) -> dict:
    """The options of run ``i`` (what its ``nr.minimize`` call would get)."""
    o = dict(shared)
    for name, values in per_run.items():
        o[name] = values[i]
    return o


def is_device_array(a) -> bool:
    if isinstance(a, np.ndarray):
        return False
    return arrays.is_cuda_array(a)
