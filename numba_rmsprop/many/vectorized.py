"""The vectorized loop of ``minimize_many``: a mixin of :class:`~.batch.Batch`.

``fun(X, *args)`` evaluates every active run at once and one compiled call
(the passes of :func:`.kernels.many_step`) updates them all.
"""

from __future__ import annotations

import numpy as np

from ..engine.entries import entry_point
from ..frontend.state import OK
from .kernels import _each_run_step, _flat_step, one_pass_possible
from .options import take_runs


class VectorizedRuns:
    """The vectorized loop's methods, for :class:`~.batch.Batch`."""

    # ------------------------------------------------------------ vectorized
    def _run_vectorized(self, group, st) -> None:
        """Python steps; ``fun`` evaluates every active run at once.

        A step is the objective's call and one compiled call
        (:func:`numba_rmsprop.frontend.step.many_step`); nothing per run happens
        in Python until a run stops or reaches its limit (every active run
        has made the same number of steps).
        """
        runs, res, n = group.runs, self.res, self.n
        m = runs.size
        active = np.arange(m, dtype=np.int64)
        limit = self.limit[runs]
        it, epoch_pos, perm = 0, 0, None
        a = self.args
        data_idx = self.data.data_idx if self.batched else []
        codes = np.zeros(m, dtype=np.int64)
        # The one-pass step (all runs active) and the run-by-run step, as compiled entries
        # (no type dispatch per step); each is compiled when first needed
        # (kernels.many_step: the same choice, for callers outside this loop).
        one_pass = one_pass_possible(st.cfg, st.same_counters)
        passes = {}

        def compiled(name, *args):
            if name not in passes:
                passes[name] = entry_point(_flat_step if name == "one" else _each_run_step, args)
            return passes[name](*args)

        dt = self.dtype
        fun, jac = self.fun, self.jac
        pair = jac is True
        lst = list(a)
        rng = self._group_rngs(group)
        history = [] if res.history is not None else None
        changed = True  # the active set changed: the run rows must be taken again
        stopped = False
        S, T, P, cfg, counters = st.S, st.T, st.P, st.cfg, st.counters
        same = st.same_counters, st.same_scalars
        shown = self.bar is not None  # (disp=True)
        xs = st.xs()  # the iterates, a view
        batched, callback = self.batched, self.callback
        while not stopped:
            before = active.size
            seg = self._segment(group, st, active, limit, it, epoch_pos, rng, perm)
            if seg is None:
                break
            active, nsteps, lr_off, LR, start, perm = seg
            changed = changed or active.size != before
            nearest = limit[active].min()  # up to the next limit (inf: none)
            if nearest < np.inf:
                nsteps = min(nsteps, int(nearest) - it)
            for j in range(nsteps):
                ma = active.size
                if changed:  # the active runs' rows of the per-run arguments
                    whole = ma == self.k  # every run of the batch: the arguments as given
                    sel = runs[active]
                    rows = {
                        i: a[i] if whole else take_runs(a[i], ax, sel)
                        for i, ax in self.run_axis.items()
                    }
                    for i, r in rows.items():
                        lst[i] = r
                    changed = False
                if batched:  # the minibatch, shared by every run
                    s_, e_ = (
                        start + j * self.data.batch_size,
                        min(start + (j + 1) * self.data.batch_size, self.data.n_samples),
                    )
                    cut = slice(s_, e_) if isinstance(perm, int) else perm[0, s_:e_]
                    for i in data_idx:  # per-run data: the samples are the other leading axis
                        lst[i] = (
                            take_runs(rows[i], 1 if self.run_axis[i] == 0 else 0, cut)
                            if i in rows
                            else a[i][cut]
                        )
                X = np.ascontiguousarray((xs if ma == m else xs[active]).T)  # (n, ma)
                out = fun(X, *lst)
                if pair:
                    f, G = vectorized_pair(out, ma)
                else:
                    f, G = out, jac(X.copy(), *lst)
                f, G = check_vectorized(f, G, ma, n, dt)
                n_stop = -1
                if one_pass and ma == m:
                    n_stop = compiled(
                        "one", S, G, P, cfg, counters, f, it, LR, lr_off + j, codes, same[1]
                    )
                if n_stop < 0:  # (the one pass leaves nothing changed when it declines)
                    n_stop = compiled(
                        "each", S, G, T, P, cfg, counters, f, it, LR, lr_off + j, active, codes
                    )
                if history is not None:
                    history.append((sel, f.copy()))
                it += 1
                if shown:
                    self._show(it, ma, f)
                if n_stop:
                    stop = codes[:ma] != OK
                    for q in np.flatnonzero(stop):
                        r = int(sel[q])
                        res.nit[r], res.nev[r] = it - 1, it
                        res.finish(r, int(codes[q]), float(f[q]), G[q])
                    active = active[~stop]
                    changed = True
                if callback is not None:
                    res.nit[runs[active]] = res.nev[runs[active]] = it
                    fl = np.full(m, np.nan)
                    fl[active] = f[codes[:ma] == OK] if n_stop else f
                    if self._call_back(st, group, runs, active, fl, codes):
                        stopped = True
                        break
                if not active.size:
                    break
            res.nit[runs[active]] = res.nev[runs[active]] = it
            if self.batched:
                epoch_pos = (epoch_pos + nsteps) % self.data.n_batches
        if history is not None:
            for sel_, f in history:
                for q, fq in zip(sel_, f, strict=False):
                    res.history[int(q)].append(np.array([fq]))
        res.store(st, runs, self)
        self._vectorized_finals(st, runs)

    # ------------------------------------------------------------ compiled (columns)
    def _columns_possible(self) -> bool:
        """Whether the compiled vectorized loop (:mod:`.columns`) may run this batch:
        an ``@njit`` ``fun`` with ``jac=True``, no callback, no minibatches, not
        ``compiled=False``."""
        from ..frontend.options import is_numba_dispatcher

        return bool(
            not self.device
            and self.jac is True
            and is_numba_dispatcher(self.fun)
            and self.callback is None
            and not self.batched
            and self.options0.get("compiled", "auto") is not False
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
        LR = st.lr_table if st.learning is None else st.learning.block(0)[None, :]
        H = np.zeros((1, 1)) if self.res.history is not None else None
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
        return columns_blocks.compile(sig)

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
            stopped = codes[active] != OK
            evaluated = made[active] + stopped
            res.nit[runs[active]] = it + made[active]
            res.nev[runs[active]] += evaluated
            if H is not None:
                for q, e in zip(active.tolist(), evaluated.tolist(), strict=True):
                    res.history[int(runs[q])].append(H[q, :e].copy())
            for q in active[stopped].tolist():
                res.finish(int(runs[q]), int(codes[q]), float(flast[q]), Gstop[q])
            self._show(it + int(left.max()), active.size, flast[active])
            active = active[codes[active] == OK]  # runs at their limit drop out above
            it += nsteps
        res.store(st, runs, self)
        self._vectorized_finals(st, runs)

    def _vectorized_finals(self, st, runs) -> None:
        """``fun`` and ``jac`` on all data at the returned ``x`` (as nr.minimize does), for
        the runs whose last evaluation was not there: one vectorized call."""
        res = self.res
        need = np.flatnonzero(~res.reuse[runs])
        if not need.size:
            return
        X = np.ascontiguousarray(res.x[runs[need]].T)
        lst = list(self.args)
        for i, ax in self.run_axis.items():
            lst[i] = take_runs(self.args[i], ax, runs[need])
        out = self.fun(X.copy(), *lst)
        if self.jac is True:
            f, G = vectorized_pair(out, need.size)
        else:
            f, G = out, self.jac(X.copy(), *lst)
        f, G = check_vectorized(f, G, need.size, self.n, self.dtype)
        res.set_finals(runs[need], f, G)


def vectorized_pair(out, m):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError(
            "With jac=True and vectorized=True, `fun` must return a pair (f, G) "
            f"of shapes ({m},) and (n, {m}); got {type(out).__name__}."
        )
    return out


def check_vectorized(f, G, m, n, dt):
    """``f`` as ``(m,)`` float64, and ``G`` (``(n, m)``: one column per run) as the
    C-contiguous ``(m, n)`` rows of ``dt`` the update takes (``G.T``, copied unless
    ``G`` is Fortran-ordered)."""
    if (
        f.__class__ is np.ndarray
        and G.__class__ is np.ndarray
        and f.dtype == np.float64
        and G.dtype == dt
        and f.shape == (m,)
        and G.shape == (n, m)
        and f.flags.c_contiguous
    ):
        return f, np.ascontiguousarray(G.T)
    f = np.asarray(f)
    if f.shape != (m,):
        raise ValueError(
            f"The vectorized `fun` must return losses of shape ({m},) for the "
            f"{m} active runs; got shape {f.shape}."
        )
    if f.dtype.kind not in "fiub":
        raise TypeError(f"The vectorized losses must be real; got dtype {f.dtype}.")
    G = np.asarray(G)
    if G.shape != (n, m):
        raise ValueError(
            f"The vectorized gradient must have shape ({n}, {m}): {n} parameters "
            f"(rows) of the {m} active runs (columns); got shape {G.shape}."
        )
    if G.dtype.kind not in "fiub":
        raise TypeError(f"The vectorized gradient must be real; got dtype {G.dtype}.")
    return np.ascontiguousarray(f, dtype=np.float64), np.ascontiguousarray(G.T, dtype=dt)
