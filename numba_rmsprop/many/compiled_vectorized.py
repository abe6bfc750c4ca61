"""The compiled vectorized loop of ``minimize_many``: a mixin of :class:`~.batch.Batch`.

With ``vectorized=True`` and an ``@njit`` ``fun`` (``jac=True``, no callback, no
minibatches), the group's runs go through :func:`.columns.columns_blocks` in
blocks of columns on the CPU threads; Python runs only between segments
(learning-rate blocks, display refreshes). The kernels, and what a block does
each step, are in :mod:`.columns`.
"""

from __future__ import annotations

import numpy as np

from ..engine.entries import EntryCache
from ..frontend.state import OK

#: Entries of :func:`.columns.columns_blocks` by objective and argument types (typing
#: them again cost 3 ms a call: 3% of 2,000 runs x 2,000 steps on two threads).
COLUMN_ENTRIES = EntryCache()


class CompiledVectorizedRuns:
    """The compiled vectorized loop's methods, for :class:`~.batch.Batch`."""

    def _columns_possible(self) -> bool:
        """Whether the compiled vectorized loop (:mod:`.columns`) may run this batch: its
        row of the composition table (an ``@njit`` ``fun`` with ``jac=True``, not
        ``compiled=False``), no callback, no minibatches."""
        return bool(
            self.entry == "many_vectorized_compiled" and self.callback is None and not self.batched
        )

    def _columns_args(self) -> tuple:
        """``args`` with each per-run argument C-contiguous (itself when it is already)."""
        return tuple(
            np.ascontiguousarray(a) if j in self.run_axis else a for j, a in enumerate(self.args)
        )

    def _compile_columns(self, st):
        """Entry point of :func:`.columns.columns_blocks` for this batch's types (raises
        :class:`.compiled.NoCompile` when ``fun`` cannot be called from it)."""
        from numba import typeof, types

        from .columns import block_arguments, columns_blocks, marks_for
        from .compiled import NoCompile

        args = self._columns_args()
        marks = marks_for(args, self.run_axis)
        LR, H = self._rates_and_history(st)
        typed = (np.empty(0, self.dtype), args, marks, st.S, st.T, st.P, st.cfg, st.counters, LR, H)
        key = EntryCache.key(self.fun, typed)
        entry = COLUMN_ENTRIES.get(key)
        if entry is not None:
            return entry
        ids = np.zeros(1, np.int64)
        try:
            sig = (typeof(args), typeof(marks), typeof(ids), types.boolean)
            block_arguments.compile(sig)
        except Exception as exc:
            text = str(exc).strip()
            raise NoCompile(
                "its arguments cannot be passed in compiled code "
                f"({type(exc).__name__}: {text.splitlines()[0] if text else ''})"
            ) from None
        arg_types = block_arguments.overloads[sig].signature.return_type
        ftype = self._function_type(typeof(np.zeros((1, 1), self.dtype)), arg_types)
        ret = ftype.signature.return_type
        if not (
            isinstance(ret, types.BaseTuple)
            and len(ret) == 2
            and isinstance(ret[0], types.Array)
            and ret[0].ndim == 1
            and isinstance(ret[1], types.Array)
            and ret[1].ndim == 2
        ):
            raise NoCompile(
                f"`fun` returns {ret}, not a pair of arrays (f of shape (m,), G of shape (n, m))"
            )
        i64, b1 = types.int64, types.boolean
        vec = typeof(np.zeros(1, np.int64))
        sig = (
            ftype,
            typeof(st.S),
            typeof(st.T),
            typeof(st.P),
            typeof(st.cfg),
            typeof(st.counters),
            typeof(args),
            typeof(marks),
            typeof(LR),
            i64,
            i64,
            vec,
            vec,
            vec,
            i64,
            b1,
            b1,
            vec,
            vec,
            typeof(np.zeros(1)),
            typeof(H),
            typeof(np.zeros((1, self.n), self.dtype)),
            i64,
            i64,
        )
        entry = columns_blocks.compile(sig)
        COLUMN_ENTRIES.put(key, entry)
        return entry

    def _run_columns(self, group, st, entry) -> None:
        """The compiled vectorized loop over the group's runs (:mod:`.columns`): Python
        only between segments (learning-rate blocks; display refreshes)."""
        from ..engine import threads as _threads
        from .columns import block_size, fused_possible, marks_for

        runs, res, n, k = group.runs, self.res, self.n, self.k
        m = runs.size
        args = self._columns_args()
        marks = marks_for(args, self.run_axis)
        codes = np.zeros(m, dtype=np.int64)
        made = np.zeros(m, dtype=np.int64)
        flast = np.full(m, np.nan)
        Gstop = np.zeros((m, n), dtype=self.dtype)
        limit = self.limit[runs]
        active = np.arange(m, dtype=np.int64)
        per_run_bytes = (st.S.shape[0] * n) * st.S.itemsize + sum(
            args[j].nbytes // max(1, args[j].shape[ax]) for j, ax in self.run_axis.items()
        )
        threads = _threads.num_threads()
        it = 0
        while True:
            seg = self._segment(group, st, active, limit, it, 0, None, None)
            if seg is None:
                break
            active, nsteps, lr_off, LR, _, _ = seg
            if self.bar is not None:
                nsteps = self.bar.steps(nsteps)  # short enough to refresh the display
            left = np.zeros(m, dtype=np.int64)
            left[active] = np.minimum(limit[active] - it, nsteps).astype(np.int64)
            same_rates = LR.shape[0] == 1 or bool((LR[active] == LR[active[:1]]).all())
            P_same = bool((st.P[active] == st.P[active[:1]]).all())
            C_same = bool((st.counters[active] == st.counters[active[:1]]).all())
            fused = fused_possible(st.cfg, C_same, P_same and same_rates)
            bsize = block_size(per_run_bytes, active.size, threads)
            nblocks = -(-active.size // bsize)
            whole = nblocks == 1 and active.size == k
            H = np.full((m, nsteps), np.nan) if res.history is not None else None
            _threads.run_chunks(
                entry,
                nblocks,
                self.fun,
                st.S,
                st.T,
                st.P,
                st.cfg,
                st.counters,
                args,
                marks,
                LR,
                lr_off,
                it,
                left,
                active,
                runs,
                bsize,
                fused,
                whole,
                codes,
                made,
                flast,
                H,
                Gstop,
            )
            res.record_segment(runs, active, it, made, codes, flast, H, Gstop)
            self._show(it + int(left.max()), active.size, flast[active])
            active = active[codes[active] == OK]  # runs at their limit drop out above
            it += nsteps
        res.store(st, runs, self)
        self._vectorized_finals(st, runs)
