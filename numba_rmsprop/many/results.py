"""The state of a group of runs and the batched result, filled run by run."""

from __future__ import annotations

import copy
import math
import operator
import string
from collections.abc import Callable, Sequence

import numpy as np

from ..frontend.checkpoint import RunCheckpoint, replay
from ..frontend.learning_rates import LR_BLOCK, LearningRates
from ..frontend.options import RMSPROP_OPTIONS, STOPS, x0_entry
from ..frontend.result import OptimizeResult
from ..frontend.state import (
    FTOL,
    GTOL,
    NONFINITE_GRAD,
    NONFINITE_LOSS,
    NONFINITE_X0,
    OK,
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


# Why a run ended, beside the stop codes of frontend/state.py (all >= 0): its limit, the
# callback, or not yet. Results keeps them as integers (array operations on k runs).
UNSET, MAXITER, MAXFEV, STOP = -4, -1, -2, -3
_CODE_OF = {None: UNSET, "maxiter": MAXITER, "maxfev": MAXFEV, "stop": STOP}
_NAME_OF = {MAXITER: "maxiter", MAXFEV: "maxfev", STOP: "stop"}


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
        self.code = np.full(k, UNSET, dtype=np.int64)  # a stop code of state.py, or below
        self.f_last = np.full(k, np.nan)
        self.reuse = np.zeros(k, dtype=bool)
        self.gnorm = np.zeros(k)
        self.history = [[] for _ in range(k)] if history else None
        # Where each run's (S, T, P) is, for its checkpoint: its group's state, its row.
        self.state_groups: list = []
        self.state_at = np.zeros((k, 2), dtype=np.int64)

    def finish(self, r, code, f, g) -> None:
        """Run ``r`` stopped with ``code`` at its evaluation of loss ``f``, gradient ``g``."""
        self.code[r] = _CODE_OF.get(code, code)
        self.f_last[r] = f
        if g is not None:
            self.jac[r] = g

    def finish_limit(self, r, batch) -> None:
        self.finish_limits(np.array([r], dtype=np.int64), batch)

    def finish_limits(self, rs, batch) -> None:
        """The runs ``rs`` reached their ``maxiter`` or ``maxfev`` (a run that never started
        keeps its code)."""
        rs = rs[self.code[rs] == UNSET]
        if rs.size:
            self.code[rs] = np.where(self.nit[rs] >= np.asarray(batch.maxiter)[rs], MAXITER, MAXFEV)

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
        codes = self.code[runs]
        raw = np.isin(codes, (NONFINITE_LOSS, NONFINITE_GRAD, NONFINITE_X0, OVERFLOW))
        rows = (lambda w: st.S[w]) if st.runs_inner else (lambda w: st.S[:, w])
        self.x[runs] = rows(0)
        if st.r_avg is not None:  # the EMA, except where the iterate itself is returned
            self.x[runs[~raw]] = rows(st.r_avg)[~raw]
        self.gnorm[runs] = st.T[:, T_GNORM]
        converged = np.isin(codes, (GTOL, FTOL)) & (not batch.batched and st.r_avg is None)
        reuse = raw | converged
        self.reuse[runs] = reuse
        self.fun[runs[reuse]] = self.f_last[runs[reuse]]
        self.state_at[runs, 0] = len(self.state_groups)
        self.state_at[runs, 1] = np.arange(runs.size)
        self.state_groups.append(st)

    def state_of(self, r):
        """Run ``r``'s ``(S, T, P)``: views of its group's state."""
        g, q = self.state_at[r]
        st = self.state_groups[g]
        return (st.S[:, q] if st.runs_inner else st.S[q]), st.T[q], st.P[q]

    def record_segment(self, runs, active, it, made, codes, flast, H, G) -> None:
        """A segment of a compiled loop from iteration ``it``: run ``runs[q]`` (``q`` in
        ``active``) made ``made[q]`` steps, then stopped with ``codes[q]`` (``OK``: it did
        not) at loss ``flast[q]`` and gradient ``G[q]``; ``H[q]``: its losses (or None)."""
        stopped = codes[active] != OK
        evaluated = made[active] + stopped
        self.nit[runs[active]] = it + made[active]
        self.nev[runs[active]] += evaluated
        if H is not None:
            for q, e in zip(active.tolist(), evaluated.tolist(), strict=True):
                self.history[int(runs[q])].append(H[q, :e].copy())
        for q in active[stopped].tolist():
            self.finish(int(runs[q]), int(codes[q]), float(flast[q]), G[q])

    def set_final(self, r, f, g) -> None:
        self.fun[r] = f
        self.jac[r] = g
        self.extra[r] = 1

    def set_finals(self, rs, f, G) -> None:
        """:meth:`set_final` for the runs ``rs`` (losses ``f``, gradients as rows of ``G``)."""
        self.fun[rs] = f
        self.jac[rs] = G
        self.extra[rs] = 1

    def result(self, batch) -> OptimizeResult:
        k = self.k
        status = np.zeros(k, dtype=np.int64)
        messages: list = [None] * k
        order = np.argsort(self.code, kind="stable")
        values, starts = np.unique(self.code[order], return_index=True)
        bounds = list(starts[1:]) + [k]
        for value, a, b in zip(values.tolist(), starts.tolist(), bounds, strict=True):
            rs = order[a:b].tolist()  # a few codes; each message made once per values
            code = _NAME_OF.get(value, value)
            key = 99 if code == "stop" else _stop_key(batch, rs[0], code)
            st_, msg = STOPS[key]
            status[rs] = st_
            names = _FIELD_NAMES.setdefault(
                msg, [f for _, f, _, _ in string.Formatter().parse(msg) if f]
            )
            varying = {"gnorm", "f_last", "step", "x0_entry"} | set(batch.per_run)
            if "tol" in batch.per_run:
                varying.add("gtol")
            if not varying.intersection(names):  # one message for the whole group
                text = msg.format(**_fields(batch, rs[0], self, names))
                for r in rs:
                    messages[r] = text
                continue
            made: dict = {}
            for r in rs:
                values = _fields(batch, r, self, names)
                hashable = tuple(values.items())
                text = made.get(hashable)
                if text is None:
                    text = made[hashable] = msg.format(**values)
                messages[r] = text
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
        if self.code[r] not in (MAXITER, MAXFEV):
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
        S, T, P = self.state_of(r)
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


_FIELD_NAMES: dict = {}  # message -> the fields it names


def _fields(batch, r, res, names) -> dict:
    """The values of the fields ``names`` of run ``r``'s message (its own options)."""

    def val(name):
        if name in batch.per_run:
            return batch.per_run[name][r]
        return batch.loop[name]

    def field(name):
        if name == "maxiter":
            maxiter = batch.maxiter[r]
            return int(maxiter) if math.isfinite(maxiter) else maxiter
        if name == "maxfev":
            maxfev = batch.maxfev[r]
            return int(maxfev) if math.isfinite(maxfev) else None
        if name == "gtol":
            if "tol" in batch.per_run and "gtol" not in batch.per_run:
                return batch.per_run["tol"][r]
            return val("gtol")
        if name in ("ftol", "patience"):
            return val(name)
        if name == "gnorm":
            return res.gnorm[r]
        if name == "f_last":
            return res.f_last[r]
        if name == "step":
            it, nev = int(res.nit[r]), int(res.nev[r])
            return f"step {it} (0-based optimizer call {it}, evaluation {nev})"
        if name == "x0_entry":  # finding it costs a pass over the row
            return x0_entry(batch.X0[r])
        raise KeyError(name)

    return {name: field(name) for name in names}


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
