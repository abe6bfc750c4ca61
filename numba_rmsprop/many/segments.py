"""How the runs of a group advance together: epochs, segments, limits and the callback.

A mixin of :class:`~.batch.Batch`, shared by its compiled and vectorized loops
(and the GPU loop of :mod:`.cuda`): runs of steps end at epoch and
learning-rate-block boundaries, as a single ``nr.minimize`` run's segments do.
"""

from __future__ import annotations

import math

import numpy as np

from ..frontend.learning_rates import LR_BLOCK
from ..frontend.progress import Progress
from ..frontend.result import OptimizeResult


class Segments:
    """Segments, orders, limits, the callback and the progress display of a group, for
    :class:`~.batch.Batch`."""

    bar = None  # the batch's progress display (disp), while it runs
    shown = 0  # steps of the groups already done (the display counts the batch's steps)
    waiting = 0  # runs of the groups not started yet (active too)

    # ------------------------------------------------------------ progress
    def _progress(self, unit: str, total):
        """The batch's one progress display (``disp``; never one per run), or None."""
        if not self.loop["disp"]:
            return None
        self._summary, self._summary_at = {}, -math.inf
        return Progress(int(total) if np.isfinite(total) else math.inf, "minimize_many", unit)

    def summary(self, active: int, losses) -> dict:
        """What the display shows beside the count: active runs, best and median loss."""
        f = np.asarray(losses, dtype=np.float64)
        f = f[np.isfinite(f)]
        info = {"active": f"{active}/{self.k}"}
        if f.size:
            info.update(best=float(f.min()), median=float(np.median(f)))
        return info

    def _show(self, it: int, active: int, losses) -> None:
        """Step ``it`` of the current group is done (``losses``: the active runs' last, or a
        function giving them; summarised at most every ``PRINT_SECONDS``)."""
        bar = self.bar
        if bar is None:
            return
        now = bar.clock()
        if now - self._summary_at >= bar.PRINT_SECONDS:
            self._summary_at = now
            self._summary = self.summary(
                active + self.waiting, losses() if callable(losses) else losses
            )
        bar.update(self.shown + it, **self._summary)

    # ------------------------------------------------------------ segments
    def _group_rngs(self, group):
        """The group's generators: one shared (a fresh ``default_rng(seed)``, as each run's
        ``nr.minimize`` makes), or one per run."""
        if not self.batched:
            return None
        if self._seeds is None:  # seed=None: fresh entropy per run, as nr.minimize draws
            rngs = [np.random.default_rng() for _ in group.runs]
        elif np.ndim(self._seeds) == 0:
            rngs = np.random.default_rng(self._seeds)
        else:
            rngs = [np.random.default_rng(self._seeds[int(r)]) for r in group.runs]
        for q, r in enumerate(group.runs):  # where each run's draws start (its checkpoint)
            g = rngs if isinstance(rngs, np.random.Generator) else rngs[q]
            self.rng_initial[int(r)] = g.bit_generator.state
        return rngs

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
        if done.any():
            self.res.finish_limits(runs[active[done]], self)
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
