"""Logistic regression: full-batch vs minibatch RMSprop vs L-BFGS-B
================================================================

A binary classifier on generated data with correlated features (so the
problem is moderately ill-conditioned). Compared, on the same L2-regularised
objective:

* L-BFGS-B (scipy), the full-batch reference optimum;
* RMSprop on the full batch (one pass over the data per step);
* RMSprop on minibatches of 64, with a moving average of the weights
  (``use_ema``) and a decaying learning rate -- one pass over the data buys
  ``n / 64`` steps.

The table reports the training loss gap to the optimum, test accuracy and the
number of *passes over the data* each method used (``nfev`` scaled by the
fraction of the data it sees per evaluation), which is the fair cost measure.
With matplotlib installed, the loss curves (gap to the optimum against passes
over the data) go to ``examples/logistic_regression.png``. Run it::

    python examples/logistic_regression.py [--quick]
"""

import argparse
import os
import sys
import time

import numpy as np
from scipy.optimize import minimize

import numba_rmsprop as nr


def make_data(n, d, rng):
    cov = 0.6 ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))  # AR(1) correlation
    X = rng.multivariate_normal(np.zeros(d), cov, size=n)
    w_true = rng.normal(size=d) * (rng.random(d) < 0.5)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(X @ w_true + 0.3)))).astype(np.float64)
    X = np.hstack([np.ones((n, 1)), X])
    return X, y


def loss_and_grad(w, X, y, lam):
    z = X @ w
    p = 1.0 / (1.0 + np.exp(-z))
    loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * (w[1:] @ w[1:])
    g = X.T @ (p - y) / len(y)
    g[1:] += lam * w[1:]
    return loss, g


def main(quick=False):
    rng = np.random.default_rng(1)
    n, d = (5000, 10) if quick else (30000, 20)
    X, y = make_data(n, d, rng)
    ntr = int(0.8 * n)
    Xtr, ytr, Xte, yte = X[:ntr], y[:ntr], X[ntr:], y[ntr:]
    lam = 1e-4
    w0 = np.zeros(X.shape[1])
    args = (Xtr, ytr, lam)
    epochs = 3 if quick else 20
    bs = 64
    steps_mb = epochs * -(-ntr // bs)

    runs = {}
    lbfgs_losses = [loss_and_grad(w0, *args)[0]]  # the loss after each iteration
    t = time.perf_counter()
    runs["L-BFGS-B"] = minimize(
        loss_and_grad,
        w0,
        args=args,
        method="L-BFGS-B",
        jac=True,
        options={"gtol": 1e-9, "maxiter": 10000},
        callback=lambda intermediate_result: lbfgs_losses.append(intermediate_result.fun),
    )
    times = {"L-BFGS-B": time.perf_counter() - t}
    f_star = runs["L-BFGS-B"].fun

    configs = {
        "RMSprop full batch": dict(
            learning_rate=nr.schedules.ExponentialDecay(3e-2, 60, 0.5),
            maxiter=200 if quick else 500,
            return_history=True,
        ),
        "RMSprop minibatch 64": dict(
            learning_rate=nr.schedules.CosineDecay(3e-3, steps_mb, alpha=0.01),
            batch_size=bs,
            maxiter=steps_mb,
            seed=0,
            use_ema=True,
            ema_momentum=0.99,
            return_history=True,
        ),
    }
    for name, options in configs.items():
        t = time.perf_counter()
        runs[name] = nr.minimize(loss_and_grad, w0, args=args, jac=True, options=options)
        times[name] = time.perf_counter() - t

    print(f"logistic regression: {ntr} training rows, {X.shape[1]} weights, lam={lam}")
    print(
        f"{'method':22s}{'loss - f*':>12s}{'test acc':>10s}{'data passes':>13s}"
        f"{'steps':>8s}{'time [s]':>10s}"
    )
    for name, r in runs.items():
        frac = bs / ntr
        # minibatch: nit batches plus the final full evaluation
        passes = r.nfev if "minibatch" not in name else r.nit * frac + 1
        acc = np.mean((Xte @ r.x > 0) == (yte > 0.5))
        print(
            f"{name:22s}{r.fun - f_star:12.2e}{acc:10.4f}{passes:13.1f}"
            f"{r.nit:8d}{times[name]:10.2f}"
        )

    mb = runs["RMSprop minibatch 64"]
    print(
        f"\nminibatch run: {mb.nepoch} epochs, final full loss {mb.fun:.6f} "
        f"(f* = {f_star:.6f}); last-epoch mean minibatch loss "
        f"{mb.history[-(ntr // bs) :].mean():.6f}"
    )

    plot(runs, lbfgs_losses, f_star, ntr, bs)
    return runs


def plot(runs, lbfgs_losses, f_star, ntr, bs):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib).")
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))

    def gap(losses):  # loss - f*, where positive (log scale): the k-th at pass k
        g = np.asarray(losses) - f_star
        return np.arange(1, len(g) + 1), np.where(g > 0, g, np.nan)

    # L-BFGS-B: a pass per iteration, and a few more for its line searches (nfev in all)
    ax.loglog(*gap(lbfgs_losses), "s-", ms=3, color="k", label="L-BFGS-B (per iteration)")
    ax.loglog(*gap(runs["RMSprop full batch"].history), label="RMSprop full batch")
    mb = runs["RMSprop minibatch 64"].history
    k = ntr // bs
    epoch_mean = mb[: len(mb) // k * k].reshape(-1, k).mean(axis=1)
    ax.loglog(*gap(epoch_mean), "o-", color="C1", label="RMSprop minibatch (epoch's mean loss)")
    r = runs["RMSprop minibatch 64"]
    ax.loglog(r.nit / k + 1, r.fun - f_star, "*", color="C1", ms=12, label="... its result (EMA)")
    ax.set(
        xlabel="passes over the data",
        ylabel="training loss - f* (f*: L-BFGS-B's optimum)",
        title="Logistic regression: full batch vs minibatch",
    )
    ax.legend(loc="lower right", fontsize="small")
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "logistic_regression.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small problem (for tests)")
    main(ap.parse_args().quick)
