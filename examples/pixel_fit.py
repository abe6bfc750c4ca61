"""Fit a decay curve to every pixel of an image: minimize_many on 100,000 curves
=============================================================================

Each "pixel" holds a noisy curve ``y(t) = a * exp(-t / tau) + c`` sampled at 32
times (a fluorescence lifetime image, say). One call of ``nr.minimize_many``
fits all of them: the objective is an ``@njit`` function, so the whole batch
runs compiled, its runs spread over the CPU threads. For comparison the same
fits go through a Python loop of ``scipy.optimize.curve_fit`` (what one would
write by hand), of ``scipy.optimize.least_squares`` and of ``nr.minimize`` on a
sample of the pixels, scaled up to the whole image. The script prints the time
of each and the median error of each fitted parameter against the true values.
With matplotlib installed, a few pixels' data and fits, and the spread of the
errors, go to ``examples/pixel_fit.png``. Run it::

    python examples/pixel_fit.py            # 100,000 curves
    python examples/pixel_fit.py --quick    # 5,000 curves
"""

import argparse
import os
import sys
import time

import numpy as np
from numba import njit
from scipy.optimize import curve_fit, least_squares

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


def model(t, a, tau, c):
    return a * np.exp(-t / tau) + c


def residuals(p, t, y):
    return model(t, *p) - y


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
    bounds = [(0.0, None), (0.05, None), (None, None)]  # tau > 0: exp(-t / tau) stays finite
    print(f"{k:,} curves a*exp(-t/tau)+c, {t.size} samples each, 3 parameters")

    nr.minimize_many(
        loss_and_grad,
        X0[:2],
        args=(t, Y[:2]),
        run_args=(1,),
        bounds=bounds,
        options=dict(options, maxiter=2),
    )  # compile (or load) first, here and for the loop of nr.minimize below
    nr.minimize(
        loss_and_grad,
        X0[0],
        args=(t, Y[0]),
        jac=True,
        bounds=bounds,
        options=dict(options, maxiter=2),
    )
    t0 = time.perf_counter()
    res = nr.minimize_many(
        loss_and_grad, X0, args=(t, Y), run_args=(1,), bounds=bounds, options=options
    )
    t_many = time.perf_counter() - t0

    sample = 200 if quick else 500  # the loops fit the first `sample` pixels
    fits = {"nr.minimize_many": res.x[:sample]}
    t0 = time.perf_counter()
    fits["scipy curve_fit"] = np.array(
        [curve_fit(model, t, Y[i], p0=X0[i])[0] for i in range(sample)]
    )
    t_cf = (time.perf_counter() - t0) * k / sample
    t0 = time.perf_counter()
    fits["scipy least_squares"] = np.array(
        [least_squares(residuals, X0[i], args=(t, Y[i])).x for i in range(sample)]
    )
    t_ls = (time.perf_counter() - t0) * k / sample
    t0 = time.perf_counter()
    loop = [
        nr.minimize(
            loss_and_grad, X0[i], args=(t, Y[i]), jac=True, bounds=bounds, options=options
        ).x
        for i in range(sample // 5)
    ]
    t_loop = (time.perf_counter() - t0) * k / (sample // 5)
    same = np.array_equal(loop, res.x[: sample // 5])

    print(
        f"nr.minimize_many:                            {t_many:8.2f} s  "
        f"(statuses: {np.bincount(res.status).tolist()}, mean steps {res.nit.mean():.0f})"
    )
    for name, t_name, note in [
        ("nr.minimize", t_loop, f"; the same fits: {same}"),
        ("scipy curve_fit", t_cf, ""),
        ("scipy least_squares", t_ls, ""),
    ]:
        speedup = t_name / t_many
        print(
            f"{'Python loop of ' + name + ' (scaled):':44s} {t_name:8.2f} s  "
            f"(minimize_many {speedup:.{1 if speedup < 10 else 0}f}x faster{note})"
        )
    print(f"median |error| of (a, tau, c) against the true values, on the {sample} sampled pixels:")
    for name, x in fits.items():
        err = np.median(np.abs(x - truth[:sample]), axis=0)
        print(f"  {name:22s}" + "".join(f"{v:9.4f}" for v in err))
    plot(t, Y[:sample], truth[:sample], fits)
    return res


def plot(t, Y, truth, fits):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib).")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    tau = truth[:, 1]
    tt = np.linspace(t[0], t[-1], 200)
    for j, i in enumerate([np.argmin(tau), np.argsort(tau)[len(tau) // 2], np.argmax(tau)]):
        color = f"C{j}"
        ax1.plot(t, Y[i], ".", color=color)
        ax1.plot(tt, model(tt, *fits["nr.minimize_many"][i]), "-", color=color)
        ax1.plot(tt, model(tt, *fits["scipy curve_fit"][i]), "--", color="k", lw=0.8)
    ax1.plot([], [], ".", color="grey", label="data (3 pixels)")  # (legend entries)
    ax1.plot([], [], "-", color="grey", label="nr.minimize_many")
    ax1.plot([], [], "--", color="k", lw=0.8, label="scipy curve_fit")
    ax1.set(xlabel="t", ylabel="y", title="Three pixels: data and fitted curves")
    ax1.legend()
    err = {name: x[:, 1] - tau for name, x in fits.items()}
    bins = np.linspace(*np.percentile(np.concatenate(list(err.values())), [1, 99]), 40)
    for (name, e), ls in zip(err.items(), ["-", "--", ":"], strict=True):
        ax2.hist(e, bins=bins, histtype="step", ls=ls, lw=1.5, label=name)
    ax2.set(
        xlabel="fitted tau - true tau",
        ylabel="pixels",
        title=f"Errors in tau, on {len(tau)} pixels",
    )
    ax2.legend()
    fig.tight_layout()
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "pixel_fit.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5,000 curves")
    main(ap.parse_args().quick)
