"""``minimize_many``: many independent ``minimize`` runs at once.

``minimize_many(fun, X0, ...)`` runs ``k = X0.shape[0]`` independent RMSprop
minimizations of one ``n``-parameter problem: a per-pixel fit of a whole
image, a multi-start, a sweep of the learning rate or the seed.

**The defining rule.** Run ``i`` gives, bit for bit, the result of
``nr.minimize(fun, X0[i], args_i, jac=jac, bounds=bounds, options=options_i)``,
where ``args_i`` has run ``i``'s slice of each argument ``run_args`` names (along
the axis it names; axis 0 by default) and the other arguments whole, and
``options_i`` has the ``i``-th value of every option given as a sequence.
Minibatch order (``seed``), per-run stopping (``gtol``, ``ftol``/``patience``,
``maxiter``, ``maxfev``, a non-finite loss stopping that run only, with its last
finite iterate), ``use_ema``, gradient accumulation and bounds included.

How it runs
-----------
``@njit`` objective (``jac=True``, no callback)
    Compiled: the runs are spread over CPU threads, each run stepping
    through :func:`numba_rmsprop.frontend.segment.segment_loop`, the loop of a
    single compiled ``minimize``, on its own rows of one state array
    (:func:`numba_rmsprop.many.kernels.many_segment`). Runs advance together
    through segments that end at epoch and learning-rate-block boundaries;
    a run that stops drops out and costs nothing further.
``vectorized=True``
    ``fun(X, *args)`` takes every still-active run at once in scipy's layout
    for vectorized objectives: ``X`` of shape ``(n, m)``, one column per active
    run, and the ``run_args`` slices of those runs; it returns ``(f, G)`` of
    shapes ``(m,)`` and ``(n, m)``. An ``@njit`` ``fun`` runs the compiled
    vectorized loop (:mod:`numba_rmsprop.many.columns`: no Python per step);
    otherwise one compiled call updates every active run after each call of
    ``fun`` (:func:`numba_rmsprop.many.kernels.many_step`). With a CUDA ``X0``
    the state lives on the GPU (:mod:`numba_rmsprop.many.cuda`).
Anything else
    One ``nr.minimize`` call per run (the defining rule, literally).

Options that are numbers may be a sequence of ``k`` numbers (one per run):
every numeric ``RMSprop`` argument and ``maxiter``, ``maxfev``, ``gtol``
(``tol``), ``ftol``, ``patience``, ``tol_momentum`` and ``seed``. The others
(booleans, schedules, ``batch_size``, ``shuffle``, ...) are shared.
Runs whose momentum is 0 and runs whose momentum is positive have different
state layouts; they run as two groups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..frontend.api import BoundsLike, Jacobian
from ..frontend.result import OptimizeResult
from .batch import Batch
from .options import is_device_array

if TYPE_CHECKING:
    from distributed import Client
    from numpy.typing import ArrayLike

__all__ = ["minimize_many"]


def minimize_many(
    fun: Callable[..., Any],
    X0: ArrayLike,
    args: tuple = (),
    jac: Jacobian = True,
    bounds: BoundsLike = None,
    options: Mapping[str, Any] | None = None,
    run_args: Sequence[int | tuple[int, int]] = (),
    vectorized: bool = False,
    callback: Callable[..., Any] | None = None,
    *,
    client: Client | None = None,
    runs_per_task: int | None = None,
) -> OptimizeResult:
    """Minimize ``k`` independent problems with RMSprop; ``X0`` has shape ``(k, n)``.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args_i)`` as for :func:`numba_rmsprop.minimize` (with
        ``jac=True`` it returns ``(loss, gradient)``); with ``vectorized=True``
        ``fun(X, *args)`` for the ``m`` active runs at once, ``X`` of shape
        ``(n, m)`` (one column per run, C-contiguous, a copy), returning ``(f, G)``
        of shapes ``(m,)`` and ``(n, m)`` (or ``f`` alone with a callable ``jac``).
    X0 : array_like, shape (k, n)
        One starting point per run (float32 stays float32; other real dtypes
        become float64). A CUDA device array with ``vectorized=True`` keeps
        the whole state on the GPU.
    args : tuple
        Extra arguments of ``fun``; those ``run_args`` names hold one entry per
        run along their runs axis (of length ``k``).
    jac : bool, callable, str or None
        As for :func:`numba_rmsprop.minimize`. With ``vectorized=True``,
        ``True`` or a callable ``jac(X, *args) -> G`` of shape ``(n, m)``.
    bounds : scipy.optimize.Bounds or sequence of (min, max) pairs, optional
        Shared by every run.
    options : dict, optional
        Everything :func:`numba_rmsprop.minimize` takes; an option that is a
        number may be a sequence of ``k`` numbers (run ``i`` takes the
        ``i``-th). ``seed`` may be one seed (every run draws the same
        minibatches) or one per run.
    run_args : sequence of int or (int, int)
        The per-run arguments: a position in ``args`` (the runs along its axis
        0: run ``i`` gets ``args[j][i]``) or a pair ``(position, axis)`` (run
        ``i`` gets index ``i`` along ``axis``, e.g. ``(1, 1)`` for data laid
        out points x runs). With ``vectorized=True`` ``fun`` gets the active
        runs' slices along that axis, the argument itself while all are active.
    vectorized : bool
        ``fun`` evaluates all active runs in one call.
    callback : callable, optional
        Called once per step with an ``OptimizeResult``: ``x`` (``(k, n)``,
        copies of every run's current iterate), ``fun`` (``(k,)``, the loss of
        this step's evaluation, NaN for runs that no longer step), ``nit`` and
        ``active`` (``(k,)``). As ``callback(intermediate_result)`` when that is
        its only parameter, else ``callback(X)``. Raising ``StopIteration``
        stops every active run (status 99). Supported with ``vectorized=True``
        and with ``@njit`` objectives (which then advance one step per
        round); without a callback nothing of it costs anything.
    client : dask.distributed.Client, optional
        Run the ``k`` runs on this Dask cluster, in blocks of
        ``runs_per_task`` runs (one task each, each the local
        ``minimize_many`` of its block on one thread of its worker); the
        arguments shared by every run are scattered to the workers once. The
        result is bit for bit the local one (see :mod:`numba_rmsprop.many.dask`).
        ``fun`` must pickle (define it in a module the workers can import, or
        in ``__main__``); no ``callback``, no CUDA ``X0``.
    runs_per_task : int, optional
        Runs per block with ``client``. Default: ``k`` over four blocks per
        worker thread of the cluster, at least
        :data:`numba_rmsprop.many.dask.MIN_RUNS_PER_TASK` runs.

    Returns
    -------
    numba_rmsprop.OptimizeResult
        ``x`` ``(k, n)``, ``fun`` ``(k,)``, ``jac`` ``(k, n)``, ``nit``, ``nfev``,
        ``njev``, ``status`` (``(k,)`` integer arrays), ``success`` ``(k,)``
        bool, ``message`` (a list of ``k`` strings), ``nepoch`` ``(k,)`` with
        ``batch_size``, ``history`` (a list of ``k`` arrays) with
        ``return_history``, ``checkpoint`` (a sequence of ``k`` run checkpoints,
        each made when read, a list once pickled: ``options={"resume": res}``
        continues every run, each as its ``nr.minimize`` would). Each run's entries are those of its
        ``nr.minimize`` result (a run whose ``X0`` row is not finite: status 2,
        nothing evaluated). ``disp=True`` shows one progress display for the
        whole batch. What combines with what, and what is refused before
        anything runs: :mod:`numba_rmsprop.composition`.
    """
    if not callable(fun):
        raise TypeError(f"`fun` must be callable; got {fun!r}.")
    if not isinstance(args, tuple):
        args = (args,)
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise TypeError(f"`options` must be a dict; got {type(options).__name__}.")
    if not isinstance(vectorized, (bool, np.bool_)):
        raise TypeError(f"`vectorized` must be a bool; got {vectorized!r}.")
    if client is not None:  # dask is imported only here
        from . import dask as _dask

        return _dask.minimize_many(
            fun,
            X0,
            args,
            jac,
            bounds,
            dict(options),
            run_args,
            bool(vectorized),
            callback,
            client,
            runs_per_task,
        )
    if runs_per_task is not None:
        raise ValueError(
            "`runs_per_task` splits the runs into tasks of a Dask cluster: it "
            "needs `client` (a dask.distributed.Client)."
        )
    if is_device_array(X0):
        if not vectorized:
            raise ValueError(
                "A CUDA `X0` needs `vectorized=True`: the objective is device "
                "code that evaluates every run at once."
            )
        from . import cuda as _many_cuda

        return _many_cuda.minimize_many(
            fun, X0, args, jac, bounds, dict(options), tuple(run_args), callback
        )
    batch = Batch(fun, X0, args, jac, bounds, dict(options), run_args, bool(vectorized), callback)
    return batch.solve()
