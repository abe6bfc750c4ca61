"""How the runs of a group advance together: epochs, segments, limits and the callback.

A mixin of :class:`~.batch.Batch`, shared by its compiled and vectorized loops
(and the GPU loop of :mod:`.cuda`): runs of steps end at epoch and
learning-rate-block boundaries, as a single ``nr.minimize`` run's segments do.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import OptimizeResult

from ..frontend.learning_rates import LR_BLOCK


class Segments:
    """Segments, orders, limits and the callback of a group, for :class:`~.batch.Batch`."""

    # ------------------------------------------------------------ segments
    def _group_rngs(self, group):
        """The group's generators: one shared (a fresh ``default_rng(seed)``, as each run's
        ``nr.minimize`` makes), or one per run."""
        if not self.batched:
            return None
        if self._seeds is None:  # seed=None: fresh entropy per run, as nr.minimize draws
            return [np.random.default_rng() for _ in group.runs]
        if np.ndim(self._seeds) == 0:
            return np.random.default_rng(self._seeds)
        return [np.random.default_rng(self._seeds[int(r)]) for r in group.runs]

    def _orders(self, group, active, rng):
        """Begin an epoch for the group's active runs: their permutations (or 1 in order)."""
        d = self.data
        if not d.shuffle:
            return 1
        if isinstance(rng, np.random.Generator):
            return rng.permutation(d.n_samples)[None, :]
        perms = np.zeros((group.runs.size, d.n_samples), dtype=np.int64)
        for q in active:
            perms[q] = rng[q].permutation(d.n_samples)
        return perms

    def _segment(self, group, st, active, limit, it, epoch_pos, rng, order):
        """The next run of steps of a group, bounded as nr.minimize bounds its segments.

        Drops the runs at their limit, begins an epoch (new orders, else the
        current ``order`` goes on) at epoch position 0. Returns ``(active,
        nsteps, lr_off, LR, start, order)``, or None when no run is left.
        """
        active = self._drop_finished(active, limit, it, group.runs)
        if not active.size:
            return None
        kb, lr_off = divmod(it, LR_BLOCK)  # one learning-rate block
        nsteps = LR_BLOCK - lr_off
        start = 0
        if self.batched:  # one epoch
            if epoch_pos == 0:
                self.res.nepoch[group.runs[active]] += 1
                order = self._orders(group, active, rng)
            nsteps = min(nsteps, self.data.n_batches - epoch_pos)
            start = self.data.rows(epoch_pos)[0]
        return active, nsteps, lr_off, self._lr_for(st, kb), start, order

    def _drop_finished(self, active, limit, it, runs):
        """The active runs that may still step at iteration ``it``; the others end at
        their ``maxiter``/``maxfev`` (checked before an epoch begins, as nr.minimize does)."""
        done = limit[active] <= it
        for q in active[done]:
            self.res.finish_limit(int(runs[q]), self)
        return active[~done]

    def _lr_for(self, st, kb):
        return st.lr_table if st.learning is None else st.learning.block(kb)[None, :]

    def _call_back(self, st, group, runs, still, flast, codes) -> bool:
        """Call the callback; True when it raised StopIteration (every active run stops)."""
        res = self.res
        X = self.res.x_now(st, runs)
        fun = np.full(self.k, np.nan)
        fun[runs] = flast
        act = np.zeros(self.k, dtype=bool)
        act[runs[still]] = True
        try:
            if self.cb_kind == "result":
                self.callback(
                    intermediate_result=OptimizeResult(x=X, fun=fun, nit=res.nit.copy(), active=act)
                )
            else:
                self.callback(X)
        except StopIteration:
            for q in still:
                res.finish(int(runs[q]), "stop", math.nan, None)
            return True
        return False
