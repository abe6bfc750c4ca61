"""The Python loop of a ``minimize`` run: a mixin of :class:`~.run.Run`.

Per step: one objective call (with a fresh copy of ``x``), a cheap check of
the loss's and gradient's types, and one call of the compiled step
(:func:`.step.step_arrays`, on the row views of the run's state) through its
compiled entry point; the callback, if any.
"""

from __future__ import annotations

import numpy as np

from ..engine.jit import load_cached
from .objective import as_loss
from .options import STOP_CALLBACK, is_numba_dispatcher
from .result import OptimizeResult
from .state import C_CLIP, OK

#: Longest run of Python steps per segment when there is a ``callback``.
PY_SEGMENT_CALLBACK = 256


class PythonLoop:
    """``_run_python`` and the callback's ``intermediate_result``, for :class:`~.run.Run`."""

    def _run_python(self, it0, nsteps, lrs, lr_off, seg, first):
        """Python loop over ``nsteps`` steps of the :class:`Segment` ``seg``:
        returns ``(code, steps_made, evaluations)``."""
        x, v, mg, mom, acc, avg, bak, abak, lb, ub = self.rows
        T, P, cfg = self.T, self.P, self.cfg
        clip = cfg[C_CLIP]
        step, xbuf = self.step_ep, self.xbuf
        ev = self.ev
        nd = np.ndarray
        fl, f64 = float, np.float64
        check, coerce_grad = self.obj.check, self.obj.coerce_grad
        dt = self.dtype
        shp = (self.n,)
        hbuf = self.hbuf if self.track else None
        lr_fn = self.lr.fn
        lr_type = dt.type
        cb = self.callback
        cb_result = self.cb_kind == "result"
        batched = self.batched
        a = seg.args
        if batched:
            mb = self.data
            lst = list(a)
            data = [(i, a[i]) for i in mb.data_idx]
            bs, ns, start = mb.batch_size, seg.n_rows, seg.start
            perm = seg.order if isinstance(seg.order, np.ndarray) else None
        lr = None
        for j in range(nsteps):
            if batched:
                s = start + j * bs
                e = s + bs
                if e > ns:
                    e = ns
                if perm is None:
                    for i, d in data:
                        lst[i] = d[s:e]
                else:
                    idx = perm[s:e]
                    for i, d in data:
                        lst[i] = d[idx]  # a copy of the batch's rows
                a = tuple(lst)
            if first and is_numba_dispatcher(self.pair_fun):  # loaded fast if cached
                load_cached(self.pair_fun, args=(x, *a))
            out = ev(x.copy(), *a)  # a fresh copy per evaluation, as scipy's (gh-13740)
            if first:
                f, g = check(out)
                first = False
            else:
                f, g = out
                if f.__class__ is not fl and f.__class__ is not f64:
                    f = as_loss(f)
                if (
                    g.__class__ is not nd
                    or g.dtype is not dt
                    or g.shape != shp
                    or not g.flags.c_contiguous
                ):
                    g = coerce_grad(g)
            if hbuf is not None:
                hbuf[j] = f
            if lr_fn is None:
                lr = lrs[lr_off + j]
            else:
                lr = lr_type(self.opt._current_learning_rate(it0 + j))
            code = step(
                x, g, v, mg, mom, acc, avg, bak, abak, lb, ub, xbuf, T, P, cfg, clip, f, it0 + j, lr
            )
            if code:
                self.f_last = float(f)
                self.gbuf[:] = g
                return code, j, j + 1
            if cb is not None:
                try:
                    if cb_result:
                        cb(intermediate_result=self._intermediate(f, g, it0 + j, j, seg))
                    else:
                        cb(x.copy())
                except StopIteration:
                    return STOP_CALLBACK, j + 1, j + 1
        return OK, nsteps, nsteps

    def _intermediate(self, f, g, it, j, seg) -> OptimizeResult:
        """The callback's ``intermediate_result`` after step ``it`` (0-based), the
        ``j``-th of the segment ``seg``.

        ``fun`` and ``jac`` are what the step evaluated: at ``x_eval`` (the
        iterate before the step, kept in the backup row), on the step's
        minibatch. Evaluating ``fun(x)`` on all data would double the cost.
        """
        evals = self.nev + j + 1
        res = OptimizeResult(
            x=self.x.copy(),
            fun=float(f),
            jac=np.array(g),
            nit=it + 1,
            x_eval=self.bak.copy(),
            nfev=evals * self.cost,
            njev=evals,
            epoch=None,
            batch=None,
            batch_size=None,
        )
        if self.batched:
            mb = self.data
            res.epoch = mb.nepoch
            res.batch = seg.epoch_pos + j
            s, e = mb.rows(res.batch)
            res.batch_size = e - s
        return res
