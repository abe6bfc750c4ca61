"""Quickstart: fit a logistic regression with minibatch RMSprop, scipy-style
=========================================================================

The model is an L2-regularised logistic regression on generated data (the
true weights are known, so we can see how close the fit gets). The objective
returns the loss *and* its gradient (``jac=True``); with ``batch_size`` every
step sees a fresh minibatch of the rows of ``X`` and ``y``.

The same run goes through ``scipy.optimize.minimize(method=nr.rmsprop)`` and
through ``nr.minimize`` (no scipy dispatcher): the results are bit-identical.
For reference, scipy's L-BFGS-B solves the same (full-batch) problem. The plot
(``examples/quickstart.png``, with matplotlib installed) shows the loss against the
step of both. Run it::

    python examples/quickstart.py           # 5000 steps
    python examples/quickstart.py --quick   # a few hundred steps
"""

import argparse
import os
import sys
import time

import numpy as np
from scipy.optimize import minimize

import numba_rmsprop as nr


def make_data(n_samples, n_features, rng):
    """Features, labels drawn from a known logistic model, and its weights."""
    X = rng.normal(size=(n_samples, n_features))
    X[:, 0] = 1.0  # intercept
    w_true = rng.normal(size=n_features)
    p = 1.0 / (1.0 + np.exp(-X @ w_true))
    y = (rng.random(n_samples) < p).astype(np.float64)
    return X, y, w_true


def loss_and_grad(w, X, y, lam):
    """Mean cross-entropy + lam/2 |w|^2, and its gradient."""
    z = X @ w
    loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * (w @ w)
    p = 1.0 / (1.0 + np.exp(-z))
    return loss, X.T @ (p - y) / len(y) + lam * w


def accuracy(w, X, y):
    return np.mean((X @ w > 0) == (y > 0.5))


def main(quick=False):
    rng = np.random.default_rng(0)
    X, y, w_true = make_data(4000 if quick else 20000, 10, rng)
    n_train = int(0.8 * len(y))
    Xtr, ytr, Xte, yte = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    lam = 1e-3
    w0 = np.zeros(X.shape[1])
    maxiter = 500 if quick else 5000
    options = {
        "learning_rate": nr.schedules.ExponentialDecay(1e-2, maxiter // 4, 0.5),
        "batch_size": 64,
        "maxiter": maxiter,
        "seed": 0,
        "use_ema": True,
        "ema_momentum": 0.99,
    }

    print(
        f"logistic regression: {n_train} training rows, {X.shape[1]} weights, "
        f"minibatches of {options['batch_size']}, {maxiter} RMSprop steps"
    )

    losses = []  # the minibatch loss of every step

    def progress(intermediate_result):
        r = intermediate_result
        losses.append(r.fun)
        if r.nit % (maxiter // 5) == 0:
            print(f"  step {r.nit:5d}  minibatch loss {r.fun:.4f}")

    # (one tiny run first, so the timings below exclude loading the compiled kernels)
    nr.minimize(loss_and_grad, w0, args=(Xtr, ytr, lam), jac=True, options=dict(options, maxiter=1))
    t = time.perf_counter()
    res = minimize(
        loss_and_grad,
        w0,
        args=(Xtr, ytr, lam),
        method=nr.rmsprop,
        jac=True,
        callback=progress,
        options=options,
    )
    t_scipy = time.perf_counter() - t
    print(res)

    t = time.perf_counter()
    res2 = nr.minimize(loss_and_grad, w0, args=(Xtr, ytr, lam), jac=True, options=options)
    t_nr = time.perf_counter() - t
    print(
        f"\nscipy.optimize.minimize(method=nr.rmsprop): {t_scipy:.2f} s (printing progress "
        "from a callback)"
    )
    print(f"nr.minimize:                                {t_nr:.2f} s (no callback)")
    print(f"identical results: {np.array_equal(res.x, res2.x) and res.fun == res2.fun}")

    ref_losses = [loss_and_grad(w0, Xtr, ytr, lam)[0]]
    ref = minimize(
        loss_and_grad,
        w0,
        args=(Xtr, ytr, lam),
        method="L-BFGS-B",
        jac=True,
        options={"gtol": 1e-10},
        callback=lambda intermediate_result: ref_losses.append(intermediate_result.fun),
    )
    print(f"\n{'':20s}{'train loss':>12s}{'test acc':>10s}{'|w - w_lbfgs|':>15s}")
    for name, w in [
        ("RMSprop (minibatch)", res.x),
        ("L-BFGS-B (full)", ref.x),
        ("true weights", w_true),
    ]:
        f = loss_and_grad(w, Xtr, ytr, lam)[0]
        print(f"{name:20s}{f:12.6f}{accuracy(w, Xte, yte):10.4f}{np.max(np.abs(w - ref.x)):15.2e}")
    plot(losses, ref_losses, res.fun)
    return res


def plot(losses, ref_losses, f_rms):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib).")
        return
    steps = np.arange(len(losses))  # the loss of step k is at the weights after k steps
    window = 25
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses, color="C0", alpha=0.3, lw=0.8, label="RMSprop: minibatch loss")
    ax.plot(steps[window - 1 :], smooth, color="C0", label=f"RMSprop: mean of {window} steps")
    ax.axhline(f_rms, color="C0", ls=":", label="RMSprop: final loss (EMA weights, all rows)")
    ax.plot(
        np.arange(len(ref_losses)),
        ref_losses,
        "o-",
        color="C1",
        ms=3,
        label="L-BFGS-B (all rows each step)",
    )
    ax.set(
        xscale="symlog",
        xlabel="step",
        ylabel="training loss",
        title="Logistic regression: minibatch RMSprop vs L-BFGS-B",
    )
    ax.legend()
    fig.tight_layout()
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "quickstart.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small problem, few steps (for tests)")
    main(ap.parse_args().quick)
