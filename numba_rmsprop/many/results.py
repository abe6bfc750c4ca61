"""The state of a group of runs and the batched result, filled run by run."""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import OptimizeResult

from ..frontend.checkpoint import RunCheckpoint, replay
from ..frontend.learning_rates import LR_BLOCK, LearningRates
from ..frontend.options import RMSPROP_OPTIONS, STOPS, x0_entry
from ..frontend.state import (
    FTOL,
    GTOL,
    NONFINITE_GRAD,
    NONFINITE_LOSS,
    NONFINITE_X0,
    OVERFLOW,
    T_GNORM,
    make_state,
)


class State:
    """A group's state (``make_state`` over its runs) and its learning rates.

    With ``runs_inner`` (the vectorized loop on the CPU) ``S`` is laid out
    ``(rows, k, n)``, each state row of all runs one contiguous block, for
    :func:`numba_rmsprop.frontend.step.many_step`; else ``(k, rows, n)``.
    """

    def __init__(self, st, runs, lr_table, learning, runs_inner=False):
        self.S, self.T, self.P, self.cfg, _, self.r_avg, self.counters = st
        self.runs_inner = runs_inner
        if runs_inner:
            self.S = np.ascontiguousarray(self.S.transpose(1, 0, 2))
        self.runs = runs
        self.lr_table = lr_table  # per-run constant rates, broadcast over a block
        self.learning = learning  # shared rates (LearningRates), or None
        # Every run has the same counters (and per-call scalars): one pass can update
        # all (and with one row of scalars).
        self.same_counters = bool((self.counters == self.counters[:1]).all())
        self.same_scalars = bool(lr_table is None and (self.P == self.P[:1]).all())

    def xs(self) -> np.ndarray:
        """The runs' iterates ``(k, n)`` (a view)."""
        return self.S[0] if self.runs_inner else self.S[:, 0, :]

    def row(self, q: int, r: int) -> np.ndarray:
        """State row ``r`` of run ``q`` (a view)."""
        return self.S[r, q] if self.runs_inner else self.S[q, r]


class Results:
    """The batched result, filled run by run."""

    def __init__(self, k, n, dtype, history):
        self.k, self.n = k, n
        self.x = np.zeros((k, n), dtype)
        self.fun = np.full(k, np.nan)
        self.jac = np.zeros((k, n), dtype)
        self.nit = np.zeros(k, dtype=np.int64)
        self.nev = np.zeros(k, dtype=np.int64)
        self.extra = np.zeros(k, dtype=np.int64)  # the final evaluation
        self.nepoch = np.zeros(k, dtype=np.int64)
        self.code = [None] * k  # a stop code of _compiled, "stop", or a limit
        self.f_last = np.full(k, np.nan)
        self.reuse = np.zeros(k, dtype=bool)
        self.gnorm = np.zeros(k)
        self.history = [[] for _ in range(k)] if history else None
        self.states = [None] * k  # each run's (S, T, P) views, for its checkpoint

    def finish(self, r, code, f, g) -> None:
        """Run ``r`` stopped with ``code`` at its evaluation of loss ``f``, gradient ``g``."""
        self.code[r] = code
        self.f_last[r] = f
        if g is not None:
            self.jac[r] = g

    def finish_limit(self, r, batch) -> None:
        if self.code[r] is None:  # (a run that never started keeps its code)
            self.code[r] = "maxiter" if self.nit[r] >= batch.maxiter[r] else "maxfev"

    def finish_unstarted(self, bad_x0) -> None:
        """The runs whose starting point is not finite: status 2, nothing evaluated."""
        for r in np.flatnonzero(bad_x0):
            self.finish(int(r), NONFINITE_X0, np.nan, np.full(self.n, np.nan))

    def x_now(self, st, runs):
        X = np.zeros((self.k, self.n), st.S.dtype)
        X[runs] = st.xs()
        return X

    def store(self, st, runs, batch) -> None:
        """The returned iterates and what the final evaluation can reuse (as nr.minimize)."""
        for q, r in enumerate(runs):
            r = int(r)
            code = self.code[r]
            raw = code in (NONFINITE_LOSS, NONFINITE_GRAD, NONFINITE_X0, OVERFLOW)
            self.x[r] = st.row(q, 0) if raw or st.r_avg is None else st.row(q, st.r_avg)
            self.gnorm[r] = st.T[q, T_GNORM]
            self.reuse[r] = raw or (code in (GTOL, FTOL) and not batch.batched and st.r_avg is None)
            if self.reuse[r]:
                self.fun[r] = self.f_last[r]
            S = st.S[:, q] if st.runs_inner else st.S[q]
            self.states[r] = (S, st.T[q], st.P[q])

    def set_final(self, r, f, g) -> None:
        self.fun[r] = f
        self.jac[r] = g
        self.extra[r] = 1

    def result(self, batch) -> OptimizeResult:
        k = self.k
        status = np.zeros(k, dtype=np.int64)
        messages = []
        for r in range(k):
            code = self.code[r]
            key = 99 if code == "stop" else _stop_key(batch, r, code)
            st_, msg = STOPS[key]
            status[r] = st_
            messages.append(msg.format(**_fields(batch, r, self, key == NONFINITE_X0)))
        cost = batch.cost
        res = OptimizeResult(
            x=self.x,
            fun=self.fun,
            jac=self.jac,
            nit=self.nit,
            nfev=(self.nev + self.extra) * cost,
            njev=self.nev + self.extra,
            status=status,
            success=status == 0,
            message=messages,
        )
        if batch.batched:
            res.nepoch = self.nepoch
        if self.history is not None:
            res.history = [np.concatenate(h) if h else np.zeros(0) for h in self.history]
        res.checkpoint = RunCheckpoints(lambda r: self._checkpoint(batch, r, res), k)
        return res

    def _checkpoint(self, batch, r, res) -> RunCheckpoint:
        """Run ``r``'s checkpoint, as its ``nr.minimize`` makes it (frontend/checkpoint.py)."""
        ended = None
        if self.code[r] not in ("maxiter", "maxfev"):
            ended = OptimizeResult(
                {k: (v[r] if k != "checkpoint" else None) for k, v in res.items()}
            )
            ended.pop("checkpoint", None)
            if "history" in ended:
                del ended["history"]
        d = batch.data
        rng_state, perm = replay(
            batch.rng_initial[r], int(self.nepoch[r]), d.n_samples or 0, bool(d.shuffle)
        )
        S, T, P = self.states[r]
        return RunCheckpoint(
            S=S,
            T=T,
            P=P,
            nit=int(self.nit[r]),
            nev=int(self.nev[r]),
            nepoch=int(self.nepoch[r]),
            perm=perm,
            rng_state=rng_state,
            fixed=batch.fixed_of(r),
            x=self.x[r],
            ended=ended,
        )


class RunCheckpoints(Sequence):
    """``res.checkpoint`` of a ``minimize_many`` result: run ``i``'s
    :class:`~numba_rmsprop.frontend.checkpoint.RunCheckpoint` at ``[i]``, made when first
    read (a batch of 20,000 runs would otherwise spend half its loop's time on them).
    It pickles and copies as the plain list of checkpoints."""

    def __init__(self, make: Callable[[int], RunCheckpoint], k: int) -> None:
        self._make, self._k, self._made = make, k, {}

    def __len__(self) -> int:
        return self._k

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._k))]
        i = operator.index(i)
        if i < 0:
            i += self._k
        if not 0 <= i < self._k:
            raise IndexError(f"run index out of range: {self._k} runs")
        if i not in self._made:
            self._made[i] = self._make(i)
        return self._made[i]

    def __eq__(self, other) -> bool:
        if not isinstance(other, (Sequence)) or isinstance(other, str):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # as a list's

    def __reduce__(self):
        return (list, (list(self),))

    def __repr__(self) -> str:
        return f"<{self._k} run checkpoints>"


def _stop_key(batch, r, code):
    """The :data:`~numba_rmsprop.frontend.api.STOPS` key of run ``r``."""
    if code not in ("maxiter", "maxfev"):
        return code
    loop = batch.loop  # run 0's; a tolerance given per run is given for every run
    return code + (", tol" if loop["gtol"] is not None or loop["ftol"] is not None else "")


def _fields(batch, r, res, x0_named: bool) -> dict:
    """The values run ``r``'s message names (its own options; the entry of ``x0`` that is
    not finite only where ``x0_named``: finding it costs a pass over the row)."""

    def val(name):
        if name in batch.per_run:
            return batch.per_run[name][r]
        return batch.loop[name]

    gtol = (
        batch.per_run["tol"][r]
        if "tol" in batch.per_run and "gtol" not in batch.per_run
        else val("gtol")
    )
    maxiter, maxfev = batch.maxiter[r], batch.maxfev[r]
    it, nev = int(res.nit[r]), int(res.nev[r])
    return dict(
        maxiter=int(maxiter) if math.isfinite(maxiter) else maxiter,
        maxfev=int(maxfev) if math.isfinite(maxfev) else None,
        gtol=gtol,
        ftol=val("ftol"),
        patience=val("patience"),
        gnorm=res.gnorm[r],
        f_last=res.f_last[r],
        step=f"step {it} (0-based optimizer call {it}, evaluation {nev})",
        x0_entry=x0_entry(batch.X0[r]) if x0_named else None,
    )


def stack_results(results, n, dtype) -> OptimizeResult:
    """``nr.minimize`` results, one per run, as one batched result."""
    res = OptimizeResult(
        x=np.stack([r.x for r in results]).astype(dtype, copy=False),
        fun=np.array([r.fun for r in results], dtype=np.float64),
        jac=np.stack([np.asarray(r.jac, dtype=dtype) for r in results]),
        nit=np.array([r.nit for r in results], dtype=np.int64),
        nfev=np.array([r.nfev for r in results], dtype=np.int64),
        njev=np.array([r.njev for r in results], dtype=np.int64),
        status=np.array([r.status for r in results], dtype=np.int64),
        success=np.array([r.success for r in results], dtype=bool),
        message=[r.message for r in results],
    )
    if all("nepoch" in r for r in results):
        res.nepoch = np.array([r.nepoch for r in results], dtype=np.int64)
    if all("history" in r for r in results):
        res.history = [r.history for r in results]
    res.checkpoint = [r.checkpoint for r in results]
    return res


class GroupStates:
    """The state arrays of a group of runs, per-run values filled in, for :class:`~.batch.Batch`."""

    def _values(self, name, runs=None, default=None):
        """Option ``name`` per run (an array over ``runs``), or its shared value."""
        if name in self.per_run:
            v = self.per_run[name]
            v = v if runs is None else [v[int(r)] for r in runs]
            return np.asarray(v, dtype=np.float64)
        return self.shared.get(name, default)

    def _state(self, group):
        """The group's state arrays (``make_state`` over its runs), per-run values filled in."""
        runs = group.runs
        spec = copy.copy(group.opt._spec)
        for name in self.per_run:
            if name in RMSPROP_OPTIONS and name != "learning_rate":
                setattr(spec, name, self._values(name, runs))
        if "gradient_accumulation_steps" in self.per_run:
            spec.accumulation_steps = self._values("gradient_accumulation_steps", runs)
        for option in ("clipnorm", "global_clipnorm", "clipvalue"):
            if option in self.per_run:
                spec.clip = self._values(option, runs)
        loop = self.loop
        gtol = loop["gtol"]
        if "gtol" in self.per_run or "tol" in self.per_run:
            gtol = self._values("gtol" if "gtol" in self.per_run else "tol", runs)
        ftol = self._values("ftol", runs) if "ftol" in self.per_run else loop["ftol"]
        patience = (
            self._values("patience", runs) if "patience" in self.per_run else loop["patience"]
        )
        tol_momentum = (
            self._values("tol_momentum", runs)
            if "tol_momentum" in self.per_run
            else loop["tol_momentum"]
        )
        initial_velocity = (
            self._values("initial_velocity", runs)
            if "initial_velocity" in self.per_run
            else group.opt.initial_velocity
        )
        st = make_state(
            spec,
            self.X0[runs],
            self.bounds,
            gtol=gtol,
            ftol=ftol,
            patience=patience,
            tol_momentum=tol_momentum,
            initial_velocity=initial_velocity,
        )
        if "learning_rate" in self.per_run:
            lrs = self._values("learning_rate", runs).astype(self.dtype)
            lr_table = np.broadcast_to(lrs[:, None], (runs.size, LR_BLOCK))
            learning = None
        else:
            learning = LearningRates(group.opt._learning_rate, self.dtype, self.limit.max())
            lr_table = None  # (a zero-argument callable takes each run's nr.minimize)
        inner = self.mode == "vectorized" and not self.device
        return State(st, runs, lr_table, learning, runs_inner=inner)
