"""Continuing a ``minimize`` run exactly: ``options={"resume": res}``.

Every result carries ``res.checkpoint``, a :class:`RunCheckpoint`: the run's
state arrays (the iterate, RMSprop's state, the tolerance averages, the
per-call scalars), its counters, and where its minibatches stood (the epoch,
the epoch's order, the generator). ``nr.minimize(fun, res.x, ..., options=
{..., "maxiter": 2000, "resume": res})`` then continues bit for bit as the run
would have gone on had its limit been 2000 all along (``maxiter`` and
``maxfev`` count the whole run). A run that ended by another rule (a
tolerance, a non-finite value, the callback) had ended anyway: resuming it
returns its result again.

What defines the run must be given again, unchanged (:func:`fixed_options`:
the optimizer's options but the learning rate, the bounds, the data's length,
``batch_size``, ``shuffle``, ``data_args``, ``tol_momentum``, an integer
``seed``); ``maxiter``, ``maxfev``, ``gtol``, ``ftol``, ``patience``,
``learning_rate``, ``callback``, ``disp`` and ``return_history`` may change
(``return_history`` then holds the continuation's losses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .state import T_FTOL, T_GTOL, T_PATIENCE


def _same(a, b) -> bool:
    """Equal values, arrays and nested dicts or lists of them included (bit for bit)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and (a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True  # NaN
    return bool(a == b)


@dataclass(frozen=True, eq=False)
class RunCheckpoint:
    """What a continuation of one ``minimize`` run needs (see the module docstring).

    Attributes
    ----------
    S, T, P : ndarray
        The run's state arrays (:mod:`numba_rmsprop.frontend.state`).
    nit, nev : int
        Optimizer calls and loop evaluations made (the final evaluation not counted).
    nepoch : int
        Epochs begun (with ``batch_size``).
    perm : ndarray or None
        The current epoch's order of the rows (None without shuffling).
    rng_state : dict or None
        The minibatch generator's ``bit_generator.state``, after ``perm`` was drawn.
    fixed : dict
        The options a continuation must repeat (:func:`fixed_options`).
    x : ndarray
        The result's ``x``: a continuation's ``x0`` must be it.
    ended : OptimizeResult or None
        The result of a run that ended by a rule other than its limits.
    """

    S: np.ndarray
    T: np.ndarray
    P: np.ndarray
    nit: int
    nev: int
    nepoch: int
    perm: Any
    rng_state: Any
    fixed: dict
    x: Any = None
    ended: Any = None

    def __eq__(self, other) -> bool:
        """The same state, bit for bit (what continuing from either gives)."""
        if not isinstance(other, RunCheckpoint):
            return NotImplemented
        names = self.__dataclass_fields__
        return all(_same(getattr(self, k), getattr(other, k)) for k in names)

    __hash__ = None  # mutable arrays inside: not hashable

    def __repr__(self) -> str:
        # short: it shows in every printed result (the arrays are the run's whole state)
        ended = "" if self.ended is None else ", ended"
        return (
            f"<RunCheckpoint: step {self.nit}, {self.nev} evaluations, epoch {self.nepoch}, "
            f"{self.fixed.get('n')} {self.fixed.get('dtype')} parameters{ended}>"
        )


def fixed_options(config: dict, n: int, dtype, loop: dict, bounds, n_samples) -> dict:
    """The options that define a run, in comparable form (see the module docstring):
    ``config`` is its optimizer's ``get_config()``, ``loop`` its loop options (or those
    this needs), ``bounds`` None or ``(lb, ub)`` in float64."""
    seed = loop["seed"]
    return dict(
        {k: v for k, v in config.items() if k not in ("learning_rate", "name")},
        n=n,
        dtype=np.dtype(dtype).name,
        bounds=None if bounds is None else (bounds[0].tolist(), bounds[1].tolist()),
        batch_size=loop["batch_size"],
        shuffle=loop["shuffle"] if loop["batch_size"] else None,
        data_args=None if loop["data_args"] is None else list(loop["data_args"]),
        n_samples=n_samples,
        tol_momentum=loop["tol_momentum"],
        seed=seed if seed is None or isinstance(seed, (int, np.integer)) else "a generator",
    )


def check_resume(checkpoint, fixed: dict, seed_given: bool, x0) -> RunCheckpoint:
    """``checkpoint`` (a :class:`RunCheckpoint`, or a result carrying one) if this run may
    continue it, else a ``ValueError``/``TypeError`` naming what differs."""
    ckpt = getattr(checkpoint, "checkpoint", checkpoint)
    if not isinstance(ckpt, RunCheckpoint):
        raise TypeError(
            "`resume` must be the result of an earlier nr.minimize (or its `.checkpoint`); "
            f"got {type(checkpoint).__name__}."
        )
    differ = [
        f"{name}: {ckpt.fixed[name]!r} then, {value!r} now"
        for name, value in fixed.items()
        if ckpt.fixed.get(name) != value and not (name == "seed" and not seed_given)
    ]
    if ckpt.x is not None and not np.array_equal(x0, ckpt.x):
        raise ValueError(
            "`x0` must be the resumed result's `x` (the run continues from its own state)."
        )
    if differ:
        raise ValueError(
            "`resume` continues a run made with other options (" + "; ".join(differ) + "). "
            "Give the run's options again; only maxiter, maxfev, gtol, ftol, patience, "
            "learning_rate, callback, disp and return_history may change."
        )
    return ckpt


def replay(initial_state, nepoch: int, n_samples: int, shuffle: bool):
    """``(rng_state, perm)`` of a generator that starts at ``initial_state`` and draws one
    ``permutation(n_samples)`` per epoch for ``nepoch`` epochs (how every run draws its
    minibatches), for the checkpoints of ``minimize_many``'s runs."""
    if initial_state is None:
        return None, None
    rng = np.random.default_rng()
    rng.bit_generator.state = initial_state
    perm = None
    if shuffle:
        for _ in range(nepoch):
            perm = rng.permutation(n_samples)
    return rng.bit_generator.state, perm


class Resumable:
    """Continuing from a checkpoint and making one, for :class:`~.run.Run`."""

    def _continue(self, ckpt: RunCheckpoint) -> None:
        """Take the checkpoint's state; this run's tolerances and learning rate stand."""
        if ckpt.ended is None and self.maxiter < ckpt.nit:
            raise ValueError(
                f"`maxiter={self.maxiter}` is below the {ckpt.nit} optimizer calls the resumed "
                "run already made (maxiter counts the whole run)."
            )
        if ckpt.ended is None and self.maxfev is not None and self.maxfev < ckpt.nev * self.cost:
            raise ValueError(
                f"`maxfev={self.maxfev}` is below the {ckpt.nev * self.cost} evaluations the "
                "resumed run already made (maxfev counts the whole run)."
            )
        tol = [T_GTOL, T_FTOL, T_PATIENCE]
        new = self.T[tol].copy()
        self.S[...], self.T[...], self.P[...] = ckpt.S, ckpt.T, ckpt.P
        self.T[tol] = new
        if self.batched:
            self.data.nepoch, self.data.perm = ckpt.nepoch, ckpt.perm
            self.data.rng.bit_generator.state = ckpt.rng_state

    def _checkpoint(self, x, ended) -> RunCheckpoint:
        """What ``options={"resume": res}`` continues from (frontend/checkpoint.py)."""
        d = self.data
        return RunCheckpoint(
            S=self.S,
            T=self.T,
            P=self.P,
            nit=self.it,
            nev=self.nev,
            nepoch=d.nepoch,
            perm=d.perm if self.batched else None,
            rng_state=d.rng.bit_generator.state if self.batched else None,
            fixed=self.fixed,
            x=x,
            ended=ended,
        )
