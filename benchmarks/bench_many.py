"""asv suites: ``minimize_many``, many independent runs at once.

* :class:`PerRunStep` -- k runs of the 10-parameter quadratic: the cost per
  run-step of ``minimize_many`` on one thread against one compiled
  ``nr.minimize`` run's per-step cost (target <= 1.5), and two threads
  against one (target >= 1.7x).
* :class:`PixelFit` -- the per-pixel case: k curves ``a exp(-t/tau) + c``,
  3 parameters, 200 steps each, against a Python loop of ``nr.minimize``
  calls on a sample of the curves, scaled up (target >= 20x).
* :class:`VectorizedOverhead` -- ``vectorized=True`` with k = 1000, n = 10:
  the loop's own cost per step (the time per step less the objective's)
  against one ``RMSprop.apply`` on a 10-element variable, and against one
  on a 10,000-element variable (the update's own work).

:func:`measure` is what ``report.py`` runs.
"""

from __future__ import annotations

import os

import numpy as np

import numba_rmsprop as nr

from . import common as C
from . import peers as P
from . import problems as Q


def _quad_batch(k, n=10, seed=0):
    d, c = Q.quadratic_args(n)
    X0 = np.random.default_rng(seed).standard_normal((k, n))
    return X0, (d, c)


def per_run_step(k=2000, steps=2000, repeat=3) -> dict:
    """Seconds per run-step: minimize_many on 1 and 2 threads, and one nr.minimize run."""
    X0, args = _quad_batch(k)
    opts = dict(learning_rate=1e-3, maxiter=steps)
    nr.minimize_many(Q.quadratic_njit, X0[:2], args=args, options=dict(opts, maxiter=5))
    nr.minimize(Q.quadratic_njit, X0[0], args=args, jac=True, options=dict(opts, maxiter=5))
    out = {}

    def many(threads):
        os.environ["NUMBA_RMSPROP_NUM_THREADS"] = str(threads)
        try:
            t = C.best_of(
                lambda: nr.minimize_many(Q.quadratic_njit, X0, args=args, options=opts), repeat
            )[1]
        finally:
            del os.environ["NUMBA_RMSPROP_NUM_THREADS"]
        return t / (k * steps)

    long = 50 * steps
    single = (
        C.best_of(
            lambda: nr.minimize(
                Q.quadratic_njit, X0[0], args=args, jac=True, options=dict(opts, maxiter=long)
            ),
            repeat,
        )[1]
        / long
    )
    out["one run, per step"] = single
    for threads in (1, 2):
        out[f"minimize_many, {threads} thread(s), per run-step"] = many(threads)
    out["ratio 1 thread / one run"] = out["minimize_many, 1 thread(s), per run-step"] / single
    out["speedup 2 threads / 1"] = (
        out["minimize_many, 1 thread(s), per run-step"]
        / out["minimize_many, 2 thread(s), per run-step"]
    )
    return out


def pixel_fit(k=20000, steps=200, sample=200, repeat=3) -> dict:
    """The per-pixel fit: minimize_many over k curves against a loop of nr.minimize."""
    t, Y, truth = Q.decay_data(k)
    X0 = Q.decay_start(k)
    opts = dict(learning_rate=0.05, maxiter=steps)
    nr.minimize_many(
        Q.decay_njit, X0[:2], args=(t, Y[:2]), run_args=(1,), options=dict(opts, maxiter=3)
    )
    res = None

    def batch():
        nonlocal res
        res = nr.minimize_many(Q.decay_njit, X0, args=(t, Y), run_args=(1,), options=opts)

    t_many = C.best_of(batch, repeat)[1]

    def loop():
        for i in range(sample):
            nr.minimize(Q.decay, X0[i], args=(t, Y[i]), jac=True, options=opts)

    t_loop = C.best_of(loop, 1)[1] * k / sample
    err = np.abs(res.x - truth)
    return {
        "minimize_many (s)": t_many,
        "Python loop of nr.minimize, scaled (s)": t_loop,
        "speedup": t_loop / t_many,
        "median |a - a*|": float(np.median(err[:, 0])),
        "median |tau - tau*|": float(np.median(err[:, 1])),
    }


def vectorized_overhead(k=1000, n=10, steps=2000, repeat=5) -> dict:
    """Seconds per step of the vectorized loop, of its objective alone, and of applies.

    The loop's own cost (per step, less the objective's) holds the update of
    all ``k * n`` elements; ``apply, k*n elements`` (one ``RMSprop.apply`` on a
    variable of that size) is that work alone, so "own - apply k*n" is what
    the loop adds around it (the copy of ``X`` handed to ``fun``, the checks
    of ``fun``'s output, the Python step). A per-run learning rate takes the
    loop that steps each run on its own (``per-run rates``).

    The floor of the own cost: the plain update of ``k * n`` elements as one
    bare loop that vectorises (:func:`peers.plain_rmsprop`) plus the copy of
    ``X``, both unavoidable.
    """
    d, c = Q.quadratic_args(n)
    X0 = np.random.default_rng(0).standard_normal((k, n))

    dc, cc = d[:, None], c[:, None]  # (n, 1): X is (n, m), one column per run

    def fun(X, d, c):
        D = X - cc
        return 0.5 * np.einsum("ij,ij,i->j", D, D, d), D * dc

    opts = dict(learning_rate=1e-3, maxiter=steps)
    per_run = dict(opts, learning_rate=np.linspace(1e-3, 2e-3, k))

    def loop(o):
        return lambda: nr.minimize_many(fun, X0, args=(d, c), vectorized=True, options=o)

    for o in (opts, per_run):
        nr.minimize_many(fun, X0, args=(d, c), vectorized=True, options=dict(o, maxiter=3))
    X = np.ascontiguousarray(X0.T)  # what the objective gets: (n, k)
    x, g = np.zeros(n), np.ones(n)
    xk, gk = np.zeros(k * n), np.ones(k * n)
    opt, opt_k = nr.RMSprop(1e-3), nr.RMSprop(1e-3)
    opt.apply([g], [x])
    opt_k.apply([gk], [xk])
    vk = np.zeros(k * n)
    bare = (xk.copy(), gk, vk, 1e-3, 0.9, 1 - 0.9, 1e-7)
    P.plain_rmsprop(*bare)

    def times(fn, *a):
        def run():  # results dropped at once, as in the loop (a list of them would page in)
            for _ in range(steps):
                fn(*a)

        return run

    samples = C.interleaved(
        {
            "loop": loop(opts),
            "loop, per-run rates": loop(per_run),
            "objective": times(fun, X, d, c),
            "apply n": times(opt.apply, [g], [x]),
            "apply k*n": times(opt_k.apply, [gk], [xk]),
            "bare update k*n": times(P.plain_rmsprop, *bare),
            "copy of X": times(X.copy),
        },
        repeat,
    )
    t = {name: float(np.min(v)) / steps for name, v in samples.items()}
    own = t["loop"] - t["objective"]
    own_per_run = t["loop, per-run rates"] - t["objective"]
    return {
        "per step": t["loop"],
        "objective per step": t["objective"],
        "loop's own cost per step": own,
        "apply, 10 elements": t["apply n"],
        "own / apply": own / t["apply n"],
        f"apply, {k * n} elements (the update's work)": t["apply k*n"],
        "own - apply k*n": own - t["apply k*n"],
        "(own - apply k*n) / apply": (own - t["apply k*n"]) / t["apply n"],
        "own cost, per-run rates": own_per_run,
        "own, per-run rates / apply": own_per_run / t["apply n"],
        f"bare plain update of {k * n} elements": t["bare update k*n"],
        "copy of X": t["copy of X"],
        "floor (bare update + copy) / apply": (t["bare update k*n"] + t["copy of X"])
        / t["apply n"],
    }


def measure(per_run_step_kw=None, pixel_fit_kw=None, vectorized_overhead_kw=None, **parts) -> dict:
    """The three measurements; ``parts`` may give each one's arguments by its name."""
    return {
        "per_run_step": per_run_step(**parts.get("per_run_step", {})),
        "pixel_fit": pixel_fit(**parts.get("pixel_fit", {})),
        "vectorized_overhead": vectorized_overhead(**parts.get("vectorized_overhead", {})),
    }


class PerRunStep(C.Benchmark):
    """``track_``: the per-run-step ratio and the two-thread speedup."""

    def setup(self):
        self.r = per_run_step(
            **C.sized(dict(k=2000, steps=2000, repeat=1), dict(k=20, steps=20, repeat=1))
        )

    def track_ratio_to_one_run(self):
        return self.r["ratio 1 thread / one run"]

    def track_two_thread_speedup(self):
        return self.r["speedup 2 threads / 1"]


class PixelFit(C.Benchmark):
    timeout = 600

    def setup(self):
        self.r = pixel_fit(
            **C.sized(
                dict(k=20000, steps=200, sample=100, repeat=1),
                dict(k=50, steps=10, sample=5, repeat=1),
            )
        )

    def track_speedup_over_python_loop(self):
        return self.r["speedup"]


class VectorizedOverhead(C.Benchmark):
    def setup(self):
        self.r = vectorized_overhead(**C.sized(dict(), dict(k=20, steps=20, repeat=1)))

    def track_own_over_apply(self):
        return self.r["own / apply"]

    def track_own_beyond_the_update_over_apply(self):
        return self.r["(own - apply k*n) / apply"]

    def track_floor_over_apply(self):
        """The least the own cost can be (bare plain update + copy of ``X``), over an apply."""
        return self.r["floor (bare update + copy) / apply"]
