"""A ``scipy.optimize.minimize`` front end for RMSprop.

Two entry points run the same optimizer::

    from scipy.optimize import minimize
    import numba_rmsprop as nr

    res = minimize(loss_and_grad, w0, args=(X, y), method=nr.rmsprop, jac=True,
                   options={"learning_rate": 1e-2, "batch_size": 64, "maxiter": 5000,
                            "seed": 0})
    res = nr.minimize(loss_and_grad, w0, args=(X, y), jac=True, options={...})

Both return a :class:`numba_rmsprop.OptimizeResult` (scipy's fields, attribute
access and printout, without importing ``scipy.optimize``), and for the same
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
    (:func:`numba_rmsprop.frontend.step.step_arrays`: finiteness checks, stopping tests,
    the RMSprop call, bounds), through its compiled entry point.
Compiled objective
    When ``fun`` is a numba ``@njit`` function, ``jac=True`` and there is no
    ``callback`` (and the learning rate is not a zero-argument callable), the
    whole loop, minibatch gathering included, runs compiled
    (:func:`numba_rmsprop.frontend.segment.segment_loop`), in runs of steps that end
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

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from ..optimizer import RMSprop
from .options import LOOP_OPTIONS, RMSPROP_OPTIONS, check_constraints, check_x0
from .result import OptimizeResult
from .run import Run
from .scipy_types import warn_unknown_options

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from scipy.optimize import Bounds

__all__ = ["minimize", "rmsprop"]

#: ``jac``: a function of ``(x, *args)``, True (``fun`` returns the pair), or
#: None / ``"2-point"`` / ``"3-point"`` / ``"cs"`` (finite differences).
Jacobian: TypeAlias = "Callable[..., Any] | bool | str | None"
#: ``bounds``: a :class:`scipy.optimize.Bounds`, or one ``(low, high)`` per parameter.
BoundsLike: TypeAlias = "Bounds | Sequence[tuple[float | None, float | None]] | None"


# ===================================================================== public
def rmsprop(
    fun: Callable[..., Any],
    x0: ArrayLike,
    args: tuple = (),
    jac: Jacobian = None,
    callback: Callable[..., Any] | None = None,
    *,
    bounds: BoundsLike = None,
    constraints: object = (),
    tol: float | None = None,
    hess: object = None,
    hessp: object = None,
    **options: Any,
) -> OptimizeResult:
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
    return solve(fun, x0, args, jac, callback, bounds, constraints, tol, options, stacklevel=4)


def minimize(
    fun: Callable[..., Any],
    x0: ArrayLike,
    args: tuple = (),
    jac: Jacobian = None,
    bounds: BoundsLike = None,
    tol: float | None = None,
    callback: Callable[..., Any] | None = None,
    options: Mapping[str, Any] | None = None,
    *,
    hess: object = None,
    hessp: object = None,
    constraints: object = (),
) -> OptimizeResult:
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
        Starting point: a number or a 1-D array (``scipy.optimize.minimize``
        itself rejects ``ndim > 1``: so does this, with scipy's message).
        float32 stays float32 (and the whole run is float32, as in
        :class:`~numba_rmsprop.RMSprop`); every other real dtype (ints, bools,
        float16, ...) becomes float64. Non-empty; an ``x0`` that is not finite
        gives a failed result (status 2) without calling ``fun``, as every
        scipy method returns one. Never modified.
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
        by ``lb == ub`` are left out of them (their gradient is 0). ``gtol`` then
        tests the projected gradient (components that
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
            NumPy rows (see :mod:`numba_rmsprop.frontend.stream` and the guide,
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
        resume : OptimizeResult or RunCheckpoint, optional
            Continue an earlier run (its result, or its ``checkpoint``) bit for
            bit, as if it had not stopped; ``x0`` must be its ``x``, and the
            options that define the run must be the same (a ``ValueError``
            names any that differs). ``maxiter`` and ``maxfev`` count the whole
            run; a run that ended by a rule other than its limits ends again.
            See :mod:`numba_rmsprop.frontend.checkpoint`.
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
    numba_rmsprop.OptimizeResult
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
            With ``return_history`` (a resumed run: the continuation's losses).
        checkpoint : RunCheckpoint
            What ``options={"resume": res}`` continues from.
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"`options` must be a dict; got {type(options).__name__}.")
    return solve(
        fun, x0, args, jac, callback, bounds, constraints, tol, dict(options), stacklevel=3
    )


# ===================================================================== solver
def solve(fun, x0, args, jac, callback, bounds, constraints, tol, options, stacklevel):
    if not callable(fun):
        raise TypeError(f"`fun` must be callable; got {fun!r}.")
    if not isinstance(args, tuple):
        args = (args,)
    check_constraints(constraints)

    warn_unknown_options(options, (*RMSPROP_OPTIONS, *LOOP_OPTIONS), stacklevel=stacklevel)
    opt = RMSprop(**{k: options[k] for k in RMSPROP_OPTIONS if k in options})
    x = check_x0(x0)
    run = Run(fun, x, args, jac, callback, bounds, tol, opt, options)
    return run.solve()
