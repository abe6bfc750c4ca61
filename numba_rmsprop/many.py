"""``minimize_many``: many independent ``minimize`` runs at once.

``minimize_many(fun, X0, ...)`` runs ``k = X0.shape[0]`` independent RMSprop
minimizations of one ``n``-parameter problem: a per-pixel fit of a whole
image, a multi-start, a sweep of the learning rate or the seed.

**The defining rule.** Run ``i`` gives, bit for bit, the result of
``nr.minimize(fun, X0[i], args_i, jac=jac, bounds=bounds, options=options_i)``,
where ``args_i`` has ``args[j][i]`` at the positions ``run_args`` names and the
other arguments whole, and ``options_i`` has the ``i``-th value of every
option given as a sequence. Minibatch order (``seed``), per-run stopping
(``gtol``, ``ftol``/``patience``, ``maxiter``, ``maxfev``, a non-finite loss
stopping that run only, with its last finite iterate), ``use_ema``,
gradient accumulation and bounds included.

How it runs
-----------
``@njit`` objective (``jac=True``, no callback)
    Compiled: the runs are spread over CPU threads, each run stepping
    through :func:`numba_rmsprop._compiled.run_segment`, the loop of a
    single compiled ``minimize``, on its own rows of one state array
    (:func:`numba_rmsprop._compiled.many_segment`). Runs advance together
    through segments that end at epoch and learning-rate-block boundaries;
    a run that stops drops out and costs nothing further.
``vectorized=True``
    ``fun(X, *args)`` takes every still-active run at once (``X`` of shape
    ``(m, n)``, the ``run_args`` rows of those runs) and returns ``(f, G)`` of
    shapes ``(m,)`` and ``(m, n)``; one compiled call then updates every
    active run (:func:`numba_rmsprop._compiled.many_step`). With a CUDA
    ``X0`` the state lives on the GPU (:mod:`numba_rmsprop._many_cuda`).
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

import copy
import math
import warnings
from typing import Callable, Optional, Sequence

import numpy as np
from scipy.optimize import OptimizeResult, OptimizeWarning

from . import _compiled as C
from . import _threads
from ._cpu import entry_point
from ._hyperparameters import _is_integer
from ._lr_blocks import LR_BLOCK, LearningRates
from ._minibatches import Minibatches, positions
from .optimize import (LOOP_OPTIONS, RMSPROP_OPTIONS, STOPS, _bounds_arrays, _bounds_in_dtype,
                       _callback_kind, _is_numba_dispatcher, _loop_options, _solve)
from .optimizer import RMSprop
from .schedules import LearningRateSchedule

__all__ = ["minimize_many"]

#: Options that may hold one value per run.
PER_RUN_OPTIONS = tuple(
    h.name for h in RMSprop._hyperparameters
    if h.option and not isinstance(h.default, bool)
) + ("maxiter", "maxfev", "gtol", "tol", "ftol", "patience", "tol_momentum", "seed")


def minimize_many(fun: Callable, X0, args: tuple = (), jac=True, bounds=None,
                  options: Optional[dict] = None, run_args: Sequence[int] = (),
                  vectorized: bool = False, callback: Optional[Callable] = None, *,
                  client=None, runs_per_task: Optional[int] = None) -> OptimizeResult:
    """Minimize ``k`` independent problems with RMSprop; ``X0`` has shape ``(k, n)``.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args_i)`` as for :func:`numba_rmsprop.minimize` (with
        ``jac=True`` it returns ``(loss, gradient)``); with ``vectorized=True``
        ``fun(X, *args)`` for the ``m`` active runs at once, returning ``(f, G)``
        of shapes ``(m,)`` and ``(m, n)`` (or ``f`` alone with a callable ``jac``).
    X0 : array_like, shape (k, n)
        One starting point per run (float32 stays float32; other real dtypes
        become float64). A CUDA device array with ``vectorized=True`` keeps
        the whole state on the GPU.
    args : tuple
        Extra arguments of ``fun``; those at the positions in ``run_args``
        hold one row per run (axis 0 of length ``k``).
    jac : bool, callable, str or None
        As for :func:`numba_rmsprop.minimize`. With ``vectorized=True``,
        ``True`` or a callable ``jac(X, *args) -> G``.
    bounds : scipy.optimize.Bounds or sequence of (min, max) pairs, optional
        Shared by every run.
    options : dict, optional
        Everything :func:`numba_rmsprop.minimize` takes; an option that is a
        number may be a sequence of ``k`` numbers (run ``i`` takes the
        ``i``-th). ``seed`` may be one seed (every run draws the same
        minibatches) or one per run.
    run_args : sequence of int
        Positions in ``args`` that hold one row per run.
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
        result is bit for bit the local one (see :mod:`numba_rmsprop._dask`).
        ``fun`` must pickle (define it in a module the workers can import, or
        in ``__main__``); no ``callback``, no CUDA ``X0``.
    runs_per_task : int, optional
        Runs per block with ``client``. Default: ``k`` over four blocks per
        worker thread of the cluster, at least
        :data:`numba_rmsprop._dask.MIN_RUNS_PER_TASK` runs.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x`` ``(k, n)``, ``fun`` ``(k,)``, ``jac`` ``(k, n)``, ``nit``, ``nfev``,
        ``njev``, ``status`` (``(k,)`` integer arrays), ``success`` ``(k,)``
        bool, ``message`` (a list of ``k`` strings), ``nepoch`` ``(k,)`` with
        ``batch_size``, ``history`` (a list of ``k`` arrays) with
        ``return_history``. Each run's entries are those of its
        ``nr.minimize`` result.
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
        from . import _dask

        return _dask.minimize_many(fun, X0, args, jac, bounds, dict(options), run_args,
                                   bool(vectorized), callback, client, runs_per_task)
    if runs_per_task is not None:
        raise ValueError("`runs_per_task` splits the runs into tasks of a Dask cluster: it "
                         "needs `client` (a dask.distributed.Client).")
    if _is_device_array(X0):
        if not vectorized:
            raise ValueError("A CUDA `X0` needs `vectorized=True`: the objective is device "
                             "code that evaluates every run at once.")
        from . import _many_cuda

        return _many_cuda.minimize_many(fun, X0, args, jac, bounds, dict(options),
                                        tuple(run_args), callback)
    batch = _Batch(fun, X0, args, jac, bounds, dict(options), run_args, bool(vectorized),
                   callback)
    return batch.solve()


def _is_device_array(a) -> bool:
    if isinstance(a, np.ndarray):
        return False
    from . import _arrays

    return _arrays.is_cuda_array(a)


# ===================================================================== checks
def check_X0(X0) -> np.ndarray:
    """``X0`` as a finite 2-D float32/float64 array ``(k, n)`` (copied)."""
    try:
        a = np.asarray(X0)
    except Exception as exc:
        raise TypeError(f"`X0` must be a 2-D array of real numbers: {exc}") from None
    if a.ndim != 2:
        raise ValueError(f"`X0` must be 2-D, (runs, parameters); got shape {a.shape}.")
    if a.dtype.kind == "c":
        raise TypeError("`X0` must be real; got a complex array.")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"`X0` must hold real numbers; got dtype {a.dtype}.")
    dt = np.float32 if a.dtype == np.float32 else np.float64
    X = np.array(a, dtype=dt, order="C")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"`X0` must have at least one run and one parameter; got shape "
                         f"{X.shape}.")
    if not np.all(np.isfinite(X)):
        r, i = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"`X0` must be finite; X0[{r}, {i}] = {X[r, i]}.")
    return X


def check_run_args(args: tuple, run_args, k: int) -> tuple:
    """Sorted positions of the per-run arguments, each checked to have ``k`` rows."""
    idx = positions(args, run_args, "run_args")
    for j in idx:
        shape = tuple(getattr(args[j], "shape", None) or np.shape(args[j]))
        rows = shape[:1]
        if rows != (k,):
            raise ValueError(
                f"`run_args` names args[{j}], which must hold one row per run: axis 0 of "
                f"length {k} (X0 has {k} runs); got shape {shape}.")
    return tuple(idx)


def split_options(options: dict, k: int) -> tuple:
    """``(shared, per_run)``: the options, and those given as ``k`` per-run values."""
    shared, per_run = {}, {}
    for name, value in options.items():
        if (isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim)) \
                and name not in ("data_args", "finite_diff_rel_step"):
            if name not in PER_RUN_OPTIONS:
                raise ValueError(
                    f"`options[{name!r}]` is shared by every run; only numeric options "
                    f"take one value per run ({', '.join(PER_RUN_OPTIONS)}).")
            values = list(np.asarray(value, dtype=object).reshape(-1)) \
                if isinstance(value, np.ndarray) else list(value)
            if np.ndim(value) != 1 or len(values) != k:
                raise ValueError(f"`options[{name!r}]` must be one number or a sequence of "
                                 f"{k} numbers (one per run); got {len(values)} values.")
            for i, v in enumerate(values):
                if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)) \
                        or (name == "seed" and not _is_integer(v)):
                    raise TypeError(
                        f"`options[{name!r}][{i}]` must be a number; got {v!r}. A per-run "
                        "sequence holds numbers only (leave the option out to turn it off).")
            per_run[name] = values
        else:
            shared[name] = value
    return shared, per_run


def run_options(shared: dict, per_run: dict, i: int) -> dict:
    """The options of run ``i`` (what its ``nr.minimize`` call would get)."""
    o = dict(shared)
    for name, values in per_run.items():
        o[name] = values[i]
    return o


# ===================================================================== the batch
class _NoCompile(Exception):
    """The compiled loop cannot take this objective (the message says why)."""


class _Group:
    """Runs that share one state layout (see the module docstring)."""

    def __init__(self, runs: np.ndarray, opt: RMSprop):
        self.runs = runs  # indices into the batch
        self.opt = opt  # run ``runs[0]``'s optimizer: the shared configuration


class _Batch:
    """One ``minimize_many`` call: checks, groups, the loops and the result."""

    def __init__(self, fun, X0, args, jac, bounds, options, run_args, vectorized, callback,
                 device=False):
        X = check_X0(X0)
        self.device = device
        self.k, self.n = k, n = X.shape
        self.dtype = X.dtype
        self.fun, self.jac, self.args, self.vectorized = fun, jac, args, vectorized
        self.callback = callback
        self.cb_kind = _callback_kind(callback)
        self.bounds_spec = bounds
        self.run_pos = check_run_args(args, run_args, k)
        unknown = sorted(k_ for k_ in options if k_ not in RMSPROP_OPTIONS
                         and k_ not in LOOP_OPTIONS)
        if unknown:
            warnings.warn(f"Unknown solver options: {', '.join(map(str, unknown))}",
                          OptimizeWarning, stacklevel=3)
        self.shared, self.per_run = split_options(options, k)
        self.options0 = run_options(self.shared, self.per_run, 0)
        self.X0 = X

        self.mode = self._mode()
        if self.mode == "each":
            return
        self._check_per_run()
        self.loop = _loop_options(self.options0, None, callback)
        bnds = _bounds_arrays(bounds, n)
        self.bounds64 = bnds
        self.bounds = None if bnds is None else _bounds_in_dtype(bnds[0], bnds[1],
                                                                   self.dtype.type)
        self.groups = self._groups()
        self._limits()
        self._data()

    # ------------------------------------------------------------ setup
    def _check_per_run(self) -> None:
        """Every per-run value, checked by its own validator (one message style)."""
        for name, values in self.per_run.items():
            check = self._validator(name)
            seen = {}
            for i, v in enumerate(values):
                if v not in seen:
                    seen[v] = i
                    check(f"{name}[{i}]", v)

    def check_each(self) -> None:
        """For ``mode == "each"``, the checks the other modes make up front.

        Locally each run's ``nr.minimize`` checks its own options; runs sent to
        other machines are checked here first (per-run values, run 0's loop and
        optimizer options, the bounds), so that bad input fails before they go.
        """
        self._check_per_run()
        o = self.options0
        _loop_options(o, None, self.callback)
        RMSprop(**{name: o[name] for name in RMSPROP_OPTIONS if name in o})
        _bounds_arrays(self.bounds_spec, self.n)

    def _mode(self) -> str:
        """``"compiled"``, ``"vectorized"`` or ``"each"`` (one ``nr.minimize`` per run)."""
        if self.vectorized:
            if not (self.jac is True or (callable(self.jac) and self.jac is not True)):
                raise ValueError("With `vectorized=True`, `jac` must be True (`fun` returns "
                                 "(f, G)) or a callable jac(X, *args) -> G; finite "
                                 "differences need vectorized=False.")
            if self.shared.get("data_args") is not None:
                raise ValueError("`data_args` is not supported with vectorized=True.")
            return "vectorized"
        lr = self.options0.get("learning_rate", 0.001)
        if (_is_numba_dispatcher(self.fun) and self.jac is True
                and self.options0.get("compiled", "auto") is not False
                and self.shared.get("data_args") is None
                and (isinstance(lr, LearningRateSchedule) or not callable(lr))):
            return "compiled"
        if self.callback is not None:
            raise ValueError("A `callback` needs vectorized=True or an @njit `fun` with "
                             "jac=True.")
        if self.options0.get("compiled") is True:
            raise ValueError("compiled=True, but `fun` is not a numba-compiled (@njit) "
                             "function with jac=True (or `data_args` is given).")
        return "each"

    @staticmethod
    def _validator(name):
        if name in LOOP_OPTIONS:
            check = LOOP_OPTIONS[name][1]
            if check is None:  # seed
                return lambda n, v: np.random.default_rng(v)
            return check
        h = next(h for h in RMSprop._hyperparameters if h.name == name)
        return h.check

    def _groups(self) -> list:
        """Runs by layout: momentum zero or positive (the momentum buffer exists or not)."""
        mom = self.per_run.get("momentum")
        if mom is None:
            keys = np.zeros(self.k, dtype=bool)
        else:
            keys = np.asarray(mom, dtype=np.float64) > 0
        groups = []
        for key in np.unique(keys):
            runs = np.flatnonzero(keys == key).astype(np.int64)
            o = run_options(self.shared, self.per_run, int(runs[0]))
            opt = RMSprop(**{name: o[name] for name in RMSPROP_OPTIONS if name in o})
            # The checks that involve several values, for this group's first run
            # (the others differ only in values checked one by one above).
            _loop_options(o, None, self.callback)
            groups.append(_Group(runs, opt))
        return groups

    def _values(self, name, runs=None, default=None):
        """Option ``name`` per run (an array over ``runs``), or its shared value."""
        if name in self.per_run:
            v = self.per_run[name]
            v = v if runs is None else [v[int(r)] for r in runs]
            return np.asarray(v, dtype=np.float64)
        return self.shared.get(name, default)

    def _limits(self) -> None:
        """Each run's ``maxiter`` and ``maxfev``, and its last step (``limit``)."""
        k = self.k
        maxiter = np.full(k, float(self.loop["maxiter"]))
        maxfev = np.full(k, math.inf if self.loop["maxfev"] is None else float(self.loop["maxfev"]))
        if "maxiter" in self.per_run:
            maxiter = np.asarray([LOOP_OPTIONS["maxiter"][1]("maxiter", v)
                                  for v in self.per_run["maxiter"]], dtype=np.float64)
        if "maxfev" in self.per_run:
            maxfev = np.asarray([LOOP_OPTIONS["maxfev"][1]("maxfev", v)
                                 for v in self.per_run["maxfev"]], dtype=np.float64)
        self.maxiter, self.maxfev = maxiter, maxfev
        self.cost = 1  # jac=True or a callable jac: one evaluation per step
        self.limit = np.minimum(maxiter, np.floor(maxfev / self.cost))

    def _data(self) -> None:
        """Minibatches: validated on run 0's arguments; one order per seed."""
        o = self.options0
        self.data = Minibatches(self._run_arguments(0), o.get("batch_size"), o.get("data_args"),
                                self.loop["shuffle"], None)
        self.batched = self.data.batched
        self._seeds = None
        if not self.batched:
            return
        if self.vectorized and "seed" in self.per_run:
            raise ValueError("With vectorized=True every run draws the same minibatches: "
                             "give one `seed`, not one per run.")
        seeds = self.per_run.get("seed")
        if seeds is None:
            seed = o.get("seed")
            if isinstance(seed, np.random.Generator):
                raise TypeError("`seed` must be an integer (or one per run) in "
                                "minimize_many: one Generator cannot be every run's.")
            self._seeds = seed
        else:
            self._seeds = list(seeds)

    def _run_arguments(self, i: int) -> tuple:
        a = self.args
        if not self.run_pos:
            return a
        return tuple(a[j][i] if j in self.run_pos else a[j] for j in range(len(a)))

    # ------------------------------------------------------------ solve
    def solve(self) -> OptimizeResult:
        if self.mode == "each":
            return self._solve_each()
        self.res = _Results(self.k, self.n, self.dtype, self.loop["return_history"])
        states = [self._state(group) for group in self.groups]
        if self.mode == "compiled" and not self.device:
            try:
                self._entries = [self._compile(g, st) for g, st in zip(self.groups, states)]
            except _NoCompile as exc:
                if self.options0.get("compiled", "auto") is True:
                    raise ValueError(f"compiled=True, but {exc}.") from None
                warnings.warn(f"numba_rmsprop: minimize_many runs each run's nr.minimize: "
                              f"{exc}", RuntimeWarning, stacklevel=3)
                return self._solve_each(compiled=False)
        for group, state in zip(self.groups, states):
            if self.device:
                from . import _many_cuda

                _many_cuda.run_group(self, group, state)
            elif self.mode == "compiled":
                self._run_compiled(group, state, self._entries[self.groups.index(group)])
            else:
                self._run_vectorized(group, state)
        return self.res.result(self)

    def _solve_each(self, **forced) -> OptimizeResult:
        """One ``nr.minimize`` per run, assembled."""
        results = []
        for i in range(self.k):
            o = dict(run_options(self.shared, self.per_run, i), **forced)
            results.append(_solve(self.fun, self.X0[i], self._run_arguments(i), self.jac, None,
                                  self.bounds_spec, (), None, o, stacklevel=4))
        return _stack(results, self.n, self.dtype)

    def _state(self, group: _Group):
        """The group's state arrays (``make_state`` over its runs), per-run values filled in."""
        runs = group.runs
        spec = copy.copy(group.opt._spec)
        for name in self.per_run:
            if name in RMSPROP_OPTIONS and name != "learning_rate":
                setattr(spec, name, self._values(name, runs))
        if "gradient_accumulation_steps" in self.per_run:
            spec.accumulation_steps = self._values("gradient_accumulation_steps", runs)
        for option, mode in (("clipnorm", "norm"), ("global_clipnorm", "global"),
                             ("clipvalue", "value")):
            if option in self.per_run:
                spec.clip = self._values(option, runs)
        loop = self.loop
        gtol = loop["gtol"]
        if "gtol" in self.per_run or "tol" in self.per_run:
            gtol = self._values("gtol" if "gtol" in self.per_run else "tol", runs)
        ftol = self._values("ftol", runs) if "ftol" in self.per_run else loop["ftol"]
        patience = self._values("patience", runs) if "patience" in self.per_run \
            else loop["patience"]
        tol_momentum = self._values("tol_momentum", runs) if "tol_momentum" in self.per_run \
            else loop["tol_momentum"]
        initial_velocity = self._values("initial_velocity", runs) \
            if "initial_velocity" in self.per_run else group.opt.initial_velocity
        st = C.make_state(spec, self.X0[runs], self.bounds, gtol=gtol, ftol=ftol,
                          patience=patience, tol_momentum=tol_momentum,
                          initial_velocity=initial_velocity)
        if "learning_rate" in self.per_run:
            lrs = self._values("learning_rate", runs).astype(self.dtype)
            lr_table = np.broadcast_to(lrs[:, None], (runs.size, LR_BLOCK))
            learning = None
        else:
            learning = LearningRates(group.opt._learning_rate, self.dtype, self.limit.max())
            if learning.fn is not None:
                raise ValueError("A zero-argument callable `learning_rate` is not supported by "
                                 "minimize_many; use a schedule.")
            lr_table = None
        inner = self.mode == "vectorized" and not self.device
        return _State(st, runs, lr_table, learning, runs_inner=inner)

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

    def _run_compiled(self, group: _Group, st: "_State", entry) -> None:
        """The compiled loop over the group's runs (see the module docstring)."""
        runs, res = group.runs, self.res
        m = runs.size
        active = np.arange(m, dtype=np.int64)
        it, epoch_pos, order = 0, 0, None
        codes = np.zeros(m, dtype=np.int64)
        made = np.zeros(m, dtype=np.int64)
        flast = np.full(m, np.nan)
        G = np.zeros((m, self.n), dtype=self.dtype)
        args = self.args
        marker = self._marker()
        limit = self.limit[runs]
        rng = self._group_rngs(group)
        while True:
            seg = self._segment(group, st, active, limit, it, epoch_pos, rng, order)
            if seg is None:
                break
            active, nsteps, lr_off, LR, start, order = seg
            if self.callback is not None:
                nsteps = 1
            left = np.zeros(m, dtype=np.int64)
            left[active] = np.minimum(limit[active] - it, nsteps).astype(np.int64)
            H = np.full((m, nsteps), np.nan) if res.history is not None else None
            _threads.run_chunks(
                entry, active.size, self.fun, st.S, st.T, st.P, st.cfg, st.counters, args,
                marker, order,
                start, self.data.batch_size if self.batched else 1,
                self.data.n_samples if self.batched else 1, LR, lr_off, it, left, active,
                runs, codes, made, flast, H, G)
            for q in active:
                r = int(runs[q])
                res.nit[r] = it + made[q]
                res.nev[r] += made[q] + (1 if codes[q] != C.OK else 0)
                if H is not None:
                    res.history[r].append(H[q, :made[q] + (1 if codes[q] != C.OK else 0)].copy())
                if codes[q] != C.OK:
                    res.finish(r, int(codes[q]), float(flast[q]), G[q])
            active = active[codes[active] == C.OK]  # runs at their limit drop out above
            it += nsteps
            if self.batched:
                epoch_pos = (epoch_pos + nsteps) % self.data.n_batches
            if self.callback is not None and self._call_back(st, group, runs, active, flast,
                                                             codes):
                break
        res.store(st, runs, self)
        self._finals(st, runs)

    def _compile(self, group, st):
        """Entry point of ``many_segment`` for this batch's types."""
        from numba import typeof, types

        marker = self._marker()
        picked = self._picked_types()
        order0 = None
        if self.batched:
            order0 = 1 if not self.data.shuffle else np.zeros((1, self.data.n_samples),
                                                             dtype=np.int64)
        i64 = types.int64
        bsig = (picked, i64, i64, typeof(order0[0] if isinstance(order0, np.ndarray)
                                         else order0))
        C.batch_arguments.compile(bsig)
        batch_types = C.batch_arguments.overloads[bsig].signature.return_type
        ftype = self._function_type(typeof(st.S[0, 0].copy()), batch_types)
        LR = st.lr_table if st.learning is None else st.learning.block(0)[None, :]
        H = np.zeros((1, 1)) if self.res.history is not None else None
        sig = (ftype, typeof(st.S), typeof(st.T), typeof(st.P), typeof(st.cfg),
               typeof(st.counters), typeof(self.args), typeof(marker), typeof(order0), i64, i64,
               i64, typeof(LR), i64, i64, typeof(np.zeros(1, np.int64)),
               typeof(np.zeros(1, np.int64)), typeof(np.zeros(1, np.int64)),
               typeof(np.zeros(1, np.int64)), typeof(np.zeros(1, np.int64)),
               typeof(np.zeros(1)), typeof(H), typeof(np.zeros((1, self.n), self.dtype)), i64,
               i64)
        return C.many_segment.compile(sig)

    def _function_type(self, x_type, arg_types):
        """The first-class function type of ``fun`` called with these argument types."""
        from numba import types

        fargs = (x_type,) + tuple(arg_types)
        try:
            self.fun.compile(fargs)
        except Exception as exc:
            text = str(exc).strip()
            raise _NoCompile(
                "`fun` did not compile for the runs' arguments "
                f"({type(exc).__name__}: {text.splitlines()[0] if text else ''})") from None
        ret = self.fun.overloads[fargs].signature.return_type
        return types.FunctionType(ret(*fargs))

    def _picked_types(self):
        from numba import typeof, types

        sig = (typeof(self.args), typeof(self._marker()), types.int64)
        C.pick_arguments.compile(sig)
        return C.pick_arguments.overloads[sig].signature.return_type

    def _compile_final(self, X, runs, F, G, ok):
        """Entry point of ``many_final`` (the objective on all data, per run)."""
        from numba import typeof, types

        ftype = self._function_type(typeof(X[0]), self._picked_types())
        i64 = types.int64
        sig = (ftype, typeof(X), typeof(self.args), typeof(self._marker()), typeof(runs),
               typeof(F), typeof(G), typeof(ok), i64, i64)
        return C.many_final.compile(sig)

    def _marker(self) -> tuple:
        """Per argument: True for the per-run ones (``run_args``), None for shared ones."""
        return tuple(True if j in self.run_pos else None for j in range(len(self.args)))

    # ------------------------------------------------------------ vectorized
    def _run_vectorized(self, group: _Group, st: "_State") -> None:
        """Python steps; ``fun`` evaluates every active run at once.

        A step is the objective's call and one compiled call
        (:func:`numba_rmsprop._compiled.many_step`); nothing per run happens
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
        step = entry_point(C.many_step, (st.S, np.zeros((1, n), self.dtype), st.T, st.P, st.cfg,
                                          st.counters, np.zeros(1), 0, self._lr_for(st, 0), 0,
                                          active, codes, st.same_counters, st.same_scalars))
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
        xs = st.xs()  # the iterates, a view
        batched, callback = self.batched, self.callback
        while not stopped:
            before = active.size
            seg = self._segment(group, st, active, limit, it, epoch_pos, rng, perm)
            if seg is None:
                break
            active, nsteps, lr_off, LR, start, perm = seg
            changed = changed or active.size != before
            nsteps = min(nsteps, int(limit[active].min()) - it)  # up to the next limit
            for j in range(nsteps):
                if batched:  # the minibatch, shared by every run
                    s_, e_ = start + j * self.data.batch_size, min(
                        start + (j + 1) * self.data.batch_size, self.data.n_samples)
                    idx = None if isinstance(perm, int) else perm[0, s_:e_]
                    for i in data_idx:
                        lst[i] = a[i][s_:e_] if idx is None else a[i][idx]
                ma = active.size
                if changed:
                    whole = ma == self.k  # every run of the batch: the arguments as given
                    sel = runs[active]
                    for i in self.run_pos:
                        lst[i] = a[i] if whole else a[i][sel]
                    changed = False
                X = xs.copy() if ma == m else xs[active]
                out = fun(X, *lst)
                if pair:
                    f, G = _pair(out, ma)
                else:
                    f, G = out, jac(X.copy(), *lst)
                f, G = _check_batch(f, G, ma, n, dt)
                n_stop = step(S, G, T, P, cfg, counters, f, it, LR, lr_off + j, active, codes,
                              *same)
                if history is not None:
                    history.append((sel, f.copy()))
                it += 1
                if n_stop:
                    stop = codes[:ma] != C.OK
                    for q in np.flatnonzero(stop):
                        r = int(sel[q])
                        res.nit[r], res.nev[r] = it - 1, it
                        res.finish(r, int(codes[q]), float(f[q]), G[q])
                    active = active[~stop]
                    changed = True
                if callback is not None:
                    res.nit[runs[active]] = res.nev[runs[active]] = it
                    fl = np.full(m, np.nan)
                    fl[active] = f[codes[:ma] == C.OK] if n_stop else f
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
                for q, fq in zip(sel_, f):
                    res.history[int(q)].append(np.array([fq]))
        res.store(st, runs, self)
        self._finals(st, runs)

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
                self.callback(intermediate_result=OptimizeResult(
                    x=X, fun=fun, nit=res.nit.copy(), active=act))
            else:
                self.callback(X)
        except StopIteration:
            for q in still:
                res.finish(int(runs[q]), "stop", math.nan, None)
            return True
        return False

    # ------------------------------------------------------------ finals
    def _finals(self, st, runs) -> None:
        """``fun`` and ``jac`` on all data at the returned ``x`` (as nr.minimize does)."""
        res = self.res
        need = [q for q, r in enumerate(runs) if not res.reuse[r]]
        if not need:
            return
        need = np.asarray(need, dtype=np.int64)
        X = res.x[runs[need]]
        if self.mode == "compiled":
            F = np.zeros(self.k)
            Gall = np.zeros((self.k, self.n), self.dtype)
            ok = np.zeros(self.k, dtype=np.int64)
            Xall = np.zeros((self.k, self.n), self.dtype)
            Xall[runs[need]] = X
            final = self._compile_final(Xall, runs[need], F, Gall, ok)
            _threads.run_chunks(final, need.size, self.fun, Xall, self.args,
                                self._marker(), runs[need], F, Gall, ok)
            for r in runs[need]:
                if not ok[r]:
                    raise ValueError(f"The final evaluation of run {r} returned a loss or "
                                     f"gradient of the wrong size (n = {self.n}).")
                res.set_final(int(r), float(F[r]), Gall[r])
        else:
            lst = list(self.args)
            for i in self.run_pos:
                lst[i] = self.args[i][runs[need]]
            out = self.fun(X.copy(), *lst)
            if self.jac is True:
                f, G = _pair(out, need.size)
            else:
                f, G = out, self.jac(X.copy(), *lst)
            f, G = _check_batch(f, G, need.size, self.n, self.dtype)
            for q, r in enumerate(runs[need]):
                res.set_final(int(r), float(f[q]), G[q])


class _State:
    """A group's state (``make_state`` over its runs) and its learning rates.

    With ``runs_inner`` (the vectorized loop on the CPU) ``S`` is laid out
    ``(rows, k, n)``, each state row of all runs one contiguous block, for
    :func:`numba_rmsprop._compiled.many_step`; else ``(k, rows, n)``.
    """

    def __init__(self, st, runs, lr_table, learning, runs_inner=False):
        self.S, self.T, self.P, self.cfg, _, self.r_avg, self.counters = st
        self.runs_inner = runs_inner
        if runs_inner:
            self.S = np.ascontiguousarray(self.S.transpose(1, 0, 2))
        self.runs = runs
        self.lr_table = lr_table  # per-run constant rates, broadcast over a block
        self.learning = learning  # shared rates (LearningRates), or None
        # Every run has the same counters (and per-call scalars): one pass can update
        # all (and with one row of scalars).
        self.same_counters = bool((self.counters == self.counters[:1]).all())
        self.same_scalars = bool(lr_table is None and (self.P == self.P[:1]).all())

    def xs(self) -> np.ndarray:
        """The runs' iterates ``(k, n)`` (a view)."""
        return self.S[0] if self.runs_inner else self.S[:, 0, :]

    def row(self, q: int, r: int) -> np.ndarray:
        """State row ``r`` of run ``q`` (a view)."""
        return self.S[r, q] if self.runs_inner else self.S[q, r]


class _Results:
    """The batched result, filled run by run."""

    def __init__(self, k, n, dtype, history):
        self.k, self.n = k, n
        self.x = np.zeros((k, n), dtype)
        self.fun = np.full(k, np.nan)
        self.jac = np.zeros((k, n), dtype)
        self.nit = np.zeros(k, dtype=np.int64)
        self.nev = np.zeros(k, dtype=np.int64)
        self.extra = np.zeros(k, dtype=np.int64)  # the final evaluation
        self.nepoch = np.zeros(k, dtype=np.int64)
        self.code = [None] * k  # a stop code of _compiled, "stop", or a limit
        self.f_last = np.full(k, np.nan)
        self.reuse = np.zeros(k, dtype=bool)
        self.gnorm = np.zeros(k)
        self.history = [[] for _ in range(k)] if history else None

    def finish(self, r, code, f, g) -> None:
        """Run ``r`` stopped with ``code`` at its evaluation of loss ``f``, gradient ``g``."""
        self.code[r] = code
        self.f_last[r] = f
        if g is not None:
            self.jac[r] = g

    def finish_limit(self, r, batch) -> None:
        self.code[r] = "maxiter" if self.nit[r] >= batch.maxiter[r] else "maxfev"

    def x_now(self, st, runs):
        X = np.zeros((self.k, self.n), st.S.dtype)
        X[runs] = st.xs()
        return X

    def store(self, st, runs, batch) -> None:
        """The returned iterates and what the final evaluation can reuse (as nr.minimize)."""
        for q, r in enumerate(runs):
            r = int(r)
            code = self.code[r]
            raw = code in (C.NONFINITE_LOSS, C.NONFINITE_GRAD, C.OVERFLOW)
            self.x[r] = st.row(q, 0) if raw or st.r_avg is None else st.row(q, st.r_avg)
            self.gnorm[r] = st.T[q, C.T_GNORM]
            self.reuse[r] = raw or (code in (C.GTOL, C.FTOL) and not batch.batched
                                    and st.r_avg is None)
            if self.reuse[r]:
                self.fun[r] = self.f_last[r]

    def set_final(self, r, f, g) -> None:
        self.fun[r] = f
        self.jac[r] = g
        self.extra[r] = 1

    def result(self, batch) -> OptimizeResult:
        k = self.k
        status = np.zeros(k, dtype=np.int64)
        messages = []
        for r in range(k):
            code = self.code[r]
            key = 99 if code == "stop" else _stop_key(batch, r, code)
            st_, msg = STOPS[key]
            status[r] = st_
            messages.append(msg.format(**_fields(batch, r, self)))
        cost = batch.cost
        res = OptimizeResult(x=self.x, fun=self.fun, jac=self.jac, nit=self.nit,
                             nfev=(self.nev + self.extra) * cost, njev=self.nev + self.extra,
                             status=status, success=status == 0, message=messages)
        if batch.batched:
            res.nepoch = self.nepoch
        if self.history is not None:
            res.history = [np.concatenate(h) if h else np.zeros(0) for h in self.history]
        return res


def _stop_key(batch, r, code):
    """The :data:`~numba_rmsprop.optimize.STOPS` key of run ``r``."""
    if code not in ("maxiter", "maxfev"):
        return code
    loop = batch.loop  # run 0's; a tolerance given per run is given for every run
    return code + (", tol" if loop["gtol"] is not None or loop["ftol"] is not None else "")


def _fields(batch, r, res) -> dict:
    """The values run ``r``'s message names (its own options)."""
    def val(name):
        if name in batch.per_run:
            return batch.per_run[name][r]
        return batch.loop[name]

    gtol = batch.per_run["tol"][r] if "tol" in batch.per_run and "gtol" not in batch.per_run \
        else val("gtol")
    maxiter, maxfev = batch.maxiter[r], batch.maxfev[r]
    it, nev = int(res.nit[r]), int(res.nev[r])
    return dict(maxiter=int(maxiter) if math.isfinite(maxiter) else maxiter,
                maxfev=int(maxfev) if math.isfinite(maxfev) else None, gtol=gtol,
                ftol=val("ftol"), patience=val("patience"), gnorm=res.gnorm[r],
                f_last=res.f_last[r],
                step=f"step {it} (0-based optimizer call {it}, evaluation {nev})")


def _pair(out, m):
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError("With jac=True and vectorized=True, `fun` must return a pair (f, G) "
                         f"of shapes ({m},) and ({m}, n); got {type(out).__name__}.")
    return out


def _check_batch(f, G, m, n, dt):
    """``f`` as ``(m,)`` float64 and ``G`` as a C-contiguous ``(m, n)`` array of ``dt``."""
    if (f.__class__ is np.ndarray and G.__class__ is np.ndarray and f.dtype == np.float64
            and G.dtype == dt and f.shape == (m,) and G.shape == (m, n)
            and G.flags.c_contiguous and f.flags.c_contiguous):
        return f, G
    f = np.asarray(f)
    if f.shape != (m,):
        raise ValueError(f"The vectorized `fun` must return losses of shape ({m},) for the "
                         f"{m} active runs; got shape {f.shape}.")
    if f.dtype.kind not in "fiub":
        raise TypeError(f"The vectorized losses must be real; got dtype {f.dtype}.")
    G = np.asarray(G)
    if G.shape != (m, n):
        raise ValueError(f"The vectorized gradient must have shape ({m}, {n}) for the {m} "
                         f"active runs of {n} parameters; got shape {G.shape}.")
    if G.dtype.kind not in "fiub":
        raise TypeError(f"The vectorized gradient must be real; got dtype {G.dtype}.")
    return np.ascontiguousarray(f, dtype=np.float64), np.ascontiguousarray(G, dtype=dt)


def _stack(results, n, dtype) -> OptimizeResult:
    """``nr.minimize`` results, one per run, as one batched result."""
    res = OptimizeResult(
        x=np.stack([r.x for r in results]).astype(dtype, copy=False),
        fun=np.array([r.fun for r in results], dtype=np.float64),
        jac=np.stack([np.asarray(r.jac, dtype=dtype) for r in results]),
        nit=np.array([r.nit for r in results], dtype=np.int64),
        nfev=np.array([r.nfev for r in results], dtype=np.int64),
        njev=np.array([r.njev for r in results], dtype=np.int64),
        status=np.array([r.status for r in results], dtype=np.int64),
        success=np.array([r.success for r in results], dtype=bool),
        message=[r.message for r in results])
    if all("nepoch" in r for r in results):
        res.nepoch = np.array([r.nepoch for r in results], dtype=np.int64)
    if all("history" in r for r in results):
        res.history = [r.history for r in results]
    return res
