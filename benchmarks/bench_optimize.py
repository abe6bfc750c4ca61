#!/usr/bin/env python
"""Per-step loop overhead of ``nr.minimize`` (the scipy-style front end).

Problem: a 10-parameter quadratic ``f(x) = 0.5 * sum(d * (x - c)**2)``, whose
own cost is tiny, so the time per step is almost all loop.

Measured (each the minimum over ``--repeat`` runs of ``--steps`` steps; the
machine may be shared, so minima are the stable statistic):

python loop, NumPy objective
    ``nr.minimize`` with a plain Python/NumPy objective; its *overhead* is the
    time per step minus the time of the objective alone (called in a Python
    loop with the same arguments). Target: <= 3 us.
RMSprop.apply loop
    the same steps written by hand around ``RMSprop.apply``, for comparison.
python loop, @njit objective
    ``compiled=False`` with the numba objective (what a callback forces).
compiled loop, @njit objective
    the whole loop compiled (the default for an ``@njit`` objective with
    ``jac=True``); the objective alone is timed in a compiled loop too.
    Targets: <= 0.3 us per step, >= 20x faster than the Python loop.

A minibatch section repeats the Python/compiled comparison for least squares
on 10 000 x 10 data with minibatches of 32.

    python benchmarks/bench_optimize.py [--steps 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numba_rmsprop as nr  # noqa: E402

N = 10
D = np.linspace(1.0, 10.0, N)
C = np.linspace(-1.0, 1.0, N)


def quad(x, d, c):
    g = d * (x - c)
    return 0.5 * np.dot(g, x - c), g


@njit(cache=True)
def quad_nb(x, d, c):
    g = np.empty_like(x)
    f = 0.0
    for i in range(x.size):
        r = x[i] - c[i]
        g[i] = d[i] * r
        f += g[i] * r
    return 0.5 * f, g


@njit(cache=True)
def _objective_only(fun, x, d, c, n):
    s = 0.0
    for _ in range(n):
        f, g = fun(x, d, c)
        s += f + g[0]
    return s


@njit(cache=True)
def lsq_nb(w, A, b):
    r = A @ w - b
    return 0.5 * (r @ r) / b.size, A.T @ r / b.size


def lsq(w, A, b):
    r = A @ w - b
    return 0.5 * (r @ r) / b.size, A.T @ r / b.size


def best_of(fn, repeat):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(steps: int, repeat: int) -> dict:
    x0 = np.zeros(N)
    opts = dict(learning_rate=1e-3, maxiter=steps)
    args = (D, C)
    # warm up: compile / load every kernel and loop once
    nr.minimize(quad, x0, args=args, jac=True, options=dict(opts, maxiter=3))
    nr.minimize(quad_nb, x0, args=args, jac=True, options=dict(opts, maxiter=3))
    nr.minimize(quad_nb, x0, args=args, jac=True, options=dict(opts, maxiter=3, compiled=False))
    _objective_only(quad_nb, x0, D, C, 3)

    def py_objective_alone():
        x = x0.copy()
        for _ in range(steps):
            quad(x, D, C)

    def apply_loop():
        x = x0.copy()
        opt = nr.RMSprop(learning_rate=1e-3)
        for _ in range(steps):
            f, g = quad(x, D, C)
            opt.apply([g], [x])

    r = {}
    r["objective alone (Python)"] = best_of(py_objective_alone, repeat) / steps
    r["python loop, NumPy objective"] = best_of(
        lambda: nr.minimize(quad, x0, args=args, jac=True, options=opts), repeat) / steps
    r["RMSprop.apply loop, NumPy objective"] = best_of(apply_loop, repeat) / steps
    r["python loop, @njit objective"] = best_of(
        lambda: nr.minimize(quad_nb, x0, args=args, jac=True,
                            options=dict(opts, compiled=False)), repeat) / steps
    r["objective alone (compiled loop)"] = best_of(
        lambda: _objective_only(quad_nb, x0, D, C, steps), repeat) / steps
    r["compiled loop, @njit objective"] = best_of(
        lambda: nr.minimize(quad_nb, x0, args=args, jac=True, options=opts), repeat) / steps

    us = {k: v * 1e6 for k, v in r.items()}
    py_over = us["python loop, NumPy objective"] - us["objective alone (Python)"]
    comp_over = us["compiled loop, @njit objective"] - us["objective alone (compiled loop)"]
    print(f"{N}-parameter quadratic, {steps} steps, best of {repeat} (us per step)")
    for k, v in us.items():
        print(f"  {k:40s}{v:9.3f}")
    print(f"\n  python loop overhead (excl. objective)  {py_over:9.3f}   target <= 3")
    print(f"  compiled loop per step                  {us['compiled loop, @njit objective']:9.3f}"
          "   target <= 0.3")
    print(f"  compiled loop overhead (excl. objective){comp_over:9.3f}")
    ratio_np = us["python loop, NumPy objective"] / us["compiled loop, @njit objective"]
    ratio_nb = us["python loop, @njit objective"] / us["compiled loop, @njit objective"]
    print(f"  speedup vs python loop, NumPy objective {ratio_np:9.1f}x  target >= 20")
    print(f"  speedup vs python loop, @njit objective {ratio_nb:9.1f}x")

    # ---- minibatches
    rng = np.random.default_rng(0)
    A = rng.normal(size=(10000, N))
    b = A @ rng.normal(size=N) + rng.normal(size=10000)
    mb = dict(learning_rate=1e-3, maxiter=steps, batch_size=32, seed=0)
    nr.minimize(lsq_nb, x0, args=(A, b), jac=True, options=dict(mb, maxiter=3))
    nr.minimize(lsq, x0, args=(A, b), jac=True, options=dict(mb, maxiter=3))
    m_py = best_of(lambda: nr.minimize(lsq, x0, args=(A, b), jac=True, options=mb),
                   repeat) / steps * 1e6
    m_nb = best_of(lambda: nr.minimize(lsq_nb, x0, args=(A, b), jac=True, options=mb),
                   repeat) / steps * 1e6
    print(f"\nminibatch least squares, 10000 x {N}, batches of 32, shuffled (us per step)")
    print(f"  python loop, NumPy objective            {m_py:9.3f}")
    print(f"  compiled loop, @njit objective          {m_nb:9.3f}   ({m_py / m_nb:.1f}x)")
    us.update({"python loop overhead": py_over, "compiled loop overhead": comp_over,
               "minibatch python": m_py, "minibatch compiled": m_nb})
    return us


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    main(a.steps, a.repeat)
