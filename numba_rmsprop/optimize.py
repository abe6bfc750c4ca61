"""A ``scipy.optimize.minimize`` front end for RMSprop.

Two entry points run the same optimizer::

    from scipy.optimize import minimize
    import numba_rmsprop as nr

    res = minimize(loss_and_grad, w0, args=(X, y), method=nr.rmsprop, jac=True,
                   options={"learning_rate": 1e-2, "batch_size": 64, "maxiter": 5000,
                            "seed": 0})
    res = nr.minimize(loss_and_grad, w0, args=(X, y), jac=True, options={...})

Both return a :class:`scipy.optimize.OptimizeResult`, and for the same
arguments the two give bit-identical results.

Each step is one call of Keras 3's RMSprop (:class:`numba_rmsprop.RMSprop`,
same kernels, same dtype casts, same counter rules) on the single flat
parameter vector, so ``nr.minimize`` with ``maxiter=k`` reproduces ``k``
``RMSprop.apply`` calls exactly (the front end always uses the serial
kernels; norms for clipping are summed in the same blocked order by the
serial and the threaded kernels).

Loops
-----
Python objective
    A lean Python loop: per step, one objective call, a cheap check of the
    gradient's type and one call of the compiled step
    (:func:`numba_rmsprop._compiled.step`: finiteness checks, stopping tests,
    the RMSprop call, bounds), through its compiled entry point.
Compiled objective
    When ``fun`` is a numba ``@njit`` function, ``jac=True`` and there is no
    ``callback`` (and the learning rate is not a zero-argument callable), the
    whole loop, minibatch gathering included, runs compiled
    (:func:`numba_rmsprop._compiled.run_segment`), in runs of steps that end
    at epoch and learning-rate-block boundaries. The first step still runs in
    Python, to validate what ``fun`` returns. The loop takes the objective as
    a first-class function, so it compiles once per *signature* of the
    objective and configuration, and is cached on disk. Epoch permutations
    are drawn on the host with the same ``Generator`` calls and both loops
    run the same compiled step, so they give bit-identical results for the
    same seed. ``options["compiled"]`` forces the Python loop (``False``) or
    insists on the compiled one (``True``); when an ``@njit`` objective cannot
    be compiled into the loop (e.g. it has a fixed signature), the run warns
    (``RuntimeWarning``) and takes the Python loop.
"""

from __future__ import annotations

import inspect
import math
import sys
import warnings
from typing import Any, Callable, Optional

import numpy as np
from scipy.optimize import Bounds, OptimizeResult, OptimizeWarning

from . import _compiled as C
from . import _hyperparameters as H
from ._cpu import EntryCache, entry_point
from ._lr_blocks import LR_BLOCK, LearningRates
from ._minibatches import Segment, make_batches
from ._objective import LOSS_RULE, Objective, as_loss
from ._progress import Progress
from .optimizer import RMSprop

__all__ = ["minimize", "rmsprop"]

#: The options that configure :class:`~numba_rmsprop.RMSprop` itself.
RMSPROP_OPTIONS = RMSprop.names(options=True)
#: The options of the loop around it: name -> (default, validator). The
#: validators are the hyperparameters' (one message style); None: checked
#: where it is used (``seed`` by NumPy, ``data_args`` against ``args``).
LOOP_OPTIONS = {
    "maxiter": (None, H.limit(0)),  # None: 1000
    "maxfev": (None, H.limit(1)),
    "batch_size": (None, H.integer(1, optional=True)),
    "shuffle": (True, H.boolean),
    "seed": (None, None),
    "data_args": (None, None),
    "gtol": (None, H.real(0.0, optional=True)),
    "tol": (None, H.real(0.0, optional=True)),
    "ftol": (None, H.real(0.0, optional=True)),
    "patience": (10, H.integer(1)),
    "tol_momentum": (0.9, H.real(0.0, 1.0, open_hi=True)),
    "disp": (False, H.boolean),
    "return_history": (False, H.boolean),
    "compiled": ("auto", H.one_of("auto", True, False)),
    "finite_diff_rel_step": (None, None),
    "shuffle_buffer": (None, H.integer(1, optional=True)),  # dask arrays only
    "client": (None, H.dask_client),
}
#: ``maxiter`` when it is None (scipy's methods each have their own default).
DEFAULT_MAXITER = 1000

#: Longest run of Python steps per segment when there is a ``callback``.
_PY_SEGMENT_DISP = 256

_STOP = 99  # callback raised StopIteration
_TOL_NOT_MET = " before the requested tolerance was met."

#: Why a run stopped -> (status, message), as scipy's methods keep a table of
#: status messages. Keys: the codes of :mod:`numba_rmsprop._compiled`, or the
#: limit that ended the loop (with ", tol" when a tolerance was requested and
#: not met). Messages are formatted with :meth:`_Run._message_fields`.
STOPS = {
    "maxiter": (0, "Completed maxiter={maxiter} iterations."),
    "maxiter, tol": (1, "Maximum number of iterations (maxiter={maxiter}) reached"
                        + _TOL_NOT_MET),
    "maxfev": (1, "Maximum number of function evaluations (maxfev={maxfev}) reached."),
    "maxfev, tol": (1, "Maximum number of function evaluations (maxfev={maxfev}) reached"
                       + _TOL_NOT_MET),
    C.GTOL: (0, "Optimization terminated successfully: gtol met (infinity norm of the "
                "gradient average {gnorm:.3g} <= {gtol:g})."),
    C.FTOL: (0, "Optimization terminated successfully: ftol met (the smoothed loss improved "
                "by less than ftol={ftol:g} relative over patience={patience} steps)."),
    C.NONFINITE_LOSS: (2, "Non-finite loss ({f_last}) at {step}; x is the last finite "
                          "iterate, where it was evaluated."),
    C.NONFINITE_GRAD: (2, "Non-finite gradient at {step}; x is the last finite iterate, "
                          "where it was evaluated."),
    C.OVERFLOW: (2, "The update of {step} produced non-finite parameters; it was undone, "
                    "and x is the last finite iterate."),
    _STOP: (99, "`callback` raised `StopIteration`."),  # scipy's words
}

#: Compiled-loop entries by objective and argument types (see _Run._compile_loop).
_LOOP_ENTRIES = EntryCache()


# ===================================================================== public
def rmsprop(fun: Callable, x0, args: tuple = (), jac=None, callback: Optional[Callable] = None,
            *, bounds=None, constraints=(), tol: Optional[float] = None, hess=None, hessp=None,
            **options: Any) -> OptimizeResult:
    """RMSprop as a ``method`` for :func:`scipy.optimize.minimize`.

    ``minimize(fun, x0, args, method=numba_rmsprop.rmsprop, jac=..., bounds=...,
    callback=..., options={...})`` calls this as scipy calls any callable
    method: ``method(fun, x0, args=args, jac=jac, hess=hess, hessp=hessp,
    bounds=bounds, constraints=constraints, callback=callback, **options)``
    (``tol`` arrives as ``options["tol"]``). With ``jac=True`` scipy wraps
    ``fun`` in its ``MemoizeJac``; this function unwraps it and calls the
    original ``fun`` once per step. ``hess`` and ``hessp`` are ignored; a
    non-empty ``constraints`` raises ``ValueError``. See :func:`minimize` for
    everything else, options and result included.
    """
    return _solve(fun, x0, args, jac, callback, bounds, constraints, tol, options, stacklevel=4)


def minimize(fun: Callable, x0, args: tuple = (), jac=None, bounds=None,
             tol: Optional[float] = None, callback: Optional[Callable] = None,
             options: Optional[dict] = None, *, hess=None, hessp=None,
             constraints=()) -> OptimizeResult:
    """Minimize ``fun`` with RMSprop; a drop-in for ``scipy.optimize.minimize``.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args)``: the loss, or ``(loss, gradient)`` with ``jac=True``.
        The loss is a real number or, as every scipy method takes it, an
        array with one element (shape ``()``, ``(1,)``, ...).
        ``x`` is a fresh 1-D copy of the iterate on every call (as scipy
        passes, gh-13740; also ``jac``'s and the callback's): keep it or
        modify it, the run does not change.
    x0 : float, sequence or ndarray
        Starting point, flattened to 1-D (``scipy.optimize.minimize`` itself
        rejects ``ndim > 1`` before calling a method). float32 stays float32
        (and the whole run is float32, as in :class:`~numba_rmsprop.RMSprop`);
        every other real dtype (ints, bools, float16, ...) becomes float64.
        Must be finite and non-empty. Never modified.
    args : tuple
        Extra arguments of ``fun`` (and ``jac``); with ``batch_size`` its data
        arrays are sliced into minibatches (see ``batch_size``).
    jac : bool, callable, {'2-point', '3-point', 'cs'} or None
        ``True``: ``fun`` returns ``(loss, gradient)`` (one evaluation per
        step). A callable: ``jac(x, *args)`` returns the gradient. ``None``,
        ``False`` or a finite-difference scheme: the gradient is estimated by
        :func:`scipy.optimize._numdiff.approx_derivative` (``None`` means
        ``'2-point'``), which costs ``n + 1`` (``'2-point'``, ``'cs'``) or
        ``2n + 1`` (``'3-point'``) evaluations of ``fun`` per step for ``n``
        parameters: expensive, and counted in ``nfev``. (Through
        ``scipy.optimize.minimize`` the scheme names reach a callable method
        as ``None``.) The gradient must have ``n`` elements, shape ``(n,)``
        (or ``()`` when ``n == 1``); it is cast to ``x``'s dtype.
    bounds : scipy.optimize.Bounds or sequence of (min, max) pairs, optional
        Box constraints (``None`` or ``±inf`` for no bound). ``x0`` is clipped
        into the box, and after every step ``x`` (and its EMA) is projected
        onto it. Finite-difference steps stay inside the box; variables fixed
        by ``lb == ub`` are left out of them (their gradient is 0). ``gtol`` then tests the projected gradient (components that
        push ``x`` past the bound it sits on count as 0).
    tol : float, optional
        Shorthand for ``options["gtol"]`` (as for scipy's gradient methods).
    callback : callable, optional
        Called after every step, as in scipy, in one of two forms:
        ``callback(intermediate_result)`` when its only parameter is named
        ``intermediate_result`` (read without evaluating annotations, as
        scipy reads it) -- an ``OptimizeResult`` with

        * ``x``: a copy of the new iterate;
        * ``fun``, ``jac``: the loss and gradient this step evaluated, which
          is *not* ``fun(x)``: they were evaluated at ``x_eval``, the
          previous iterate, on the step's minibatch (evaluating the full
          objective at ``x`` would double the cost of a step);
        * ``x_eval``: a copy of the iterate ``fun`` and ``jac`` were
          evaluated at;
        * ``nit``, ``nfev``, ``njev``: optimizer calls and evaluations so far;
        * ``epoch`` (1-based), ``batch`` (0-based position in the epoch) and
          ``batch_size`` (its rows) with ``batch_size``; None without;

        else ``callback(xk)`` with a copy of the new iterate.
        With ``use_ema`` the iterate is the raw one, not the average. Raising
        ``StopIteration`` ends the run with status 99. A callback makes the
        run take the Python loop.
    hess, hessp, constraints
        Accepted as ``scipy.optimize.minimize`` takes them, keyword-only:
        ``hess`` and ``hessp`` are ignored (RMSprop uses no Hessian); a
        non-empty ``constraints`` raises ``ValueError`` (use ``bounds``).
    options : dict, optional
        Every argument of :class:`~numba_rmsprop.RMSprop`:
        ``learning_rate`` (float, schedule or zero-argument callable;
        default 0.001), ``rho``, ``momentum``, ``epsilon``, ``centered``,
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm``,
        ``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``,
        ``loss_scale_factor`` (gradients from ``fun`` are divided by it, as
        in RMSprop; the losses are reported as ``fun`` returns them) and
        ``gradient_accumulation_steps``; plus

        maxiter : int, default 1000
            Number of optimizer calls (``RMSprop.apply`` calls; with
            ``gradient_accumulation_steps`` only every N-th updates ``x``).
            As for scipy's methods: None means the default, integer-valued
            floats (``1e4``) are integers, and ``inf`` means no limit (then
            another stopping rule is required: ``gtol``, ``ftol``, a finite
            ``maxfev`` or a callback).
        maxfev : int, optional
            Stop (status 1) before an evaluation would take the number of
            ``fun`` calls past ``maxfev``. The final evaluation (see ``fun``
            below) is extra. None or ``inf``: no limit.
        batch_size : int, optional
            Minibatch size. The *data arrays* of ``args`` are its elements
            that are ``numpy.ndarray`` (or ``dask.array.Array``) with
            ``ndim >= 1``; all of them must
            have the same length ``n_samples`` along axis 0 (else
            ``ValueError``), and each step passes ``fun`` the rows of the next
            batch of every data array and every other argument whole. An
            epoch is ``ceil(n_samples / batch_size)`` steps, the last batch
            possibly smaller. Requires ``1 <= batch_size <= n_samples``.
            Dask arrays (Zarr, HDF5: data larger than memory) are streamed
            through a shuffle buffer and need ``batch_size``; ``fun`` gets
            NumPy rows (see :mod:`numba_rmsprop._stream` and the README,
            "Scaling out").
        data_args : sequence of int, optional
            Slice exactly these positions of ``args`` instead (each must be
            an array, all of the same length); use it when ``args`` holds
            arrays that are not per-sample data.
        shuffle : bool, default True
            Permute the samples at the start of every epoch.
        seed : int, numpy.random.Generator or None
            Seed of the permutations (``numpy.random.default_rng(seed)``;
            a Generator is used, and advanced, as is). The same seed gives
            bit-identical results.
        shuffle_buffer : int, optional
            With dask arrays: rows held in memory to draw batches from.
            Default: 256 MiB worth of rows (of all data arrays together), at
            least the largest chunk plus a batch. When it holds all rows the
            data are loaded once and the run is bit for bit the in-memory
            run; otherwise each epoch streams the chunks in a permuted order
            and draws batches from the buffer (buffer shuffling, not a global
            permutation). Must then be at least the largest chunk (along
            axis 0) plus ``batch_size``. Ignored without dask arrays.
        client : dask.distributed.Client, "local" or None
            With dask arrays: who loads the chunks. None: what
            ``dask.compute`` would use (the default Client if there is one),
            else the run's loader thread; ``"local"``: the loader thread;
            a Client: its cluster (e.g. ``Client("tcp://scheduler:8786")``).
            The results are the same bit for bit.
        gtol : float, optional
            Stop (status 0) when the infinity norm of a moving average of the
            gradient is ``<= gtol``. The average is bias-corrected
            (``m_t / (1 - beta**t)``, ``m_t = beta m_{t-1} + (1 - beta) g_t``,
            ``beta = tol_momentum``); with ``tol_momentum=0`` it is the
            gradient of the step itself. Tested before the step's update:
            ``x`` is the iterate at which it held.
        ftol : float, optional
            Stop (status 0) when the smoothed loss (the same kind of
            bias-corrected moving average of the losses) has not fallen below
            ``best - ftol * |best|`` for ``patience`` consecutive steps, where
            ``best`` is its lowest value that did.
        patience : int, default 10
            See ``ftol``.
        tol_momentum : float, default 0.9
            Momentum ``beta`` in ``[0, 1)`` of the averages behind ``gtol``
            and ``ftol``. Use 0 for deterministic full-batch objectives.
        disp : bool, default False
            Show a progress bar on stderr (tqdm if installed, else a plain
            line) and print the final message there.
        return_history : bool, default False
            Put the loss of every evaluation of the loop (minibatch losses
            when batching) in ``res.history``.
        compiled : {"auto", True, False}, default "auto"
            Which loop runs (see the module docstring). ``True`` raises when
            the compiled loop cannot be used.
        finite_diff_rel_step : float or array, optional
            Relative step of the finite differences.

        Any other key raises ``scipy.optimize.OptimizeWarning`` and is ignored.

    Returns
    -------
    scipy.optimize.OptimizeResult
        x : ndarray
            The final iterate, 1-D, in ``x0``'s float dtype. With ``use_ema``
            the finalized moving average of the iterates (except for status
            2, where it is the raw iterate at which ``fun`` and ``jac`` were
            evaluated).
        fun, jac : float, ndarray
            The loss and gradient of the *full* objective ``fun(x, *args)``
            (all data, not a minibatch) at the returned ``x``. They come from
            one extra evaluation at the end, counted in ``nfev``/``njev``,
            except when the last evaluation of the loop already was at that
            ``x`` on all data (a full-batch run stopped by ``gtol``/``ftol``
            without ``use_ema``, or status 2, where they are the non-finite
            values that stopped the run). With dask arrays larger than the
            shuffle buffer: the row-weighted mean of ``fun`` over blocks of
            at most ``shuffle_buffer`` rows (the full objective when ``fun``
            averages over its rows), each block one evaluation.
        nit : int
            Optimizer calls made (``maxiter`` at most).
        nfev, njev : int
            Calls of ``fun`` (finite-difference calls included) and gradient
            evaluations, the final evaluation included.
        status, success, message
            0 (True): a requested tolerance (``gtol``, ``ftol``) was met, or
            ``maxiter`` calls completed when none was requested. 1 (False):
            ``maxiter`` or ``maxfev`` was reached before a requested
            tolerance (or ``maxfev`` cut the run short). 2 (False): the loss
            or gradient became non-finite (or the update overflowed); the
            message names the step, and ``x`` is the last finite iterate.
            99 (False): ``callback`` raised ``StopIteration``.
        nepoch : int
            With ``batch_size``: the number of epochs begun.
        history : ndarray
            With ``return_history``.
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"`options` must be a dict; got {type(options).__name__}.")
    return _solve(fun, x0, args, jac, callback, bounds, constraints, tol, dict(options),
                  stacklevel=3)


# ===================================================================== checks
def _loop_options(options: dict, tol, callback) -> dict:
    """The loop's options, validated, defaults filled in."""
    o = {}
    for name, (default, check) in LOOP_OPTIONS.items():
        value = options.get(name, default)
        o[name] = check(name, value) if check is not None else value
    if o["gtol"] is None:  # scipy passes `tol` as options["tol"]; nr.minimize as `tol`
        o["gtol"] = o["tol"] if o["tol"] is not None else H.real(0.0, optional=True)("tol", tol)
    if o["maxiter"] is None:
        o["maxiter"] = DEFAULT_MAXITER
    if o["maxfev"] == math.inf:
        o["maxfev"] = None
    if o["maxiter"] == math.inf and o["gtol"] is None and o["ftol"] is None \
            and o["maxfev"] is None and callback is None:
        raise ValueError("`maxiter=inf` needs another stopping rule: `gtol` (or `tol`), "
                         "`ftol`, a finite `maxfev`, or a callback that raises StopIteration.")
    return o


def _check_x0(x0) -> np.ndarray:
    try:
        a = np.asarray(x0)
    except Exception as exc:
        raise TypeError(f"`x0` must be a real number or an array of them: {exc}") from None
    if a.dtype.kind == "c":
        raise TypeError("`x0` must be real; got a complex array.")
    dt = np.float32 if a.dtype == np.float32 else np.float64
    try:
        x = np.array(a, dtype=dt).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`x0` must be a real number or an array of them: {exc}") from None
    if x.size == 0:
        raise ValueError("`x0` is empty.")
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.isfinite(x))
        raise ValueError(f"`x0` must be finite; x0[{bad[0]}] = {x[bad[0]]}"
                         + (f" (and {bad.size - 1} more)" if bad.size > 1 else "") + ".")
    return x


def _check_constraints(constraints) -> None:
    if constraints is None:
        return
    if isinstance(constraints, (list, tuple, dict)) and len(constraints) == 0:
        return
    raise ValueError(
        "numba_rmsprop.rmsprop does not support `constraints` (only `bounds`, by "
        "projection). Use method='SLSQP', 'trust-constr' or 'COBYQA' for constrained "
        "problems, or fold the constraints into the loss as penalties.")


def _bounds_arrays(bounds, n: int):
    """``(lb, ub)`` float64 arrays of length ``n``, or None when every bound is infinite."""
    if bounds is None:
        return None
    if isinstance(bounds, Bounds):
        lb, ub = bounds.lb, bounds.ub
    else:
        try:
            pairs = list(bounds)
        except TypeError:
            raise TypeError("`bounds` must be a scipy.optimize.Bounds or a sequence of "
                            f"(min, max) pairs; got {bounds!r}.") from None
        if len(pairs) != n:
            raise ValueError(f"`bounds` has {len(pairs)} (min, max) pairs; x0 has {n} elements.")
        lb, ub = [], []
        for i, p in enumerate(pairs):
            try:
                lo, hi = p
            except (TypeError, ValueError):
                raise ValueError(f"bounds[{i}] must be a (min, max) pair; got {p!r}.") from None
            lb.append(-np.inf if lo is None else lo)
            ub.append(np.inf if hi is None else hi)
    try:
        lb = np.broadcast_to(np.asarray(lb, dtype=np.float64), (n,)).copy()
        ub = np.broadcast_to(np.asarray(ub, dtype=np.float64), (n,)).copy()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`bounds` do not fit x0's {n} elements: {exc}") from None
    if np.isnan(lb).any() or np.isnan(ub).any():
        raise ValueError("`bounds` contain NaN.")
    if (lb > ub).any():
        i = int(np.flatnonzero(lb > ub)[0])
        raise ValueError(f"`bounds` are infeasible: lower bound {lb[i]} > upper bound {ub[i]} "
                         f"for x[{i}].")
    if np.isneginf(lb).all() and np.isposinf(ub).all():
        return None
    return lb, ub


def _bounds_in_dtype(lb: np.ndarray, ub: np.ndarray, dt) -> tuple:
    """Bounds cast to ``dt``, rounded inward so projected values stay feasible."""
    lo = lb.astype(dt)
    hi = ub.astype(dt)
    if dt != np.float64:
        up = lo.astype(np.float64) < lb
        lo[up] = np.nextafter(lo[up], dt(np.inf))
        down = hi.astype(np.float64) > ub
        hi[down] = np.nextafter(hi[down], dt(-np.inf))
        if (lo > hi).any():
            raise ValueError("`bounds` are too narrow to hold a float32 value; use float64 x0.")
    return lo, hi


def _callback_kind(callback) -> Optional[str]:
    """``"result"`` for ``callback(intermediate_result)``, else ``"x"`` (as scipy decides)."""
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"`callback` must be callable; got {callback!r}.")
    names = _parameter_names(callback)
    return "result" if names is not None and set(names) == {"intermediate_result"} else "x"


def _parameter_names(fn) -> Optional[tuple]:
    """The names of ``fn``'s parameters, without evaluating its annotations.

    As scipy reads a callback's signature (``_lib._util.wrapped_inspect_signature``):
    from Python 3.14 on, annotations are evaluated lazily and the default
    ``inspect.signature`` raises ``NameError`` for one that names a type
    imported only under ``TYPE_CHECKING``; the ``FORWARDREF`` format leaves it
    unevaluated. Should the signature still fail, the names come from the
    code object. None when there is no signature at all (some builtins).
    """
    try:
        if sys.version_info >= (3, 14):
            import annotationlib

            sig = inspect.signature(fn, annotation_format=annotationlib.Format.FORWARDREF)
        else:
            sig = inspect.signature(fn)
        return tuple(sig.parameters)
    except (TypeError, ValueError):
        return None
    except Exception:  # an annotation (or a __signature__) that cannot be evaluated
        pass
    skip = 0
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)):
        fn, skip = getattr(type(fn), "__call__", None), 1  # a callable object
    if inspect.ismethod(fn):
        fn, skip = fn.__func__, 1
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    return code.co_varnames[:code.co_argcount + code.co_kwonlyargcount][skip:]


def _is_numba_dispatcher(fun) -> bool:
    mod = sys.modules.get("numba.core.dispatcher")
    return mod is not None and isinstance(fun, mod.Dispatcher)


# ===================================================================== solver
def _solve(fun, x0, args, jac, callback, bounds, constraints, tol, options, stacklevel):
    if not callable(fun):
        raise TypeError(f"`fun` must be callable; got {fun!r}.")
    if not isinstance(args, tuple):
        args = (args,)
    _check_constraints(constraints)

    unknown = sorted(k for k in options if k not in RMSPROP_OPTIONS and k not in LOOP_OPTIONS)
    if unknown:
        warnings.warn(f"Unknown solver options: {', '.join(map(str, unknown))}",
                      OptimizeWarning, stacklevel=stacklevel)
    opt = RMSprop(**{k: options[k] for k in RMSPROP_OPTIONS if k in options})
    x = _check_x0(x0)
    run = _Run(fun, x, args, jac, callback, bounds, tol, opt, options)
    return run.solve()


class _Run:
    """One ``minimize`` run: the state, the two loops, the driver and the result.

    The pieces that are not scipy protocol live in their own modules: the
    objective's forms and checks (:class:`~numba_rmsprop._objective.Objective`),
    minibatches (:class:`~numba_rmsprop._minibatches.Minibatches`), learning-rate
    blocks (:class:`~numba_rmsprop._lr_blocks.LearningRates`), the progress
    display (:class:`~numba_rmsprop._progress.Progress`) and the memory layout
    and compiled step (:mod:`numba_rmsprop._compiled`).
    """

    # ------------------------------------------------------------ setup
    def __init__(self, fun, x, args, jac, callback, bounds, tol, opt: RMSprop, options: dict):
        o = _loop_options(options, tol, callback)
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
        self.cb_kind = _callback_kind(callback)
        self.callback = callback
        self.opt = opt
        self.args = args
        self.f_last = None  # the loss of the evaluation that stopped the run

        bnds = _bounds_arrays(bounds, n)
        self.obj = Objective(fun, jac, n=n, dtype=x.dtype, bounds=bnds,
                             rel_step=o["finite_diff_rel_step"])
        self.ev, self.cost, self.pair_fun = self.obj.ev, self.obj.cost, self.obj.pair_fun
        self.data = make_batches(args, o["batch_size"], o["data_args"], o["shuffle"], o["seed"],
                                 o["shuffle_buffer"], o["client"])
        self.seg: Optional[Segment] = None  # the current run of steps (_segment)
        self.batched = self.data.batched
        self.lr = LearningRates(opt._learning_rate, x.dtype, self.maxiter)
        self._setup_state(x, bnds)

    def _setup_state(self, x0: np.ndarray, bnds):
        if bnds is not None:
            bnds = _bounds_in_dtype(bnds[0], bnds[1], self.dtype.type)
        state = C.make_state(self.opt._spec, x0, bnds, gtol=self.gtol, ftol=self.ftol,
                             patience=self.patience, tol_momentum=self.tol_momentum,
                             initial_velocity=self.opt.initial_velocity)
        self.S, self.T, self.P, self.cfg, self.x, self.r_avg = state[:6]
        self.bak = self.S[self.cfg[C.C_BAK]]  # x before the last step (step() writes it)
        self.gbuf = np.zeros(self.n, dtype=self.dtype)
        self.hbuf = np.empty(LR_BLOCK, dtype=np.float64)
        self._hist = self.hbuf if self.track else None  # the compiled loop's loss record
        self.xbuf = np.empty(self.n, dtype=self.dtype)  # the objective's copy of x in the
        # compiled loop, which step() also refreshes (one compiled step serves both loops)
        self.step_ep = entry_point(C.step, (self.S, self.gbuf, self.T, self.P, self.cfg, 1.0, 0,
                                             self.dtype.type(0), self.xbuf))

    # ------------------------------------------------------------ loops
    def _run_python(self, it0, nsteps, lrs, lr_off, seg, first):
        """Python loop over ``nsteps`` steps of the :class:`Segment` ``seg``:
        returns ``(code, steps_made, evaluations)``."""
        x, S, T, P, cfg = self.x, self.S, self.T, self.P, self.cfg
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
            out = ev(x.copy(), *a)  # a fresh copy per evaluation, as scipy's (gh-13740)
            if first:
                f, g = check(out)
                first = False
            else:
                f, g = out
                if f.__class__ is not fl and f.__class__ is not f64:
                    f = as_loss(f)
                if g.__class__ is not nd or g.dtype is not dt or g.shape != shp \
                        or not g.flags.c_contiguous:
                    g = coerce_grad(g)
            if hbuf is not None:
                hbuf[j] = f
            if lr_fn is None:
                lr = lrs[lr_off + j]
            else:
                lr = lr_type(self.opt._current_learning_rate(it0 + j))
            code = step(S, g, T, P, cfg, f, it0 + j, lr, xbuf)
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
                    return _STOP, j + 1, j + 1
        return C.OK, nsteps, nsteps

    def _intermediate(self, f, g, it, j, seg) -> OptimizeResult:
        """The callback's ``intermediate_result`` after step ``it`` (0-based), the
        ``j``-th of the segment ``seg``.

        ``fun`` and ``jac`` are what the step evaluated: at ``x_eval`` (the
        iterate before the step, kept in the backup row), on the step's
        minibatch. Evaluating ``fun(x)`` on all data would double the cost.
        """
        evals = self.nev + j + 1
        res = OptimizeResult(x=self.x.copy(), fun=float(f), jac=np.array(g), nit=it + 1,
                             x_eval=self.bak.copy(), nfev=evals * self.cost, njev=evals,
                             epoch=None, batch=None, batch_size=None)
        if self.batched:
            mb = self.data
            res.epoch = mb.nepoch
            res.batch = seg.epoch_pos + j
            s, e = mb.rows(res.batch)
            res.batch_size = e - s
        return res

    def _compile_loop(self):
        """Entry point of ``run_segment`` for this run's types.

        The objective is passed as a first-class function of the exact
        signature it is called with in the loop, read off
        ``batch_arguments``; both compiled functions are cached on disk, and
        the entry is remembered for arguments of the same types
        (:func:`~numba_rmsprop._cpu.type_key`: typing them again cost about
        1 ms per call).
        """
        from numba import typeof, types

        batching = self.seg.order
        lrs = self.lr.block(0)
        state = (self.S, self.T, self.P, self.cfg, lrs, self._hist, self.gbuf)
        key = EntryCache.key(self.pair_fun, (self.seg.args, batching, self.x, state))
        entry = _LOOP_ENTRIES.get(key)
        if entry is not None:
            return entry
        i64 = types.int64
        bsig = (typeof(self.seg.args), i64, i64, typeof(batching))
        C.batch_arguments.compile(bsig)
        batch_types = C.batch_arguments.overloads[bsig].signature.return_type
        fargs = (typeof(self.x),) + tuple(batch_types)
        fun = self.pair_fun
        fun.compile(fargs)
        ret = fun.overloads[fargs].signature.return_type
        ftype = types.FunctionType(ret(*fargs))
        sig = (ftype, typeof(self.S), typeof(self.T), typeof(self.P), typeof(self.cfg),
               bsig[0], bsig[3], i64, i64, i64, typeof(lrs), i64, i64, i64,
               typeof(self._hist), typeof(self.gbuf), typeof(self.xbuf))
        entry = C.run_segment.compile(sig)
        _LOOP_ENTRIES.put(key, entry)
        return entry

    def _run_compiled(self, entry, it0, nsteps, lrs, lr_off, seg):
        code, done, f = entry(self.pair_fun, self.S, self.T, self.P, self.cfg, seg.args,
                              seg.order, seg.start,
                              self.data.batch_size if self.batched else 1,
                              seg.n_rows, lrs, lr_off, it0, nsteps, self._hist, self.gbuf,
                              self.xbuf)
        if code == C.BAD_LOSS:
            raise ValueError(f"{LOSS_RULE}; the loss of step {it0 + done} has "
                             "another number of elements.")
        if code == C.BAD_GRAD:
            raise ValueError(f"The gradient `fun` returned at step {it0 + done} does not have "
                             f"{self.n} elements; expected shape ({self.n},).")
        if code != C.OK:
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
        if not _is_numba_dispatcher(self.pair_fun):
            return "`fun` is not a numba-compiled (@njit) function with jac=True"
        if self.callback is not None:
            return "a `callback` needs the Python loop"
        if self.lr.fn is not None:
            return "a zero-argument callable `learning_rate` needs the Python loop"
        if self.batched and not self.data.data_is_auto:
            return ("`data_args` differs from the automatic choice of data arrays, which "
                    "the compiled loop uses")
        return None

    def _compiled_entry(self):
        """Entry point of the compiled loop, or None (with a warning, or an error
        for ``compiled=True``) when it does not compile for these arguments."""
        try:
            return self._compile_loop()
        except Exception as exc:  # typing errors of the user's function or args
            text = str(exc).strip()
            reason = (f"the loop around `fun` did not compile for these arguments "
                      f"({type(exc).__name__}: {text.splitlines()[0] if text else ''})")
        if self.compiled_opt is True:
            raise ValueError(f"compiled=True, but {reason}.")
        warnings.warn(f"numba_rmsprop: using the Python loop: {reason}", RuntimeWarning,
                      stacklevel=4)
        return None

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
        choice = self._loop_choice()
        entry = None
        history = [] if self.return_history else None
        bar = Progress(self.maxiter, "rmsprop") if self.disp else None
        it = self.nev = epoch_pos = 0
        code, stop = C.OK, None
        try:  # the batch source may hold a loader thread: it ends with the run
            try:
                while True:
                    nxt = self._segment(it, epoch_pos)
                    if isinstance(nxt, str):
                        stop = nxt
                        break
                    nsteps, lrs, lr_off, seg = nxt
                    if it == 0:
                        # The first step runs in Python: it validates fun's output.
                        code, made, evals = self._run_python(it, 1, lrs, lr_off, seg, first=True)
                        if code == C.OK and choice == "decide":
                            entry = self._compiled_entry()
                    elif entry is not None:
                        if bar is not None:
                            nsteps = bar.steps(nsteps)  # short enough to refresh the display
                        code, made, evals = self._run_compiled(entry, it, nsteps, lrs, lr_off,
                                                               seg)
                    else:
                        if bar is not None:
                            nsteps = bar.steps(nsteps)
                        if self.callback is not None:
                            nsteps = min(nsteps, _PY_SEGMENT_DISP)
                        code, made, evals = self._run_python(it, nsteps, lrs, lr_off, seg,
                                                             first=False)
                    if history is not None:
                        history.append(self.hbuf[:evals].copy())
                    it += made
                    self.nev += evals
                    if self.batched:
                        epoch_pos = (epoch_pos + made) % self.data.n_batches
                    if bar is not None:
                        bar.update(it, self.hbuf[evals - 1])
                    if code != C.OK:
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
            sys.stderr.write(f"{res.message}\n         Current function value: {res.fun:.6g}\n"
                             f"         Iterations: {res.nit}\n"
                             f"         Function evaluations: {res.nfev}\n")
            sys.stderr.flush()
        return res

    def _result(self, code, stop) -> OptimizeResult:
        status, message = STOPS[self._stop_key(code, stop)]
        message = message.format(**self._message_fields())
        raw = status == 2
        # The loop's last evaluation was at the current x, on all data, when it
        # stopped before updating (tolerance or non-finite values).
        reuse = raw or (code in (C.GTOL, C.FTOL) and not self.batched and self.r_avg is None)
        x = self.x.copy()
        if self.r_avg is not None and not raw:
            x = self.S[self.r_avg].copy()  # finalize_variable_values
        nfev, njev = self.nev * self.cost, self.nev
        if reuse:
            fun, jac = self.f_last, self.gbuf.copy()
        else:
            fun, jac, calls = self.data.evaluate_full(
                lambda args: self.obj.check(self.ev(x.copy(), *args)), self.dtype)
            nfev += calls * self.cost
            njev += calls
        res = OptimizeResult(x=x, fun=fun, jac=jac, nit=self.it, nfev=nfev, njev=njev,
                             status=status, success=status == 0, message=message)
        if self.batched:
            res.nepoch = self.data.nepoch
        return res

    def _stop_key(self, code, stop):
        """The :data:`STOPS` key of a run that ended with ``code`` (or at the limit ``stop``)."""
        if code != C.OK:
            return code
        tol_requested = self.gtol is not None or self.ftol is not None
        return stop + (", tol" if tol_requested else "")

    def _message_fields(self) -> dict:
        it = self.it
        return dict(maxiter=self.maxiter, maxfev=self.maxfev, gtol=self.gtol, ftol=self.ftol,
                    patience=self.patience, gnorm=self.T[C.T_GNORM], f_last=self.f_last,
                    step=f"step {it} (0-based optimizer call {it}, evaluation {self.nev})")
