"""The compiled loop of ``minimize_many``: a mixin of :class:`~.batch.Batch`.

For an ``@njit`` objective with ``jac=True``: the runs are spread over CPU
threads (:func:`numba_rmsprop.engine.threads.run_chunks`), each stepping
through :func:`~numba_rmsprop.frontend.segment.segment_loop` on its own rows
of the group's state (:func:`.kernels.many_segment`), in segments that end at
epoch and learning-rate-block boundaries.
"""

from __future__ import annotations

import numpy as np

from ..engine import threads as _threads
from ..engine.entries import EntryCache
from ..engine.jit import load_cached
from ..frontend.segment import batch_arguments
from ..frontend.state import OK
from .kernels import many_final, many_segment, pick_arguments

#: Entries of ``many_segment`` by objective and argument types (typing them again cost
#: about 3 ms a call).
SEGMENT_ENTRIES = EntryCache()


class NoCompile(Exception):
    """The compiled loop cannot take this objective (the message says why)."""


class CompiledRuns:
    """The compiled loop's methods, for :class:`~.batch.Batch`."""

    def _run_compiled(self, group, st, entry) -> None:
        """The compiled loop over the group's runs (see the module docstring)."""
        runs, res = group.runs, self.res
        m = runs.size
        active = np.arange(m, dtype=np.int64)
        it, epoch_pos, order = 0, 0, None
        codes = np.zeros(m, dtype=np.int64)
        made = np.zeros(m, dtype=np.int64)
        flast = np.full(m, np.nan)
        G = np.zeros((m, self.n), dtype=self.dtype)
        args = self.args_by_run
        marker = self._marker()
        limit = self.limit[runs]
        rng = self._group_rngs(group)
        while True:
            seg = self._segment(group, st, active, limit, it, epoch_pos, rng, order)
            if seg is None:
                break
            active, nsteps, lr_off, LR, start, order = seg
            if self.callback is not None:
                nsteps = 1
            elif self.bar is not None:
                nsteps = self.bar.steps(nsteps)  # short enough to refresh the display
            left = np.zeros(m, dtype=np.int64)
            left[active] = np.minimum(limit[active] - it, nsteps).astype(np.int64)
            H = np.full((m, nsteps), np.nan) if res.history is not None else None
            _threads.run_chunks(
                entry,
                active.size,
                self.fun,
                st.S,
                st.T,
                st.P,
                st.cfg,
                st.counters,
                args,
                marker,
                order,
                start,
                self.data.batch_size if self.batched else 1,
                self.data.n_samples if self.batched else 1,
                LR,
                lr_off,
                it,
                left,
                active,
                runs,
                codes,
                made,
                flast,
                H,
                G,
            )
            res.record_segment(runs, active, it, made, codes, flast, H, G)
            self._show(it + int(left.max()), active.size, flast[active])
            active = active[codes[active] == OK]  # runs at their limit drop out above
            it += nsteps
            if self.batched:
                epoch_pos = (epoch_pos + nsteps) % self.data.n_batches
            if self.callback is not None and self._call_back(st, group, runs, active, flast, codes):
                break
        res.store(st, runs, self)
        self._compiled_finals(st, runs)

    def _compiled_finals(self, st, runs) -> None:
        """``fun`` and ``jac`` on all data at the returned ``x`` (as nr.minimize does), for
        the runs whose last evaluation was not there; each run on a thread's share."""
        res = self.res
        need = np.flatnonzero(~res.reuse[runs])
        if not need.size:
            return
        F = np.zeros(self.k)
        Gall = np.zeros((self.k, self.n), self.dtype)
        ok = np.zeros(self.k, dtype=np.int64)
        Xall = np.zeros((self.k, self.n), self.dtype)
        Xall[runs[need]] = res.x[runs[need]]
        final = self._compile_final(Xall, runs[need], F, Gall, ok)
        _threads.run_chunks(
            final,
            need.size,
            self.fun,
            Xall,
            self.args_by_run,
            self._marker(),
            runs[need],
            F,
            Gall,
            ok,
        )
        rs = runs[need]
        bad = rs[ok[rs] == 0]
        if bad.size:
            raise ValueError(
                f"The final evaluation of run {bad[0]} returned a loss or "
                f"gradient of the wrong size (n = {self.n})."
            )
        res.set_finals(rs, F[rs], Gall[rs])

    def _compile(self, group, st):
        """Entry point of ``many_segment`` for this batch's types."""
        from numba import typeof, types

        marker = self._marker()
        order0 = None
        if self.batched:
            order0 = (
                1 if not self.data.shuffle else np.zeros((1, self.data.n_samples), dtype=np.int64)
            )
        LR, H = self._rates_and_history(st)
        typed = (np.empty(0, self.dtype), self.args_by_run, marker, order0, st.S, st.T, st.P)
        key = EntryCache.key(self.fun, (*typed, st.cfg, st.counters, LR, H))
        entry = SEGMENT_ENTRIES.get(key)
        if entry is not None:
            return entry
        picked = self._picked_types()
        i64 = types.int64
        bsig = (picked, i64, i64, typeof(order0[0] if isinstance(order0, np.ndarray) else order0))
        batch_arguments.compile(bsig)
        batch_types = batch_arguments.overloads[bsig].signature.return_type
        ftype = self._function_type(typeof(st.S[0, 0].copy()), batch_types)
        sig = (
            ftype,
            typeof(st.S),
            typeof(st.T),
            typeof(st.P),
            typeof(st.cfg),
            typeof(st.counters),
            typeof(self.args_by_run),
            typeof(marker),
            typeof(order0),
            i64,
            i64,
            i64,
            typeof(LR),
            i64,
            i64,
            typeof(np.zeros(1, np.int64)),
            typeof(np.zeros(1, np.int64)),
            typeof(np.zeros(1, np.int64)),
            typeof(np.zeros(1, np.int64)),
            typeof(np.zeros(1, np.int64)),
            typeof(np.zeros(1)),
            typeof(H),
            typeof(np.zeros((1, self.n), self.dtype)),
            i64,
            i64,
        )
        entry = many_segment.compile(sig)
        SEGMENT_ENTRIES.put(key, entry)
        return entry

    def _rates_and_history(self, st):
        """Stand-ins of the learning-rate table and the history buffer that a compiled
        loop is typed with (the per-run table, or a schedule's block; None without
        ``return_history``)."""
        LR = st.lr_table if st.learning is None else st.learning.block(0)[None, :]
        H = np.zeros((1, 1)) if self.res.history is not None else None
        return LR, H

    def _function_type(self, x_type, arg_types):
        """The first-class function type of ``fun`` called with these argument types."""
        from numba import types

        fargs = (x_type,) + tuple(arg_types)
        try:
            load_cached(self.fun, fargs)
            self.fun.compile(fargs)
        except Exception as exc:
            text = str(exc).strip()
            raise NoCompile(
                "`fun` did not compile for the runs' arguments "
                f"({type(exc).__name__}: {text.splitlines()[0] if text else ''})"
            ) from None
        ret = self.fun.overloads[fargs].signature.return_type
        return types.FunctionType(ret(*fargs))

    def _picked_types(self):
        from numba import typeof, types

        sig = (typeof(self.args_by_run), typeof(self._marker()), types.int64)
        pick_arguments.compile(sig)
        return pick_arguments.overloads[sig].signature.return_type

    def _compile_final(self, X, runs, F, G, ok):
        """Entry point of ``many_final`` (the objective on all data, per run)."""
        from numba import typeof, types

        ftype = self._function_type(typeof(X[0]), self._picked_types())
        i64 = types.int64
        sig = (
            ftype,
            typeof(X),
            typeof(self.args_by_run),
            typeof(self._marker()),
            typeof(runs),
            typeof(F),
            typeof(G),
            typeof(ok),
            i64,
            i64,
        )
        return many_final.compile(sig)

    def _marker(self) -> tuple:
        """Per argument: True for the per-run ones (``run_args``), None for shared ones."""
        return tuple(True if j in self.run_pos else None for j in range(len(self.args)))
