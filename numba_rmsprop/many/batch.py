"""One ``minimize_many`` call on this machine: checks, groups, segments and the result.

:class:`Batch` checks everything first (``X0``, ``run_args``, every per-run
value, the shared options), sorts the runs into groups of one state layout,
and runs them in one of three modes: the compiled loop
(:class:`~.compiled.CompiledRuns`), the vectorized loop
(:class:`~.vectorized.VectorizedRuns`), or one ``nr.minimize`` per run.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import OptimizeResult, OptimizeWarning

from ..frontend.api import solve
from ..frontend.minibatches import Minibatches
from ..frontend.options import (
    LOOP_OPTIONS,
    RMSPROP_OPTIONS,
    bounds_arrays,
    bounds_in_dtype,
    callback_kind,
    is_numba_dispatcher,
    loop_options,
)
from ..optimizer import RMSprop
from ..schedules import LearningRateSchedule
from .compiled import CompiledRuns, NoCompile
from .options import check_run_args, check_X0, run_options, split_options
from .results import GroupStates, Results, stack_results
from .segments import Segments
from .vectorized import VectorizedRuns


class Group:
    """Runs that share one state layout (see the module docstring)."""

    def __init__(self, runs: np.ndarray, opt: RMSprop):
        self.runs = runs  # indices into the batch
        self.opt = opt  # run ``runs[0]``'s optimizer: the shared configuration


class Batch(GroupStates, Segments, CompiledRuns, VectorizedRuns):
    """One ``minimize_many`` call: checks, groups, the loops and the result."""

    def __init__(
        self, fun, X0, args, jac, bounds, options, run_args, vectorized, callback, device=False
    ):
        X = check_X0(X0)
        self.device = device
        self.k, self.n = k, n = X.shape
        self.dtype = X.dtype
        self.fun, self.jac, self.args, self.vectorized = fun, jac, args, vectorized
        self.callback = callback
        self.cb_kind = callback_kind(callback)
        self.bounds_spec = bounds
        self.run_pos = check_run_args(args, run_args, k)
        unknown = sorted(
            k_ for k_ in options if k_ not in RMSPROP_OPTIONS and k_ not in LOOP_OPTIONS
        )
        if unknown:
            warnings.warn(
                f"Unknown solver options: {', '.join(map(str, unknown))}",
                OptimizeWarning,
                stacklevel=3,
            )
        self.shared, self.per_run = split_options(options, k)
        self.options0 = run_options(self.shared, self.per_run, 0)
        self.X0 = X

        self.mode = self._mode()
        if self.mode == "each":
            return
        self._check_per_run()
        self.loop = loop_options(self.options0, None, callback)
        bnds = bounds_arrays(bounds, n)
        self.bounds64 = bnds
        self.bounds = None if bnds is None else bounds_in_dtype(bnds[0], bnds[1], self.dtype.type)
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
        loop_options(o, None, self.callback)
        RMSprop(**{name: o[name] for name in RMSPROP_OPTIONS if name in o})
        bounds_arrays(self.bounds_spec, self.n)

    def _mode(self) -> str:
        """``"compiled"``, ``"vectorized"`` or ``"each"`` (one ``nr.minimize`` per run)."""
        if self.vectorized:
            if not (self.jac is True or (callable(self.jac) and self.jac is not True)):
                raise ValueError(
                    "With `vectorized=True`, `jac` must be True (`fun` returns "
                    "(f, G)) or a callable jac(X, *args) -> G; finite "
                    "differences need vectorized=False."
                )
            if self.shared.get("data_args") is not None:
                raise ValueError("`data_args` is not supported with vectorized=True.")
            return "vectorized"
        lr = self.options0.get("learning_rate", 0.001)
        if (
            is_numba_dispatcher(self.fun)
            and self.jac is True
            and self.options0.get("compiled", "auto") is not False
            and self.shared.get("data_args") is None
            and (isinstance(lr, LearningRateSchedule) or not callable(lr))
        ):
            return "compiled"
        if self.callback is not None:
            raise ValueError("A `callback` needs vectorized=True or an @njit `fun` with jac=True.")
        if self.options0.get("compiled") is True:
            raise ValueError(
                "compiled=True, but `fun` is not a numba-compiled (@njit) "
                "function with jac=True (or `data_args` is given)."
            )
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
            loop_options(o, None, self.callback)
            groups.append(Group(runs, opt))
        return groups

    def _limits(self) -> None:
        """Each run's ``maxiter`` and ``maxfev``, and its last step (``limit``)."""
        k = self.k
        maxiter = np.full(k, float(self.loop["maxiter"]))
        maxfev = np.full(k, math.inf if self.loop["maxfev"] is None else float(self.loop["maxfev"]))
        if "maxiter" in self.per_run:
            maxiter = np.asarray(
                [LOOP_OPTIONS["maxiter"][1]("maxiter", v) for v in self.per_run["maxiter"]],
                dtype=np.float64,
            )
        if "maxfev" in self.per_run:
            maxfev = np.asarray(
                [LOOP_OPTIONS["maxfev"][1]("maxfev", v) for v in self.per_run["maxfev"]],
                dtype=np.float64,
            )
        self.maxiter, self.maxfev = maxiter, maxfev
        self.cost = 1  # jac=True or a callable jac: one evaluation per step
        self.limit = np.minimum(maxiter, np.floor(maxfev / self.cost))

    def _data(self) -> None:
        """Minibatches: validated on run 0's arguments; one order per seed."""
        o = self.options0
        self.data = Minibatches(
            self._run_arguments(0),
            o.get("batch_size"),
            o.get("data_args"),
            self.loop["shuffle"],
            None,
        )
        self.batched = self.data.batched
        self._seeds = None
        if not self.batched:
            return
        if self.vectorized and "seed" in self.per_run:
            raise ValueError(
                "With vectorized=True every run draws the same minibatches: "
                "give one `seed`, not one per run."
            )
        seeds = self.per_run.get("seed")
        if seeds is None:
            seed = o.get("seed")
            if isinstance(seed, np.random.Generator):
                raise TypeError(
                    "`seed` must be an integer (or one per run) in "
                    "minimize_many: one Generator cannot be every run's."
                )
            self._seeds = seed
        else:
            self._seeds = list(seeds)

    def _run_arguments(self, i: int) -> tuple:
        a = self.args
        if not self.run_pos:
            return a
        return tuple(a[j][i] if j in self.run_pos else a[j] for j in range(len(a)))

    # ------------------------------------------------------------ solve
    def solve(self, run_group=None) -> OptimizeResult:
        """Run every group; ``run_group(batch, group, state)`` runs one (default: the
        compiled or vectorized loop of this machine's CPU)."""
        if self.mode == "each":
            return self._solve_each()
        self.res = Results(self.k, self.n, self.dtype, self.loop["return_history"])
        states = [self._state(group) for group in self.groups]
        if self.mode == "compiled" and run_group is None:
            try:
                self._entries = [
                    self._compile(g, st) for g, st in zip(self.groups, states, strict=False)
                ]
            except NoCompile as exc:
                if self.options0.get("compiled", "auto") is True:
                    raise ValueError(f"compiled=True, but {exc}.") from None
                warnings.warn(
                    f"numba_rmsprop: minimize_many runs each run's nr.minimize: {exc}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return self._solve_each(compiled=False)
        for group, state in zip(self.groups, states, strict=False):
            if run_group is not None:
                run_group(self, group, state)
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
            results.append(
                solve(
                    self.fun,
                    self.X0[i],
                    self._run_arguments(i),
                    self.jac,
                    None,
                    self.bounds_spec,
                    (),
                    None,
                    o,
                    stacklevel=4,
                )
            )
        return stack_results(results, self.n, self.dtype)
