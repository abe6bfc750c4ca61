"""One ``minimize_many`` call on this machine: checks, groups, segments and the result.

:class:`Batch` checks everything first (``X0``, ``run_args``, every per-run
value, the shared options), sorts the runs into groups of one state layout,
and runs them in one of four ways: the compiled loop
(:class:`~.compiled.CompiledRuns`), the compiled vectorized loop
(:class:`~.compiled_vectorized.CompiledVectorizedRuns`), the vectorized loop
(:class:`~.vectorized.VectorizedRuns`), or one ``nr.minimize`` per run.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..frontend.api import solve
from ..frontend.minibatches import Minibatches, make_batches
from ..frontend.options import (
    LOOP_OPTIONS,
    RMSPROP_OPTIONS,
    bounds_arrays,
    bounds_in_dtype,
    callback_kind,
    loop_options,
)
from ..frontend.result import OptimizeResult
from ..frontend.scipy_types import warn_unknown_options
from ..optimizer import RMSprop
from .checks import Checks
from .compiled import CompiledRuns, NoCompile
from .compiled_vectorized import CompiledVectorizedRuns
from .options import check_run_args, check_X0, run_options, split_options, take_runs
from .results import GroupStates, Results, stack_results
from .segments import Segments
from .vectorized import VectorizedRuns


class Group:
    """Runs that share one state layout (see the module docstring)."""

    def __init__(self, runs: np.ndarray, opt: RMSprop):
        self.runs = runs  # indices into the batch
        self.opt = opt  # run ``runs[0]``'s optimizer: the shared configuration


class Batch(Checks, GroupStates, Segments, CompiledRuns, CompiledVectorizedRuns, VectorizedRuns):
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
        self.run_axis = check_run_args(args, run_args, k)  # {position: axis of the runs}
        self.run_pos = tuple(self.run_axis)
        warn_unknown_options(options, (*RMSPROP_OPTIONS, *LOOP_OPTIONS), stacklevel=3)
        self.shared, self.per_run = split_options(options, k)
        self.rng_initial = [None] * k  # each run's generator state at its start (minibatches)
        self.resumed = self._resumed_runs()
        self.options0 = run_options(self.shared, self.per_run, 0)
        self.X0 = X

        # Every check, for every run and in every mode, before anything runs.
        self.entry = self._entry()
        self.mode = self._mode()
        self._check_per_run()
        self._check_nesterov_momentum()
        self._limits()
        self.loop = loop_options(self.options0, None, callback)
        bnds = bounds_arrays(bounds, n)
        self.bounds64 = bnds
        self.bounds = None if bnds is None else bounds_in_dtype(bnds[0], bnds[1], self.dtype.type)
        if self.mode == "each":  # each run's nr.minimize: run 0's optimizer and data
            RMSprop(
                **{name: self.options0[name] for name in RMSPROP_OPTIONS if name in self.options0}
            )
            o = self.options0
            make_batches(
                self._run_arguments(0),
                o.get("batch_size"),
                o.get("data_args"),
                self.loop["shuffle"],
                None,
                self.loop["shuffle_buffer"],
                self.loop["client"],
            ).close()
            return
        self.groups = self._groups()
        self._data()

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

    @property
    def args_by_run(self) -> tuple:
        """``args`` with the runs of each per-run argument along its axis 0 (a view
        where ``run_args`` named another axis): run ``i``'s own argument is ``a[i]``."""
        ax = self.run_axis
        return tuple(
            np.moveaxis(a, ax[j], 0) if ax.get(j, 0) else a for j, a in enumerate(self.args)
        )

    def _run_arguments(self, i: int) -> tuple:
        a = self.args
        if not self.run_pos:
            return a
        ax = self.run_axis
        return tuple(take_runs(a[j], ax[j], i) if j in ax else a[j] for j in range(len(a)))

    # ------------------------------------------------------------ solve
    def solve(self, run_group=None) -> OptimizeResult:
        """Run every group; ``run_group(batch, group, state)`` runs one (default: the
        compiled or vectorized loop of this machine's CPU)."""
        if self.mode == "each":
            return self._solve_each()
        self.bar = self._progress("step", sum(self.limit[g.runs].max() for g in self.groups))
        try:
            res = self._solve_groups(run_group)
            if self.bar is not None:  # the final losses
                self.bar.update(self.bar.done, **self.summary(0, res.fun))
            return res
        finally:
            if self.bar is not None:
                self.bar.close()

    def _solve_groups(self, run_group) -> OptimizeResult:
        self.res = Results(self.k, self.n, self.dtype, self.loop["return_history"])
        self.res.finish_unstarted(self.bad_x0)
        states = [self._state(group) for group in self.groups]
        if self.mode == "compiled" and run_group is None:
            try:
                self._entries = [
                    self._compile(g, st) for g, st in zip(self.groups, states, strict=False)
                ]
            except NoCompile as exc:
                self._not_compiled(exc, "runs each run's nr.minimize")
                return self._solve_each(compiled=False)
        columns = None  # the compiled vectorized loop's entry points, one per group
        if self.mode == "vectorized" and run_group is None and self._columns_possible():
            try:
                columns = [self._compile_columns(st) for st in states]
            except NoCompile as exc:
                self._not_compiled(exc, "calls the vectorized `fun` from Python")
        for g, (group, state) in enumerate(zip(self.groups, states, strict=True)):
            self.shown = self.bar.done if self.bar is not None else 0  # steps of earlier groups
            self.waiting = sum(later.runs.size for later in self.groups[g + 1 :])
            if run_group is not None:
                run_group(self, group, state)
            elif self.mode == "compiled":
                self._run_compiled(group, state, self._entries[self.groups.index(group)])
            elif columns is not None:
                self._run_columns(group, state, columns[g])
            else:
                self._run_vectorized(group, state)
        return self.res.result(self)

    def _not_compiled(self, exc: Exception, instead: str) -> None:
        """A compiled loop cannot take ``fun``: an error with ``compiled=True``, else a
        warning that says what runs ``instead``."""
        if self.options0.get("compiled", "auto") is True:
            raise ValueError(f"compiled=True, but {exc}.") from None
        warnings.warn(
            f"numba_rmsprop: minimize_many {instead}: {exc}", RuntimeWarning, stacklevel=4
        )

    def _solve_each(self, **forced) -> OptimizeResult:
        """One ``nr.minimize`` per run, assembled; ``disp`` shows the batch's runs done."""
        results = []
        bar = self._progress("run", self.k)
        for i in range(self.k):
            if bar is not None:
                fun = np.array([r.fun for r in results], dtype=np.float64)
                bar.update(i, **self.summary(self.k - i, fun))
            o = dict(run_options(self.shared, self.per_run, i), **forced, disp=False)
            if self.resumed is not None:
                o["resume"] = self.resumed[i]
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
        if bar is not None:
            bar.update(self.k, **self.summary(0, np.array([r.fun for r in results])))
            bar.close()
        return stack_results(results, self.n, self.dtype)
