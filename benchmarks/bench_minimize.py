"""asv suites: the ``scipy.optimize.minimize``-style front end (``nr.minimize``).

In the style of scipy's ``benchmarks/benchmarks/optimize.py``, on the problems
of ``problems.py``:

* :class:`MinimizeOverhead` -- ``MAXITER`` steps on the 10-parameter
  quadratic, whose own cost is negligible: Python objective (Python loop),
  ``@njit`` objective (compiled loop), and a hand-written ``RMSprop.apply``
  loop around the Python objective.
* :class:`LoopLimit` -- the compiled loop against its limit: a hand-written
  ``@njit`` loop (``peers.rmsprop_loop``) calling the same ``@njit`` objective
  and a plain fused update, interleaved; ``track_ratio`` (target <= 1.3).
* :class:`MinibatchLeastSquares` -- 10 000 x 10 least squares, batches of 32,
  Python and compiled loops.
* :class:`StepsToLoss` -- steps until the loss reaches a target: 2-D
  Rosenbrock, and minibatch logistic regression (mean of the last epoch's
  minibatch losses within 0.01 of the optimum).

:func:`overhead` and :func:`loop_limit` are what ``report.py`` runs.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy.optimize import minimize as scipy_minimize

import numba_rmsprop as nr

from . import common as C
from . import peers as P
from . import problems as Q

MAXITER = 2000


@njit(cache=True)
def _objective_only(fun, x, args, n):
    s = 0.0
    for _ in range(n):
        f, g = fun(x, *args)
        s += f + g[0]
    return s


def _quadratic_runs(steps, only=None):
    """Name -> callable running ``steps`` steps on the quadratic (each already warm)."""
    args, x0 = Q.quadratic_args(), np.zeros(10)
    opts = dict(learning_rate=1e-3, maxiter=steps)

    def apply_loop():
        x, opt = x0.copy(), nr.RMSprop(learning_rate=1e-3)
        for _ in range(steps):
            opt.apply([Q.quadratic(x, *args)[1]], [x])

    def objective_alone():
        for _ in range(steps):
            Q.quadratic(x0, *args)

    runs = {
        "objective alone (Python)": objective_alone,
        "python loop, NumPy objective": lambda: nr.minimize(
            Q.quadratic, x0, args=args, jac=True, options=opts
        ),
        "RMSprop.apply loop, NumPy objective": apply_loop,
        "python loop, @njit objective": lambda: nr.minimize(
            Q.quadratic_njit, x0, args=args, jac=True, options=dict(opts, compiled=False)
        ),
        "objective alone (compiled loop)": lambda: _objective_only(
            Q.quadratic_njit, x0, args, steps
        ),
        "compiled loop, @njit objective": lambda: nr.minimize(
            Q.quadratic_njit, x0, args=args, jac=True, options=opts
        ),
    }
    runs = {k: fn for k, fn in runs.items() if only in (None, k)}
    for fn in runs.values():
        fn()
    return runs


def overhead(steps=20000, repeat=7, minibatch=True) -> dict:
    """Seconds per step of each way to run the quadratic, and of minibatch least squares."""
    out = {k: C.best_of(fn, repeat)[1] / steps for k, fn in _quadratic_runs(steps).items()}
    A, b = Q.least_squares_data()
    mb = dict(learning_rate=1e-3, maxiter=steps, batch_size=32, seed=0)
    runs = (("python", Q.least_squares), ("compiled", Q.least_squares_njit)) if minibatch else ()
    for name, fun in runs:
        out[f"minibatch least squares, {name} loop"] = (
            C.best_of(
                lambda fun=fun: nr.minimize(fun, np.zeros(10), args=(A, b), jac=True, options=mb),
                repeat,
            )[1]
            / steps
        )
    return out


def loop_limit(steps=100_000, repeat=7, lr=1e-2) -> dict:
    """``nr.minimize`` (compiled loop) against the hand-written ``@njit`` loop, interleaved."""
    d, c = Q.quadratic_args()
    x0, final = np.zeros(10), {}

    def ours():
        final["ours"] = nr.minimize(
            Q.quadratic_njit,
            x0,
            args=(d, c),
            jac=True,
            options=dict(maxiter=steps, learning_rate=lr, momentum=0.9),
        ).x

    def hand():
        x = x0.copy()
        P.rmsprop_loop(Q.quadratic_njit, x, (d, c), steps, lr, 0.9, 0.9, 1e-7)
        final["handwritten"] = x

    # The same hand-written loop, given the objective as a first-class function (as
    # nr.minimize's compiled loop takes it): what the indirect call itself costs.
    by_type = _loop_through_function_type(Q.quadratic_njit, x0, (d, c))

    def hand_ft():
        x = x0.copy()
        by_type(Q.quadratic_njit, x, (d, c), steps, lr, 0.9, 0.9, 1e-7)
        final["handwritten, function type"] = x

    samples = C.interleaved(
        {"ours": ours, "handwritten": hand, "handwritten, function type": hand_ft}, repeat
    )
    return {
        "ours": float(np.min(samples["ours"])) / steps,
        "handwritten": float(np.min(samples["handwritten"])) / steps,
        "handwritten, function type": float(np.min(samples["handwritten, function type"])) / steps,
        "ratio": C.ratio(samples, "ours", "handwritten"),
        "ratio_function_type": C.ratio(samples, "handwritten, function type", "handwritten"),
        "max_abs_dx": max(
            float(np.max(np.abs(final[k] - final["handwritten"])))
            for k in ("ours", "handwritten, function type")
        ),
    }


def _loop_through_function_type(fun, x0, args):
    """``peers.rmsprop_loop`` compiled for ``fun`` as a ``numba.types.FunctionType``."""
    from numba import typeof, types

    sig = (typeof(x0),) + tuple(typeof(a) for a in args)
    fun.compile(sig)
    ftype = types.FunctionType(fun.overloads[sig].signature.return_type(*sig))
    f64 = types.float64
    return P.rmsprop_loop.compile(
        (ftype, typeof(x0), typeof(args), types.int64, f64, f64, f64, f64)
    )


# ------------------------------------------------------------------ suites
class MinimizeOverhead(C.Benchmark):
    """``MAXITER`` steps on the 10-parameter quadratic."""

    params = [["python", "njit", "apply_loop"]]
    param_names = ["objective"]
    names = {
        "python": "python loop, NumPy objective",
        "njit": "compiled loop, @njit objective",
        "apply_loop": "RMSprop.apply loop, NumPy objective",
    }

    def setup(self, objective):
        self.steps = C.sized(MAXITER, 50)
        self.run = _quadratic_runs(self.steps, self.names[objective])[self.names[objective]]

    def time_minimize(self, objective):
        self.run()

    def track_time_per_step(self, objective):
        return C.best_of(self.run, 3)[1] / self.steps

    track_time_per_step.unit = "s"


class LoopLimit(C.Benchmark):
    """Per step: compiled ``nr.minimize`` and the hand-written loop (s); ``ratio``: ours / it."""

    params = [["ratio", "ours", "handwritten"]]
    param_names = ["what"]

    def setup_cache(self):
        return loop_limit(C.sized(20000, 200), repeat=C.sized(5, 1))

    def track_loop_limit(self, res, what):
        return res[what]


class MinibatchLeastSquares(C.Benchmark):
    """``MAXITER`` steps of least squares, batches of 32."""

    params = [["python", "njit"]]
    param_names = ["objective"]

    def setup(self, objective):
        self.args = Q.least_squares_data()
        self.fun = Q.least_squares_njit if objective == "njit" else Q.least_squares
        self.time_minimize(objective)

    def time_minimize(self, objective):
        nr.minimize(
            self.fun,
            np.zeros(10),
            args=self.args,
            jac=True,
            options=dict(learning_rate=1e-3, maxiter=C.sized(MAXITER, 50), batch_size=32, seed=0),
        )


class StepsToLoss(C.Benchmark):
    """Steps until the loss is at or below a target (``nan`` if never)."""

    params = [["rosenbrock", "logistic_minibatch"]]
    param_names = ["problem"]
    unit = "steps"

    def setup(self, problem):
        if problem == "rosenbrock":
            self.target, self.window = 1e-2, 1
            self.fun, self.x0, self.args = Q.rosenbrock, np.array([-1.2, 1.0]), ()
            self.options = {"learning_rate": 3e-3, "maxiter": 5000}
        else:
            X, y, _, _ = Q.logistic_data(4096, 20, test=0.0)
            batch, self.args = 64, (X, y, 1e-4)
            self.fun, self.x0 = Q.logistic, np.zeros(X.shape[1])
            f_star = scipy_minimize(
                self.fun, self.x0, args=self.args, jac=True, method="L-BFGS-B"
            ).fun
            self.target, self.window = f_star + 0.01, -(-y.size // batch)  # one epoch
            self.options = {"learning_rate": 1e-2, "maxiter": 3000, "batch_size": batch, "seed": 0}
        self.options["return_history"] = True

    def track_steps(self, problem):
        res = nr.minimize(self.fun, self.x0, args=self.args, jac=True, options=self.options)
        losses = np.asarray(res.history, dtype=np.float64)
        w = self.window
        if w > 1:  # mean of the last w minibatch losses
            losses = np.convolve(losses, np.ones(w) / w, mode="valid")
        hit = np.flatnonzero(losses <= self.target)
        return float(hit[0] + w) if hit.size else float("nan")
