"""asv suites: the ``scipy.optimize.minimize``-style front end (``nr.minimize``).

In the style of scipy's ``benchmarks/benchmarks/optimize.py``:

* :class:`MinimizeOverhead` -- per-step cost of the front end on a
  10-parameter (diagonal) quadratic, whose own cost is negligible, with a
  Python objective (the Python loop) and with an ``@njit`` objective (the
  compiled loop), against a hand-written ``RMSprop.apply`` loop around the
  same Python objective. ``time_minimize`` is ``MAXITER`` steps; divide by
  ``MAXITER`` for the time per step, which ``track_time_per_step`` reports
  directly (minimum over a few runs).
* :class:`StepsToLoss` -- optimizer steps until the loss reaches a target:
  2-D Rosenbrock from (-1.2, 1) (full batch), and logistic regression on
  synthetic data with minibatches of 64, where the loss is the mean of the
  last epoch's minibatch losses.

Every ``setup`` raises ``NotImplementedError`` (asv: skipped) when
``numba_rmsprop.optimize`` is not available.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit
from scipy.optimize import rosen, rosen_der

import numba_rmsprop as nr

MAXITER = 2000
N_PARAMS = 10


def front_end():
    """``numba_rmsprop.optimize.minimize``, or NotImplementedError (asv skips)."""
    try:
        from numba_rmsprop.optimize import minimize
    except ImportError as exc:
        raise NotImplementedError(f"numba_rmsprop.optimize is not available: {exc}") from exc
    return minimize


# ---------------------------------------------------------------- objectives
def quadratic(x, d):
    """0.5 * sum(d * x**2) and its gradient."""
    g = d * x
    return 0.5 * np.dot(g, x), g


@njit(cache=True)
def quadratic_njit(x, d):
    g = d * x
    f = 0.0
    for i in range(x.size):
        f += g[i] * x[i]
    return 0.5 * f, g


def rosenbrock(x):
    return rosen(x), rosen_der(x)


def logistic(w, X, y):
    """Mean logistic loss and its gradient (labels in {0, 1})."""
    z = X @ w
    p = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid, without overflow warnings
    f = np.mean(np.logaddexp(0.0, z) - y * z)
    return f, X.T @ (p - y) / y.size


def logistic_data(n_samples=4096, n_features=20, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    w = rng.standard_normal(n_features)
    y = (X @ w + 0.5 * rng.standard_normal(n_samples) > 0).astype(np.float64)
    return X, y


# ---------------------------------------------------------------- suites
class MinimizeOverhead:
    """``MAXITER`` steps on a 10-parameter quadratic."""

    params = [["python", "njit", "apply_loop"]]
    param_names = ["objective"]
    timeout = 120

    def setup(self, objective):
        self.minimize = front_end()
        self.objective = objective
        self.d = np.linspace(1.0, 10.0, N_PARAMS)
        self.x0 = np.ones(N_PARAMS)
        self.fun = quadratic_njit if objective == "njit" else quadratic
        self.run()  # compile (the njit loop specialises on the objective) and warm up

    def run(self, maxiter=MAXITER):
        if self.objective == "apply_loop":
            x = self.x0.copy()
            opt = nr.RMSprop(learning_rate=1e-2)
            for _ in range(maxiter):
                _, g = quadratic(x, self.d)
                opt.apply([g], [x])
            return x
        return self.minimize(self.fun, self.x0, args=(self.d,), jac=True,
                             options={"learning_rate": 1e-2, "maxiter": maxiter})

    def time_minimize(self, objective):
        self.run()

    def track_time_per_step(self, objective):
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            self.run()
            best = min(best, time.perf_counter() - t0)
        return best / MAXITER

    track_time_per_step.unit = "s"


class StepsToLoss:
    """Steps until the loss is at or below a target (``nan`` if never)."""

    params = [["rosenbrock", "logistic_minibatch"]]
    param_names = ["problem"]
    timeout = 120
    unit = "steps"

    def setup(self, problem):
        self.minimize = front_end()
        if problem == "rosenbrock":
            self.target, self.window = 1e-2, 1
            self.fun, self.x0, self.args = rosenbrock, np.array([-1.2, 1.0]), ()
            self.options = {"learning_rate": 3e-3, "maxiter": 5000}
        else:
            X, y = logistic_data()
            batch = 64
            self.target, self.window = 0.15, -(-y.size // batch)  # one epoch of minibatches
            self.fun, self.x0, self.args = logistic, np.zeros(X.shape[1]), (X, y)
            self.options = {"learning_rate": 1e-2, "maxiter": 3000, "batch_size": batch,
                            "seed": 0}
        self.options["return_history"] = True

    def track_steps(self, problem):
        res = self.minimize(self.fun, self.x0, args=self.args, jac=True, options=self.options)
        losses = np.asarray(res.history, dtype=np.float64)
        w = self.window
        if w > 1:  # mean of the last w minibatch losses, at step index w-1 onwards
            losses = np.convolve(losses, np.ones(w) / w, mode="valid")
        hit = np.flatnonzero(losses <= self.target)
        if hit.size == 0:
            return float("nan")
        return float(hit[0] + w)  # steps taken (evaluations) when the target was seen
