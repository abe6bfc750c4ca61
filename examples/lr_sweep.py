"""Sweep the learning rate and the seed of a minibatch fit in one minimize_many call
=================================================================================

A logistic regression on 20,000 generated rows, trained with minibatch
RMSprop for a fixed budget of steps, for 12 learning rates x 5 seeds: 60
independent runs, each with its own learning rate and its own minibatch order.
Run ``i`` is exactly ``nr.minimize`` with the ``i``-th learning rate and seed;
the batch runs compiled, on every CPU thread. The script prints the final
full-data loss per learning rate (mean and spread over the seeds) and, when
matplotlib is installed, plots it against the learning rate
(``examples/lr_sweep.png``). Run it::

    python examples/lr_sweep.py            # 12 rates x 5 seeds, 3,000 steps
    python examples/lr_sweep.py --quick    # 6 rates x 3 seeds, 300 steps
"""

import argparse
import os
import sys
import time

import numpy as np
from numba import njit

import numba_rmsprop as nr


def make_data(n_samples, n_features, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    X[:, 0] = 1.0
    w = rng.normal(size=n_features)
    y = (rng.random(n_samples) < 1.0 / (1.0 + np.exp(-X @ w))).astype(np.float64)
    return X, y


@njit(cache=True)
def loss_and_grad(w, X, y):
    """Mean cross-entropy of ``sigmoid(X @ w)`` and its gradient."""
    n, d = X.shape
    g = np.zeros(d)
    f = 0.0
    for i in range(n):
        z = 0.0
        for j in range(d):
            z += X[i, j] * w[j]
        f += np.logaddexp(0.0, z) - y[i] * z
        p = 1.0 / (1.0 + np.exp(-z))
        for j in range(d):
            g[j] += (p - y[i]) * X[i, j]
    return f / n, g / n


def main(quick=False):
    X, y = make_data(4_000 if quick else 20_000, 20)
    rates = np.geomspace(1e-4, 1.0, 6 if quick else 12)
    seeds = np.arange(3 if quick else 5)
    lr, seed = (a.ravel() for a in np.meshgrid(rates, seeds, indexing="ij"))
    k = lr.size
    steps = 300 if quick else 3000
    X0 = np.zeros((k, X.shape[1]))
    options = dict(
        learning_rate=lr.tolist(), seed=seed.tolist(), batch_size=64, maxiter=steps, momentum=0.9
    )
    print(
        f"{rates.size} learning rates x {seeds.size} seeds = {k} runs, "
        f"minibatches of 64, {steps} steps each"
    )
    t0 = time.perf_counter()
    nr.minimize_many(
        loss_and_grad,
        X0[:1],
        args=(X, y),
        options=dict(options, maxiter=1, learning_rate=0.1, seed=0),
    )
    t_first = time.perf_counter() - t0  # compiling (or loading from the cache)
    t0 = time.perf_counter()
    res = nr.minimize_many(loss_and_grad, X0, args=(X, y), options=options)
    print(
        f"minimize_many: {time.perf_counter() - t0:.2f} s "
        f"(+ {t_first:.2f} s to compile or load the loop once)"
    )
    final = res.fun.reshape(rates.size, seeds.size)
    best = rates[np.argmin(final.mean(axis=1))]
    print(f"{'learning rate':>14s} {'final loss':>12s} {'spread':>10s}")
    for r, row in zip(rates, final, strict=False):
        print(f"{r:14.2e} {row.mean():12.5f} {row.max() - row.min():10.2e}")
    print(f"best learning rate: {best:.2e}")
    plot(rates, final, best, steps)
    return res


def plot(rates, final, best, steps):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib).")
        return
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for j in range(final.shape[1]):
        ax.plot(
            rates, final[:, j], "o", color="C0", alpha=0.5, label="one seed" if j == 0 else None
        )
    ax.plot(rates, final.mean(axis=1), "-", color="C0", label="mean over the seeds")
    ax.axvline(best, color="C1", ls="--", label=f"best learning rate ({best:.1e})")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="learning rate",
        ylabel=f"full-data loss after {steps} steps",
        title=f"RMSprop learning-rate sweep: {final.size} runs in one call",
    )
    ax.legend()
    fig.tight_layout()
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "lr_sweep.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="6 rates x 3 seeds, 300 steps")
    main(ap.parse_args().quick)
