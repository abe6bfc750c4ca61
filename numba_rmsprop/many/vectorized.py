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
