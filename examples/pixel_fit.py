"""Fit a decay curve to every pixel of an image: ``minimize_many`` on 100,000 curves.

Each "pixel" holds a noisy curve ``y(t) = a * exp(-t / tau) + c`` sampled at 32
times (a fluorescence lifetime image, say). One call of ``nr.minimize_many``
fits all of them: the objective is an ``@njit`` function, so the whole batch
runs compiled, its runs spread over the CPU threads. For comparison the same
fits go through a Python loop of ``scipy.optimize.least_squares`` (and of
``nr.minimize``) on a sample of the pixels, scaled up to the whole image.

    python examples/pixel_fit.py            # 100,000 curves
    python examples/pixel_fit.py --quick    # 5,000 curves
"""

import argparse
import time

import numpy as np
from numba import njit
from scipy.optimize import least_squares

import numba_rmsprop as nr


def make_curves(k, m=32, noise=0.02, seed=0):
    """``k`` curves on ``m`` times; the true ``(a, tau, c)`` of each."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 5.0, m)
    truth = np.column_stack(
        [rng.uniform(0.5, 2.0, k), rng.uniform(0.5, 2.0, k), rng.uniform(-0.2, 0.2, k)]
    )
    a, tau, c = truth.T
    Y = a[:, None] * np.exp(-t / tau[:, None]) + c[:, None]
    return t, Y + noise * rng.standard_normal(Y.shape), truth


@njit(cache=True)
def loss_and_grad(p, t, y):
    """Mean squared residual of ``a exp(-t/tau) + c`` and its gradient in ``(a, tau, c)``.

    One pass, no temporary arrays: the objective runs 100,000 x 600 times.
    """
    a, tau, c = p[0], p[1], p[2]
    m = t.size
    f = ga = gt = gc = 0.0
    for i in range(m):
        e = np.exp(-t[i] / tau)
        r = a * e + c - y[i]
        f += r * r
        ga += r * e
        gt += r * a * e * t[i]
        gc += r
    g = np.empty(3)
    g[0] = ga / m
    g[1] = gt / (tau * tau) / m
    g[2] = gc / m
    return 0.5 * f / m, g


def residuals(p, t, y):
    return p[0] * np.exp(-t / p[1]) + p[2] - y


def main(quick=False):
    k = 5_000 if quick else 100_000
    t, Y, truth = make_curves(k)
    X0 = np.tile([1.0, 1.0, 0.0], (k, 1))
    options = dict(
        learning_rate=nr.schedules.ExponentialDecay(0.05, 200, 0.5),
        momentum=0.9,
        maxiter=600,
        gtol=1e-6,
    )
    print(f"{k:,} curves a*exp(-t/tau)+c, {t.size} samples each, 3 parameters")

    nr.minimize_many(
        loss_and_grad, X0[:2], args=(t, Y[:2]), run_args=(1,), options=dict(options, maxiter=2)
    )  # compile (or load) first
    t0 = time.perf_counter()
    res = nr.minimize_many(loss_and_grad, X0, args=(t, Y), run_args=(1,), options=options)
    t_many = time.perf_counter() - t0

    sample = 200 if quick else 500
    t0 = time.perf_counter()
    ls = [least_squares(residuals, X0[i], args=(t, Y[i])).x for i in range(sample)]
    t_ls = (time.perf_counter() - t0) * k / sample
    t0 = time.perf_counter()
    for i in range(sample // 5):
        nr.minimize(loss_and_grad, X0[i], args=(t, Y[i]), jac=True, options=options)
    t_loop = (time.perf_counter() - t0) * k / (sample // 5)

    err = np.abs(res.x - truth)
    ls_err = np.abs(np.array(ls) - truth[:sample])
    print(
        f"nr.minimize_many:                          {t_many:8.2f} s  "
        f"(statuses: {np.bincount(res.status).tolist()}, mean steps {res.nit.mean():.0f})"
    )
    print(
        f"Python loop of nr.minimize (scaled):       {t_loop:8.2f} s  "
        f"({t_loop / t_many:.0f}x slower)"
    )
    print(
        f"Python loop of scipy least_squares (scaled):{t_ls:7.2f} s  ({t_ls / t_many:.0f}x slower)"
    )
    print(
        "median |error| of (a, tau, c): minimize_many "
        + ", ".join(f"{v:.4f}" for v in np.median(err, axis=0))
        + "; least_squares "
        + ", ".join(f"{v:.4f}" for v in np.median(ls_err, axis=0))
    )
    return res


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5,000 curves")
    main(ap.parse_args().quick)
