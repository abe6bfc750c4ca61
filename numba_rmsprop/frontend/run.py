"""One ``minimize`` run: its state, the driver of its loops and its result.

:class:`Run` sets the run up (the objective, the minibatches, the learning
rates, the compiled state of :mod:`.state`), drives runs of steps through
one of two loops (:class:`~.python_loop.PythonLoop` or
:class:`~.compiled_loop.CompiledLoop`, mixed in) and builds the
``OptimizeResult``.
"""

from __future__ import annotations

import sys

import numpy as np

from ..composition import refusal, refuse
from ..engine.entries import entry_point
from ..optimizer import RMSprop
from .checkpoint import Resumable, check_resume, fixed_options
from .compiled_loop import CompiledLoop
from .data import Segment
from .learning_rates import LR_BLOCK, LearningRates
from .minibatches import make_batches
from .objective import Objective
from .options import (
    STOPS,
    bounds_arrays,
    bounds_in_dtype,
    callback_kind,
    loop_options,
    x0_entry,
)
from .progress import Progress
from .python_loop import PY_SEGMENT_CALLBACK, PythonLoop
from .result import OptimizeResult
from .state import (
    C_BAK,
    C_CLIP,
    FTOL,
    GTOL,
    NONFINITE_X0,
    OK,
    T_GNORM,
    make_state,
)
from .step import row_views, step_arrays


class Run(Resumable, PythonLoop, CompiledLoop):
    """One ``minimize`` run: the state, the two loops, the driver and the result.

    The pieces that are not scipy protocol live in their own modules: the
    objective's forms and checks (:class:`~numba_rmsprop.frontend.objective.Objective`),
    minibatches (:class:`~numba_rmsprop.frontend.minibatches.Minibatches`), learning-rate
    blocks (:class:`~numba_rmsprop.frontend.learning_rates.LearningRates`), the progress
    display (:class:`~numba_rmsprop.frontend.progress.Progress`) and the memory layout
    and compiled step (:mod:`numba_rmsprop.frontend.step`).
    """

    # ------------------------------------------------------------ setup
    def __init__(self, fun, x, args, jac, callback, bounds, tol, opt: RMSprop, options: dict):
        o = loop_options(options, tol, callback)
        self.n = n = x.size
        self.dtype = x.dtype
        self.maxiter = o["maxiter"]  # an int, or math.inf
        self.maxfev = o["maxfev"]  # an int, or None
        self.gtol = o["gtol"]
        self.ftol = o["ftol"]
        self.patience = o["patience"]
        self.tol_momentum = o["tol_momentum"]
        self.disp = o["disp"]
        self.return_history = o["return_history"]
        self.track = self.return_history or self.disp  # the Python loop records losses
        self.compiled_opt = o["compiled"]
        self.cb_kind = callback_kind(callback)
        self.callback = callback
        self.opt = opt
        self.args = args
        self.f_last = None  # the loss of the evaluation that stopped the run

        bnds = bounds_arrays(bounds, n)
        self.obj = Objective(
            fun, jac, n=n, dtype=x.dtype, bounds=bnds, rel_step=o["finite_diff_rel_step"]
        )
        self.ev, self.cost, self.pair_fun = self.obj.ev, self.obj.cost, self.obj.pair_fun
        self.data = make_batches(
            args,
            o["batch_size"],
            o["data_args"],
            o["shuffle"],
            o["seed"],
            o["shuffle_buffer"],
            o["client"],
        )
        self.seg: Segment | None = None  # the current run of steps (_segment)
        self.batched = self.data.batched
        self.lr = LearningRates(opt._learning_rate, x.dtype, self.maxiter)
        self.fixed = fixed_options(opt.get_config(), n, x.dtype, o, bnds, self.data.n_samples)
        self.resumed = None
        used = {"checkpoint"} if o["resume"] is not None else set()
        if getattr(self.data, "streamed", False):
            used.add("dask_data")
        if refusal("minimize", used) is not None:
            self.data.close()
            refuse("minimize", used)
        if o["resume"] is not None:
            self.resumed = check_resume(o["resume"], self.fixed, options.get("seed") is not None, x)
        self._setup_state(x, bnds)
        if self.resumed is not None:
            self._continue(self.resumed)

    def _setup_state(self, x0: np.ndarray, bnds):
        if bnds is not None:
            bnds = bounds_in_dtype(bnds[0], bnds[1], self.dtype.type)
        state = make_state(
            self.opt._spec,
            x0,
            bnds,
            gtol=self.gtol,
            ftol=self.ftol,
            patience=self.patience,
            tol_momentum=self.tol_momentum,
            initial_velocity=self.opt.initial_velocity,
        )
        self.S, self.T, self.P, self.cfg, self.x, self.r_avg = state[:6]
        self.rows = row_views(self.S, self.cfg)  # what the compiled step and loop take
        self.bak = self.S[self.cfg[C_BAK]]  # x before the last step (the step writes it)
        self.gbuf = np.zeros(self.n, dtype=self.dtype)
        self.hbuf = np.empty(LR_BLOCK, dtype=np.float64)
        self._hist = self.hbuf if self.track else None  # the compiled loop's loss record
        self.xbuf = np.empty(self.n, dtype=self.dtype)  # the objective's copy of x in the
        # compiled loop, which the step also refreshes (one compiled step serves both loops)

    # ------------------------------------------------------------ loops

    def _segment(self, it, epoch_pos):
        """``(nsteps, lrs, lr_off, segment)`` of the next run of steps, or a stop reason.

        A run of steps stays inside one learning-rate block and one segment of
        the batch source (:meth:`Minibatches.segment`: the rest of the epoch in
        memory, the rest of the shuffle buffer's round when streaming).
        """
        nsteps = self.maxiter - it
        if nsteps <= 0:
            return "maxiter"
        if self.maxfev is not None:
            left = (self.maxfev - self.nev * self.cost) // self.cost
            if left <= 0:
                return "maxfev"
            nsteps = min(nsteps, left)
        k, lr_off = divmod(it, LR_BLOCK)
        nsteps = min(nsteps, LR_BLOCK - lr_off)  # one learning-rate block
        if self.batched and epoch_pos == 0:
            self.data.new_epoch()
        self.seg = seg = self.data.segment(epoch_pos)
        nsteps = min(nsteps, seg.batches)  # one epoch, or one round of the stream
        return nsteps, self.lr.block(k), lr_off, seg

    def solve(self) -> OptimizeResult:
        if self.resumed is not None and self.resumed.ended is not None:  # it had ended anyway
            self.data.close()
            res = OptimizeResult(self.resumed.ended)
            res.checkpoint = self.resumed
            return res
        if not np.all(np.isfinite(self.x)):  # as scipy's methods: a failed result
            self.it = self.nev = 0
            self.f_last = np.nan
            self.gbuf[:] = np.nan
            self.data.close()
            return self._result(NONFINITE_X0, None)
        x, v, mg, mom, acc, avg, bak, abak, lb, ub = self.rows
        self.step_ep = entry_point(
            step_arrays,
            (x, self.gbuf, v, mg, mom, acc, avg, bak, abak, lb, ub, self.xbuf, self.T, self.P)
            + (self.cfg, self.cfg[C_CLIP], 1.0, 0, self.dtype.type(0)),
        )
        choice = self._loop_choice()
        entry = None
        history = [] if self.return_history else None
        bar = Progress(self.maxiter, "rmsprop") if self.disp else None
        it = self.nev = epoch_pos = 0
        if self.resumed is not None:
            it, self.nev = self.resumed.nit, self.resumed.nev
            epoch_pos = it % self.data.n_batches if self.batched else 0
        first = True  # the first step runs in Python: it validates fun's output
        code, stop = OK, None
        try:  # the batch source may hold a loader thread: it ends with the run
            try:
                while True:
                    nxt = self._segment(it, epoch_pos)
                    if isinstance(nxt, str):
                        stop = nxt
                        break
                    nsteps, lrs, lr_off, seg = nxt
                    if first:
                        first = False
                        code, made, evals = self._run_python(it, 1, lrs, lr_off, seg, first=True)
                        if code == OK and choice == "decide":
                            entry = self._compiled_entry()
                    elif entry is not None:
                        if bar is not None:
                            nsteps = bar.steps(nsteps)  # short enough to refresh the display
                        code, made, evals = self._run_compiled(entry, it, nsteps, lrs, lr_off, seg)
                    else:
                        if bar is not None:
                            nsteps = bar.steps(nsteps)
                        if self.callback is not None:
                            nsteps = min(nsteps, PY_SEGMENT_CALLBACK)
                        code, made, evals = self._run_python(
                            it, nsteps, lrs, lr_off, seg, first=False
                        )
                    if history is not None:
                        history.append(self.hbuf[:evals].copy())
                    it += made
                    self.nev += evals
                    if self.batched:
                        epoch_pos = (epoch_pos + made) % self.data.n_batches
                    if bar is not None:
                        bar.update(it, self.hbuf[evals - 1])
                    if code != OK:
                        break
            finally:
                if bar is not None:
                    bar.close()
            self.it = it
            res = self._result(code, stop)
        finally:
            self.data.close()
        if history is not None:
            res.history = np.concatenate(history) if history else np.zeros(0)
        if self.disp:
            sys.stderr.write(
                f"{res.message}\n         Current function value: {res.fun:.6g}\n"
                f"         Iterations: {res.nit}\n"
                f"         Function evaluations: {res.nfev}\n"
            )
            sys.stderr.flush()
        return res

    def _result(self, code, stop) -> OptimizeResult:
        key = self._stop_key(code, stop)
        status, message = STOPS[key]
        message = message.format(**self._message_fields(key == NONFINITE_X0))
        raw = status == 2
        # The loop's last evaluation was at the current x, on all data, when it
        # stopped before updating (tolerance or non-finite values).
        reuse = raw or (code in (GTOL, FTOL) and not self.batched and self.r_avg is None)
        x = self.x.copy()
        if self.r_avg is not None and not raw:
            x = self.S[self.r_avg].copy()  # finalize_variable_values
        nfev, njev = self.nev * self.cost, self.nev
        if reuse:
            fun, jac = self.f_last, self.gbuf.copy()
        else:
            fun, jac, calls = self.data.evaluate_full(
                lambda args: self.obj.check(self.ev(x.copy(), *args)), self.dtype
            )
            nfev += calls * self.cost
            njev += calls
        res = OptimizeResult(
            x=x,
            fun=fun,
            jac=jac,
            nit=self.it,
            nfev=nfev,
            njev=njev,
            status=status,
            success=status == 0,
            message=message,
        )
        if self.batched:
            res.nepoch = self.data.nepoch
        res.checkpoint = self._checkpoint(x, OptimizeResult(res) if code != OK else None)
        return res

    def _stop_key(self, code, stop):
        """The :data:`STOPS` key of a run that ended with ``code`` (or at the limit ``stop``)."""
        if code != OK:
            return code
        tol_requested = self.gtol is not None or self.ftol is not None
        return stop + (", tol" if tol_requested else "")

    def _message_fields(self, x0_named: bool) -> dict:
        """The values a message names (the entry of ``x0`` that is not finite only where
        ``x0_named``: finding it is a pass over ``x``)."""
        it = self.it
        return dict(
            maxiter=self.maxiter,
            maxfev=self.maxfev,
            gtol=self.gtol,
            ftol=self.ftol,
            patience=self.patience,
            gnorm=self.T[T_GNORM],
            f_last=self.f_last,
            step=f"step {it} (0-based optimizer call {it}, evaluation {self.nev})",
            x0_entry=x0_entry(self.x) if x0_named else None,
        )
