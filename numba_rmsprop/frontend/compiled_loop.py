"""The compiled loop of a ``minimize`` run: a mixin of :class:`~.run.Run`.

When ``fun`` is a numba ``@njit`` function with ``jac=True`` and nothing
runs Python each step, runs of steps go through
:func:`.segment.segment_loop`, compiled once per signature of the objective
and configuration (and cached on disk), called on the row views of the
run's state (:func:`.step.row_views`). Here: the choice of the loop, the
compile of its entry point and the call of a segment.
"""

from __future__ import annotations

import warnings

from ..engine.entries import EntryCache
from ..engine.jit import load_cached
from .objective import LOSS_RULE
from .options import is_numba_dispatcher
from .segment import batch_arguments, segment_loop
from .state import BAD_GRAD, BAD_LOSS, C_CLIP, OK

#: Compiled-loop entries by objective and argument types (see ``_compile_loop``).
LOOP_ENTRIES = EntryCache()


class CompiledLoop:
    """The compiled loop's methods, for :class:`~.run.Run`."""

    def _compile_loop(self):
        """Entry point of ``segment_loop`` for this run's types.

        The objective is passed as a first-class function of the exact
        signature it is called with in the loop: the arguments' own types for
        the whole data, else read off ``batch_arguments`` (compiling it only
        for minibatches saves a compile on a first call); both are cached on disk, and
        the entry is remembered for arguments of the same types
        (:func:`~numba_rmsprop.engine.cpu.kernels.type_key`: typing them again cost about
        1 ms per call).
        """
        from numba import typeof, types

        batching = self.seg.order
        lrs = self.lr.block(0)
        state = (self.S, self.T, self.P, self.cfg, lrs, self._hist, self.gbuf)
        key = EntryCache.key(self.pair_fun, (self.seg.args, batching, self.x, state))
        entry = LOOP_ENTRIES.get(key)
        if entry is not None:
            return entry
        i64 = types.int64
        bsig = (typeof(self.seg.args), i64, i64, typeof(batching))
        if batching is None:  # the whole data: the objective gets the arguments themselves
            batch_types = bsig[0]
        else:  # cut or gathered minibatches: the types Numba gives the cut arrays
            batch_arguments.compile(bsig)
            batch_types = batch_arguments.overloads[bsig].signature.return_type
        fargs = (typeof(self.x),) + tuple(batch_types)
        fun = self.pair_fun
        load_cached(fun, fargs)
        fun.compile(fargs)
        ret = fun.overloads[fargs].signature.return_type
        ftype = types.FunctionType(ret(*fargs))
        views = tuple(typeof(r) for r in self.rows)
        state = (typeof(self.T), typeof(self.P), typeof(self.cfg), typeof(self.cfg[C_CLIP]))
        data = (bsig[0], bsig[3], i64, i64, i64)
        steps = (typeof(lrs), i64, i64, i64, typeof(self._hist), typeof(self.gbuf))
        sig = (ftype, *views, *state, *data, *steps, typeof(self.xbuf))
        entry = segment_loop.compile(sig)
        LOOP_ENTRIES.put(key, entry)
        return entry

    def _run_compiled(self, entry, it0, nsteps, lrs, lr_off, seg):
        code, done, f = entry(
            self.pair_fun,
            *self.rows,
            self.T,
            self.P,
            self.cfg,
            self.cfg[C_CLIP],
            seg.args,
            seg.order,
            seg.start,
            self.data.batch_size if self.batched else 1,
            seg.n_rows,
            lrs,
            lr_off,
            it0,
            nsteps,
            self._hist,
            self.gbuf,
            self.xbuf,
        )
        if code == BAD_LOSS:
            raise ValueError(
                f"{LOSS_RULE}; the loss of step {it0 + done} has another number of elements."
            )
        if code == BAD_GRAD:
            raise ValueError(
                f"The gradient `fun` returned at step {it0 + done} does not have "
                f"{self.n} elements; expected shape ({self.n},)."
            )
        if code != OK:
            self.f_last = float(f)
            return code, done, done + 1
        return code, done, done

    # ------------------------------------------------------------ driver
    def _loop_choice(self):
        """``"compiled"``, ``"python"``, or ``"decide"`` (after the first step).

        The compiled loop needs an ``@njit`` objective with ``jac=True`` and
        nothing that runs Python each step. ``compiled=True`` without those
        raises here, before any evaluation.
        """
        if self.compiled_opt is False:
            return "python"
        reason = self._static_reason()
        if reason is None:
            return "decide"
        if self.compiled_opt is True:
            raise ValueError(f"compiled=True, but {reason}.")
        return "python"

    def _static_reason(self):
        if not is_numba_dispatcher(self.pair_fun):
            return "`fun` is not a numba-compiled (@njit) function with jac=True"
        if self.callback is not None:
            return "a `callback` needs the Python loop"
        if self.lr.fn is not None:
            return "a zero-argument callable `learning_rate` needs the Python loop"
        if self.batched and not self.data.data_is_auto:
            return (
                "`data_args` differs from the automatic choice of data arrays, which "
                "the compiled loop uses"
            )
        return None

    def _compiled_entry(self):
        """Entry point of the compiled loop, or None (with a warning, or an error
        for ``compiled=True``) when it does not compile for these arguments."""
        try:
            return self._compile_loop()
        except Exception as exc:  # typing errors of the user's function or args
            text = str(exc).strip()
            reason = (
                f"the loop around `fun` did not compile for these arguments "
                f"({type(exc).__name__}: {text.splitlines()[0] if text else ''})"
            )
        if self.compiled_opt is True:
            raise ValueError(f"compiled=True, but {reason}.")
        warnings.warn(
            f"numba_rmsprop: using the Python loop: {reason}", RuntimeWarning, stacklevel=4
        )
        return None
