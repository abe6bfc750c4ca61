"""A noisy objective: where RMSprop beats the quasi-Newton methods
===============================================================

Many objectives can only be *estimated*: Monte Carlo losses, simulations,
minibatch losses of a model. Here the objective is an ill-conditioned
quadratic in 20 dimensions whose loss and gradient come with Gaussian noise
(relative level ``--noise``). BFGS and L-BFGS-B build curvature from
differences of gradients and run line searches on the loss; noise breaks
both, and they stop early. RMSprop only needs unbiased gradients: with a
decaying learning rate and a moving average of the iterates (``use_ema``)
it averages the noise away, and ``ftol`` (on a smoothed loss) stops it once
progress stalls.

The noise generator travels in ``args`` (a ``numpy.random.Generator`` is not
a data array, so it is passed whole), seeded per run for reproducibility.
With matplotlib installed, the distance to the minimum against the iteration,
for every method, goes to ``examples/noisy_objective.png``. Run it::

    python examples/noisy_objective.py [--quick] [--noise 0.3]
"""

import argparse
import os
import sys
import warnings

import numpy as np
from scipy.optimize import minimize

import numba_rmsprop as nr


def make_problem(d, rng):
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    H = Q @ np.diag(np.logspace(0, 2, d)) @ Q.T  # condition number 100
    x_star = rng.normal(size=d)
    return H, x_star


def noisy_loss_and_grad(x, H, x_star, noise, rng):
    """0.5 (x - x*)' H (x - x*) + 1, loss and gradient each with relative noise."""
    d = x - x_star
    g = H @ d
    f = 0.5 * d @ g + 1.0
    f_noisy = f * (1.0 + noise * rng.normal())
    g_noisy = g + noise * np.sqrt(np.mean(g * g) + 1.0) * rng.normal(size=g.size)
    return f_noisy, g_noisy


def main(quick=False, noise=0.3):
    rng = np.random.default_rng(3)
    d = 20
    H, x_star = make_problem(d, rng)
    x0 = np.zeros(d)
    steps = 2000 if quick else 20000
    print(
        f"noisy quadratic, d = {d}, relative noise {noise}; |x0 - x*| = "
        f"{np.linalg.norm(x0 - x_star):.3f}"
    )
    print(f"{'method':34s}{'nfev':>7s}{'|x - x*|':>10s}  stop reason")

    paths, finals = {}, {}  # |x_k - x*| after each iteration; (nit, |x - x*|) of the result

    def report(name, res):
        err = np.linalg.norm(res.x - x_star)
        finals[name] = (res.nit, err)
        print(f"{name:34s}{res.nfev:7d}{err:10.4f}  {res.message[:60]}")

    def recorder(name):
        paths[name] = [np.linalg.norm(x0 - x_star)]
        return lambda xk: paths[name].append(np.linalg.norm(xk - x_star))

    for method in ("BFGS", "L-BFGS-B"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = minimize(
                noisy_loss_and_grad,
                x0,
                jac=True,
                method=method,
                args=(H, x_star, noise, np.random.default_rng(0)),
                options={"maxiter": steps},
                callback=recorder(method),
            )
        report(method, res)

    ema = 1.0 - 20.0 / steps  # averages over the last ~5% of the run
    runs = {
        "RMSprop, constant lr": dict(learning_rate=0.01),
        "RMSprop, decaying lr": dict(
            learning_rate=nr.schedules.InverseTimeDecay(0.01, steps // 20, 1.0)
        ),
        "RMSprop, decaying lr + EMA": dict(
            learning_rate=nr.schedules.InverseTimeDecay(0.01, steps // 20, 1.0),
            use_ema=True,
            ema_momentum=ema,
        ),
        "RMSprop, decaying lr + EMA + ftol": dict(
            learning_rate=nr.schedules.InverseTimeDecay(0.01, steps // 20, 1.0),
            use_ema=True,
            ema_momentum=ema,
            ftol=1e-3,
            patience=steps // 10,
            tol_momentum=ema,
        ),
    }
    for name, options in runs.items():
        res = nr.minimize(
            noisy_loss_and_grad,
            x0,
            args=(H, x_star, noise, np.random.default_rng(0)),
            jac=True,
            options=dict(options, maxiter=steps),
            callback=recorder(name),
        )
        report(name, res)
    print(
        "\n(res.fun of a noisy objective is one noisy evaluation at res.x; the distance to x* "
        "is the honest measure.)"
    )
    plot(paths, finals, noise)


def plot(paths, finals, noise):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib).")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, path) in enumerate(paths.items()):
        if "EMA" in name:  # its iterates are those of "decaying lr"; the result is the EMA's
            ax.plot(*finals[name], "*", color=f"C{i}", ms=14, mec="k", label=f"{name}: result")
        else:  # the dot: the result (the last iterate)
            ax.plot(path, "-o", color=f"C{i}", lw=1, mec="k", markevery=[-1], label=name)
    ax.set(
        xscale="symlog",
        yscale="log",
        xlabel="iteration (RMSprop: one noisy evaluation each)",
        ylabel="|x - x*|",
        title=f"Noisy quadratic (relative noise {noise}): distance to the minimum",
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "noisy_objective.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (for tests)")
    ap.add_argument("--noise", type=float, default=0.3, help="relative noise level")
    a = ap.parse_args()
    main(a.quick, a.noise)
