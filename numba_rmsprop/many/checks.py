"""The checks of a ``minimize_many`` call: a mixin of :class:`~.batch.Batch`.

Every check runs for every run and in every mode before anything runs: each
per-run value by its own validator (naming the run), the rules between values,
the stopping rule of every run, what the composition table refuses
(:mod:`numba_rmsprop.composition`), and which loop takes the runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..composition import refuse
from ..frontend.checkpoint import fixed_options
from ..frontend.data import is_dask_array
from ..frontend.options import DEFAULT_MAXITER, LOOP_OPTIONS, RMSPROP_OPTIONS, is_numba_dispatcher
from ..optimizer import RMSprop
from ..schedules import LearningRateSchedule
from .options import run_options


class Checks:
    """Checks, the mode, limits and per-run fixed options, for :class:`~.batch.Batch`."""

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

    def _check_nesterov_momentum(self) -> None:
        """Nesterov needs momentum > 0 in every run (the one rule between a shared and a
        per-run value; the groups check run 0 of each layout)."""
        mom = self.per_run.get("momentum")
        if mom is not None and self.options0.get("nesterov"):
            for i, m in enumerate(mom):
                if m == 0:
                    raise ValueError(f"`nesterov=True` needs `momentum` > 0; momentum[{i}] = 0.")

    def _resumed_runs(self):
        """With ``options["resume"]`` (an earlier result of minimize_many, or its list of
        checkpoints): one checkpoint per run, else None."""
        given = self.shared.get("resume")
        if given is None:
            return None
        ckpts = getattr(given, "checkpoint", given)
        is_seq = isinstance(ckpts, Sequence) and not isinstance(ckpts, str)
        if not is_seq or len(ckpts) != self.k:
            raise ValueError(
                f"`resume` must be an earlier minimize_many result of {self.k} runs (or its "
                f"`.checkpoint`, a list of {self.k}); got {type(given).__name__}"
                + (f" of {len(ckpts)}" if is_seq else "")
                + "."
            )
        return list(ckpts)

    def fixed_of(self, r: int) -> dict:
        """Run ``r``'s options that a continuation must repeat (frontend/checkpoint.py), as
        its ``nr.minimize`` records them (made once per distinct set of per-run values)."""
        key = tuple(values[r] for values in self.per_run.values())
        cache = self.__dict__.setdefault("_fixed", {})
        try:
            return dict(cache[key])
        except TypeError:  # a per-run value that does not hash: made for this run alone
            return self._fixed_of(r)
        except KeyError:
            cache[key] = self._fixed_of(r)
            return dict(cache[key])

    def _fixed_of(self, r: int) -> dict:
        o = run_options(self.shared, self.per_run, r)
        config = RMSprop(**{n_: o[n_] for n_ in RMSPROP_OPTIONS if n_ in o}).get_config()
        loop = dict(self.loop, seed=o.get("seed"))
        loop["tol_momentum"] = LOOP_OPTIONS["tol_momentum"][1](
            "tol_momentum", o.get("tol_momentum", 0.9)
        )
        d = self.data
        return fixed_options(config, self.n, self.dtype, loop, self.bounds64, d.n_samples)

    def _entry(self) -> str:
        """This call's row of :data:`numba_rmsprop.composition.TABLE`."""
        if self.device:
            return "many_cuda"
        compiled_fun = is_numba_dispatcher(self.fun) and self.jac is True
        allowed = self.options0.get("compiled", "auto") is not False
        if self.vectorized:
            return "many_vectorized_compiled" if compiled_fun and allowed else "many_vectorized"
        if compiled_fun:
            if allowed:
                return "many_compiled"
        elif self.options0.get("compiled") is True:
            raise ValueError(
                "compiled=True, but `fun` is not a numba-compiled (@njit) function with jac=True."
            )
        return "many_each"

    def features(self) -> set:
        """The features of :data:`numba_rmsprop.composition.FEATURES` this call uses."""
        o, jac = self.options0, self.jac
        lr = o.get("learning_rate")
        maxiter = self.per_run.get("maxiter", [self.shared.get("maxiter")])
        used = {
            "dask_data": any(is_dask_array(a) for a in self.args),
            "per_run_data": bool(self.run_pos),
            "minibatches": o.get("batch_size") is not None,
            "per_run_seed": "seed" in self.per_run,
            "callback": self.callback is not None,
            "finite_differences": not (jac is True or callable(jac)),
            "callable_lr": callable(lr) and not isinstance(lr, LearningRateSchedule),
            "per_run_options": bool(self.per_run),
            "bounds": self.bounds_spec is not None,
            "tolerances": any(o.get(t) is not None for t in ("gtol", "tol", "ftol")),
            "maxiter_inf": any(m == math.inf for m in maxiter),
            "checkpoint": self.shared.get("resume") is not None,
        }
        return {name for name, on in used.items() if on}

    def _mode(self) -> str:
        """``"compiled"``, ``"vectorized"`` or ``"each"`` (one ``nr.minimize`` per run),
        once the table has refused what it refuses (nothing has run)."""
        used = self.features()
        refuse(self.entry, used)
        if self.entry in ("many_vectorized", "many_vectorized_compiled", "many_cuda"):
            if self.shared.get("data_args") is not None:
                raise ValueError("`data_args` is not supported with vectorized=True.")
            return "vectorized"
        if self.entry == "many_compiled" and not (
            used & {"dask_data", "callable_lr", "checkpoint"}
            or self.shared.get("data_args") is not None
        ):
            return "compiled"
        if self.options0.get("compiled") is True:
            raise ValueError(
                "compiled=True, but the runs need each run's nr.minimize (dask arrays, a "
                "callable learning_rate, `data_args` or `resume`)."
            )
        return "each"

    @staticmethod
    def _validator(name):
        if name in LOOP_OPTIONS:
            return LOOP_OPTIONS[name][1]
        h = next(h for h in RMSprop._hyperparameters if h.name == name)
        return h.check

    def _limits(self) -> None:
        """Each run's ``maxiter`` and ``maxfev``, and its last step (``limit``)."""

        def per_run(name, default):
            check = LOOP_OPTIONS[name][1]
            if name in self.per_run:
                values = [check(f"{name}[{i}]", v) for i, v in enumerate(self.per_run[name])]
            else:
                values = [check(name, self.shared.get(name))] * self.k
            return np.asarray([default if v is None else v for v in values], dtype=np.float64)

        maxiter, maxfev = per_run("maxiter", DEFAULT_MAXITER), per_run("maxfev", math.inf)
        o = self.options0
        tolerance = any(o.get(t) is not None for t in ("gtol", "tol", "ftol"))
        endless = np.isinf(maxiter) & np.isinf(maxfev)
        if endless.any() and not tolerance and self.callback is None:
            i = int(np.flatnonzero(endless)[0])
            name = f"maxiter[{i}]" if "maxiter" in self.per_run else "maxiter"
            raise ValueError(
                f"`{name}=inf` needs another stopping rule (run {i}): `gtol` (or `tol`), "
                "`ftol`, a finite `maxfev`, or a callback that raises StopIteration."
            )
        self.maxiter, self.maxfev = maxiter, maxfev
        self.cost = 1  # jac=True or a callable jac: one evaluation per step
        self.limit = np.minimum(maxiter, np.floor(maxfev / self.cost))
        self.bad_x0 = ~np.isfinite(self.X0).all(axis=1)  # these runs never start
        self.limit[self.bad_x0] = 0
