"""Linear least squares, unconstrained and non-negative, against exact solvers
===========================================================================

1. ``min_w 1/(2n) |A w - b|^2`` with minibatch RMSprop, compared with the
   exact solution from ``numpy.linalg.lstsq``. The objective is written with
   numba (``@njit``), so ``nr.minimize`` runs the whole loop compiled; the
   same run through the Python loop (``compiled=False``) gives bit-identical
   weights, slower.
2. Non-negative least squares: the same objective with ``bounds=[(0, None)]
   * d`` (RMSprop projects onto the box after each step), compared with
   ``scipy.optimize.nnls``.

The plot (``examples/least_squares.png``, with matplotlib installed) shows the
minibatch loss against the step beside the exact optimum, and the non-negative
weights of both solvers beside the true ones. Run it::

    python examples/least_squares.py [--quick]
"""

import argparse
import os
import sys
import time

import numpy as np
from numba import njit
from scipy.optimize import Bounds, nnls

import numba_rmsprop as nr


@njit(cache=True)
def mse(w, A, b):
    """1/(2n) |A w - b|^2 and its gradient."""
    r = A @ w - b
    n = b.size
    return 0.5 * (r @ r) / n, A.T @ r / n


def main(quick=False):
    rng = np.random.default_rng(2)
    n, d = (2000, 20) if quick else (20000, 50)
    A = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)  # uneven column scales
    w_true = rng.normal(size=d)
    w_true[rng.random(d) < 0.3] = 0.0
    b = A @ w_true + 0.5 * rng.normal(size=n)

    # ---- 1. unconstrained
    w_ls = np.linalg.lstsq(A, b, rcond=None)[0]
    f_ls = mse(w_ls, A, b)[0]
    epochs = 20 if quick else 30
    steps = epochs * -(-n // 100)
    options = dict(
        learning_rate=nr.schedules.CosineDecay(0.02, steps, alpha=1e-3),
        batch_size=100,
        maxiter=steps,
        seed=0,
        use_ema=True,
        ema_momentum=0.99,
        return_history=True,  # the minibatch loss of every step, in res.history
    )
    print(f"least squares: {n} x {d}, {epochs} epochs of minibatches of 100 = {steps} steps")
    nr.minimize(mse, np.zeros(d), args=(A, b), jac=True, options=dict(options, maxiter=2))
    t = time.perf_counter()
    res = nr.minimize(mse, np.zeros(d), args=(A, b), jac=True, options=options)
    t_comp = time.perf_counter() - t
    t = time.perf_counter()
    res_py = nr.minimize(
        mse, np.zeros(d), args=(A, b), jac=True, options=dict(options, compiled=False)
    )
    t_py = time.perf_counter() - t
    rel = np.linalg.norm(res.x - w_ls) / np.linalg.norm(w_ls)
    print(
        f"  RMSprop: loss {res.fun:.6f} vs lstsq {f_ls:.6f} (gap {res.fun - f_ls:.2e}), "
        f"|w - w_lstsq| / |w_lstsq| = {rel:.2e}"
    )
    print(
        f"  compiled loop {t_comp:.3f} s, Python loop {t_py:.3f} s "
        f"({t_py / t_comp:.1f}x); identical weights: {np.array_equal(res.x, res_py.x)}"
    )

    # ---- 2. non-negative least squares
    w_nnls, _ = nnls(A, b)
    f_nnls = mse(w_nnls, A, b)[0]
    res_nn = nr.minimize(
        mse, np.ones(d), args=(A, b), jac=True, bounds=Bounds(0.0, np.inf), options=options
    )
    active = np.flatnonzero(w_nnls == 0)
    print(f"\nnon-negative least squares ({active.size} of {d} weights at the bound 0):")
    print(
        f"  RMSprop + bounds: loss {res_nn.fun:.6f} vs scipy nnls {f_nnls:.6f} "
        f"(gap {res_nn.fun - f_nnls:.2e})"
    )
    print(
        f"  max |w - w_nnls| = {np.max(np.abs(res_nn.x - w_nnls)):.2e}; min w = "
        f"{res_nn.x.min():.1e} (feasible: {bool(np.all(res_nn.x >= 0))})"
    )
    print(f"  weights at 0: RMSprop {np.sum(res_nn.x == 0)}, nnls {active.size}")
    plot(res.history, f_ls, n // 100, w_true, w_nnls, res_nn.x)
    return res, res_nn


def plot(history, f_ls, per_epoch, w_true, w_nnls, w_rms):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib).")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    steps = np.arange(len(history))
    epoch_mean = history[: len(history) // per_epoch * per_epoch].reshape(-1, per_epoch)
    ax1.plot(steps, history, color="C0", alpha=0.25, lw=0.5, label="RMSprop: minibatch loss")
    ax1.plot(
        (np.arange(len(epoch_mean)) + 0.5) * per_epoch,
        epoch_mean.mean(axis=1),
        "o-",
        color="C0",
        ms=3,
        label="RMSprop: mean over each epoch",
    )
    ax1.axhline(f_ls, color="k", ls="--", label="exact optimum (numpy.linalg.lstsq)")
    ax1.set(
        yscale="log",
        xlabel="step (minibatch of 100 rows)",
        ylabel=r"loss $|A w - b|^2 / (2n)$",
        title="Least squares: loss against step",
    )
    ax1.legend()
    i = np.arange(len(w_true))
    ax2.axhline(0.0, color="grey", lw=0.5)
    ax2.plot(i, w_true, "s", color="lightgrey", ms=9, label="true weights")
    ax2.plot(i, w_nnls, "o", color="C1", ms=6, label="scipy nnls")
    ax2.plot(i, w_rms, "x", color="C0", ms=7, mew=2, label="RMSprop + bounds")
    ax2.set(
        xlabel="weight index",
        ylabel="weight",
        title="Non-negative least squares: the weights",
    )
    ax2.legend()
    fig.tight_layout()
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "least_squares.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small problem (for tests)")
    main(ap.parse_args().quick)
