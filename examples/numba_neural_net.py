"""A small neural network whose gradients are written with numba
=============================================================

A two-hidden-layer perceptron (tanh, 2 -> H -> H -> 1) classifies the two
interleaved spirals, with hand-written backpropagation in an ``@njit``
function over the flat parameter vector. Because the objective is compiled
and ``jac=True``, ``nr.minimize`` runs the *whole* training loop compiled --
minibatch gathering, RMSprop update and all -- and the same run through the
Python loop (``compiled=False``, calling the very same ``@njit`` objective
once per step) gives bit-identical weights, only slower.

Before training, the hand-written gradient is checked against central
finite differences. With matplotlib installed, the training loss per epoch and
the learned decision regions go to ``examples/numba_neural_net.png``. Run it::

    python examples/numba_neural_net.py [--quick]
"""

import argparse
import os
import sys
import time

import numpy as np
from numba import njit
from scipy.optimize._numdiff import approx_derivative

import numba_rmsprop as nr


def spirals(n, noise, rng):
    """Two interleaved spirals in the plane; labels 0/1."""
    t = np.sqrt(rng.random(n)) * 3.0 * np.pi
    label = rng.integers(0, 2, n)
    r = t / (3.0 * np.pi)
    angle = t + np.pi * label
    X = np.column_stack([r * np.cos(angle), r * np.sin(angle)])
    X += noise * rng.normal(size=X.shape)
    return X, label.astype(np.float64)


def n_params(h):
    return 2 * h + h + h * h + h + h + 1


@njit(cache=True)
def unpack(w, h):
    i = 0
    W1 = w[i : i + 2 * h].reshape((2, h))
    i += 2 * h
    b1 = w[i : i + h]
    i += h
    W2 = w[i : i + h * h].reshape((h, h))
    i += h * h
    b2 = w[i : i + h]
    i += h
    W3 = w[i : i + h]
    b3 = w[i + h]
    return W1, b1, W2, b2, W3, b3


@njit(cache=True)
def loss_and_grad(w, X, y, h, lam):
    """Mean binary cross-entropy of the MLP + lam/2 |w|^2, and its gradient."""
    W1, b1, W2, b2, W3, b3 = unpack(w, h)
    n = X.shape[0]
    # forward
    a1 = np.tanh(X @ W1 + b1)
    a2 = np.tanh(a1 @ W2 + b2)
    z = a2 @ W3 + b3
    loss = 0.0
    dz = np.empty(n)
    for k in range(n):
        # log(1 + exp(z)) - y z, stably; d/dz = sigmoid(z) - y
        zk = z[k]
        if zk > 0:
            loss += zk + np.log1p(np.exp(-zk)) - y[k] * zk
            s = 1.0 / (1.0 + np.exp(-zk))
        else:
            loss += np.log1p(np.exp(zk)) - y[k] * zk
            e = np.exp(zk)
            s = e / (1.0 + e)
        dz[k] = (s - y[k]) / n
    loss = loss / n + 0.5 * lam * (w @ w)
    # backward
    g = lam * w
    gW1, gb1, gW2, gb2, gW3, _ = unpack(g, h)
    gW3 += a2.T @ dz
    g[-1] += dz.sum()
    d2 = np.outer(dz, W3) * (1.0 - a2 * a2)
    gW2 += a1.T @ d2
    gb2 += d2.sum(axis=0)
    d1 = (d2 @ W2.T) * (1.0 - a1 * a1)
    gW1 += X.T @ d1
    gb1 += d1.sum(axis=0)
    return loss, g


@njit(cache=True)
def predict(w, X, h):
    W1, b1, W2, b2, W3, b3 = unpack(w, h)
    a2 = np.tanh(np.tanh(X @ W1 + b1) @ W2 + b2)
    return a2 @ W3 + b3 > 0


def main(quick=False):
    rng = np.random.default_rng(5)
    h = 16 if quick else 32
    n_train, n_test = (1000, 1000) if quick else (4000, 2000)
    X, y = spirals(n_train + n_test, 0.03, rng)
    Xtr, ytr, Xte, yte = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    lam = 1e-5
    w0 = rng.normal(size=n_params(h)) * np.sqrt(1.0 / 2.0)
    w0[2 * h : 3 * h] = 0.0
    print(
        f"MLP 2 -> {h} -> {h} -> 1 ({w0.size} parameters), two spirals, {n_train} training points"
    )

    f0, g0 = loss_and_grad(w0, Xtr[:64], ytr[:64], h, lam)
    g_fd = approx_derivative(
        lambda w: loss_and_grad(w, Xtr[:64], ytr[:64], h, lam)[0], w0, method="3-point"
    )
    print(
        f"gradient check (central differences): max |g - g_fd| = "
        f"{np.max(np.abs(g0 - g_fd)):.1e} (max |g| = {np.max(np.abs(g0)):.2f})"
    )

    epochs = 60 if quick else 150
    bs = 32
    steps = epochs * -(-n_train // bs)
    options = dict(
        learning_rate=nr.schedules.CosineDecay(1e-2, steps, alpha=0.01),
        batch_size=bs,
        maxiter=steps,
        seed=0,
        return_history=True,
    )
    args = (Xtr, ytr, h, lam)
    t = time.perf_counter()
    res = nr.minimize(loss_and_grad, w0, args=args, jac=True, options=options)
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    res = nr.minimize(loss_and_grad, w0, args=args, jac=True, options=options)
    t_comp = time.perf_counter() - t
    k = max(steps // 10, 1)
    t = time.perf_counter()
    part = nr.minimize(
        loss_and_grad, w0, args=args, jac=True, options=dict(options, maxiter=k, compiled=False)
    )
    t_py = (time.perf_counter() - t) * steps / k
    same = nr.minimize(loss_and_grad, w0, args=args, jac=True, options=dict(options, maxiter=k))
    per_epoch = -(-n_train // bs)
    print(f"\ntrained {res.nit} steps ({res.nepoch} epochs of minibatches of {bs}):")
    for e in np.linspace(0, epochs - 1, 6).astype(int):
        print(
            f"  epoch {e + 1:4d}: mean minibatch loss "
            f"{res.history[e * per_epoch : (e + 1) * per_epoch].mean():.4f}"
        )
    acc_tr = np.mean(predict(res.x, Xtr, h) == (ytr > 0.5))
    acc_te = np.mean(predict(res.x, Xte, h) == (yte > 0.5))
    print(f"final training loss {res.fun:.4f}; accuracy train {acc_tr:.3f}, test {acc_te:.3f}")
    print(
        f"\ncompiled loop: {t_comp:.2f} s ({t_comp / steps * 1e6:.1f} us/step; the first run, "
        f"which compiles the loop or loads it from numba's cache, took {t_first:.2f} s)"
    )
    print(f"Python loop:   {t_py:.2f} s (extrapolated from {k} steps; {t_py / t_comp:.1f}x slower)")
    print(
        f"compiled and Python loops bit-identical after {k} steps: {np.array_equal(part.x, same.x)}"
    )
    losses = res.history[: epochs * per_epoch].reshape(epochs, per_epoch).mean(axis=1)
    plot(losses, res.x, h, Xte, yte, acc_te)
    return res


def plot(epoch_losses, w, h, X, y, acc):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib).")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    ax1.semilogy(np.arange(1, len(epoch_losses) + 1), epoch_losses, label="RMSprop, minibatches")
    ax1.set(
        xlabel="epoch",
        ylabel="mean minibatch loss (cross-entropy)",
        title=f"Training loss of the MLP 2-{h}-{h}-1",
    )
    ax1.legend()
    g = np.linspace(-1.2, 1.2, 300)
    gx, gy = np.meshgrid(g, g)
    inside = predict(w, np.column_stack([gx.ravel(), gy.ravel()]), h).reshape(gx.shape)
    ax2.contourf(gx, gy, inside, levels=[-0.5, 0.5, 1.5], colors=["C0", "C1"], alpha=0.25)
    for label in (0, 1):
        pts = X[y == label]
        ax2.plot(
            pts[:, 0], pts[:, 1], ".", ms=3, color=f"C{label}", label=f"test points, class {label}"
        )
    ax2.set(
        aspect="equal",
        xlabel="x1",
        ylabel="x2",
        title=f"Decision regions (test accuracy {acc:.3f})",
    )
    ax2.legend(loc="upper right", fontsize="small", markerscale=3)
    fig.tight_layout()
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "numba_neural_net.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller net, fewer epochs (for tests)")
    main(ap.parse_args().quick)
