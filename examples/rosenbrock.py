"""Rosenbrock: RMSprop against scipy's BFGS and L-BFGS-B
=====================================================

The Rosenbrock function is the classic deterministic test of a smooth,
badly conditioned valley. Quasi-Newton methods are built for exactly this
and need a few dozen evaluations; a first-order method with a diagonal
preconditioner like RMSprop needs thousands. This example measures how many,
with a cosine-decayed learning rate and momentum, in 2 and 10 dimensions --
an honest picture of what RMSprop is (stochastic, large-scale problems) and
isn't (small deterministic ones) for.

Reported: iterations, objective evaluations, ``|x - 1|_inf``, the final
loss, wall time, and the evaluations RMSprop needed to first reach
``f < 1e-6`` (from ``res.history``). With matplotlib installed, the 2-D
paths and the loss against the iteration go to ``examples/rosenbrock.png``.
Run it::

    python examples/rosenbrock.py [--quick]
"""

import argparse
import os
import sys
import time

import numpy as np
from scipy.optimize import minimize, rosen, rosen_der

import numba_rmsprop as nr


def rosen_and_grad(x):
    return rosen(x), rosen_der(x)


def main(quick=False):
    steps = 3000 if quick else 20000
    paths, losses = {}, {}  # the 2-D paths; f(x) after each iteration, by (method, n)
    for n in (2, 10):
        x0 = np.array([-1.2, 1.0]) if n == 2 else np.full(n, -1.0)
        print(f"\nRosenbrock, n = {n}, x0 = {x0 if n == 2 else '(-1, ..., -1)'}")
        print(
            f"{'method':12s}{'nit':>8s}{'nfev':>8s}{'|x - 1|':>11s}{'f(x)':>11s}"
            f"{'time [s]':>10s}{'fev to f<1e-6':>15s}"
        )
        rms_path = []

        def record(xk, rms_path=rms_path):
            rms_path.append(xk)

        options = dict(
            learning_rate=nr.schedules.CosineDecay(0.002, steps, alpha=1e-3),
            momentum=0.9,
            maxiter=steps,
            return_history=True,
        )
        nr.minimize(rosen_and_grad, x0, jac=True, options=dict(options, maxiter=1))  # warm up
        t = time.perf_counter()
        res = nr.minimize(
            rosen_and_grad, x0, jac=True, options=options, callback=record if n == 2 else None
        )
        dt = time.perf_counter() - t
        hit = np.flatnonzero(res.history < 1e-6)
        first = f"{hit[0] + 1}" if hit.size else "never"
        print(
            f"{'RMSprop':12s}{res.nit:8d}{res.nfev:8d}{np.max(np.abs(res.x - 1)):11.2e}"
            f"{res.fun:11.2e}{dt:10.3f}{first:>15s}"
        )
        losses["RMSprop", n] = res.history
        if n == 2:
            paths["RMSprop"] = np.array([x0] + rms_path)
        for method in ("BFGS", "L-BFGS-B"):
            path = [x0]
            t = time.perf_counter()
            r = minimize(
                rosen_and_grad,
                x0,
                jac=True,
                method=method,
                callback=lambda xk, path=path: path.append(np.copy(xk)),
            )
            dt = time.perf_counter() - t
            print(
                f"{method:12s}{r.nit:8d}{r.nfev:8d}{np.max(np.abs(r.x - 1)):11.2e}"
                f"{r.fun:11.2e}{dt:10.3f}{'':>15s}"
            )
            losses[method, n] = [rosen(p) for p in path]
            if n == 2:
                paths[method] = np.array(path)
    plot(paths, losses)


def plot(paths, losses):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("\nmatplotlib is not installed: no plot (pip install matplotlib).")
        return
    xs, ys = np.meshgrid(np.linspace(-1.5, 1.5, 300), np.linspace(-0.5, 1.5, 300))
    zs = rosen(np.array([xs, ys]))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ax.contour(xs, ys, np.log10(zs + 1e-3), levels=30, cmap="Greys", linewidths=0.5)
    for name, p in paths.items():
        ax.plot(p[:, 0], p[:, 1], ".-" if len(p) < 200 else "-", ms=3, label=name)
    ax.plot(1, 1, "k*", ms=12, label="minimum (1, 1)")
    ax.set(xlabel="x1", ylabel="x2", title="Paths on the 2-D Rosenbrock function")
    ax.legend()
    for (name, n), f in losses.items():
        color = f"C{list(paths).index(name)}"
        ls = "-" if n == 2 else "--"
        best = np.minimum.accumulate(f)  # (RMSprop with momentum oscillates down the valley)
        ax2.plot(np.arange(len(f)), best, ls, color=color, label=f"{name}, n = {n}")
    ax2.set(
        xscale="symlog",
        yscale="log",
        xlabel="iteration",
        ylabel="lowest f(x) so far",
        title="Loss against iteration (minimum: f = 0)",
    )
    ax2.legend(fontsize="small", ncols=2)
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "rosenbrock.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer RMSprop steps (for tests)")
    main(ap.parse_args().quick)
