"""The problems every suite and report uses, each defined once.

Objectives follow ``nr.minimize(fun, x0, args=..., jac=True)``: ``fun(x, *args)``
returns ``(f, g)``. Each has a NumPy version and an ``@njit`` twin (``*_njit``,
compiled loop) computing the same function; the data makers are seeded.

* :func:`quadratic` -- ``0.5 * sum(d * (x - c)**2)``, 10 parameters by default
  (:func:`quadratic_args`): costs almost nothing, so a loop around it measures
  the loop.
* :func:`rosenbrock` -- scipy's chained Rosenbrock (``rosen``, ``rosen_der``).
* :func:`logistic` -- mean cross-entropy of ``sigmoid(X @ w)`` plus
  ``lam/2 |w|^2``; data from :func:`logistic_data`.
* :func:`least_squares` -- ``0.5 * |A w - b|^2 / n``; data from :func:`least_squares_data`.
* the MLP -- 784-128-10, ReLU, softmax cross-entropy, float32, forward and
  backward in NumPy (:func:`mlp_loss_and_grads`), on MNIST-like synthetic
  images (:func:`mnist_like`); :func:`mlp_flat` is the same objective on one
  flat parameter vector, for ``nr.minimize``.
* data larger than memory -- :func:`mnist_like_zarr` writes MNIST-like rows to
  an on-disk Zarr store chunk by chunk (any size, little memory);
  :func:`linear_probe_njit` is a cheap ``@njit`` objective on such rows
  (least squares of the label on the pixels), for runs bound by reading.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.optimize import rosen, rosen_der
from scipy.special import expit


# ---------------------------------------------------------------- quadratic
def quadratic_args(n: int = 10):
    """``(d, c)``: curvatures 1..10 and centres -1..1."""
    return np.linspace(1.0, 10.0, n), np.linspace(-1.0, 1.0, n)


def quadratic(x, d, c):
    g = d * (x - c)
    return 0.5 * np.dot(g, x - c), g


@njit(cache=True)
def quadratic_njit(x, d, c):
    g = np.empty_like(x)
    f = 0.0
    for i in range(x.size):
        r = x[i] - c[i]
        g[i] = d[i] * r
        f += g[i] * r
    return 0.5 * f, g


# --------------------------------------------------------------- rosenbrock
def rosenbrock(x):
    return rosen(x), rosen_der(x)


@njit(cache=True)
def rosenbrock_njit(x):
    g = np.zeros_like(x)
    f = 0.0
    for i in range(x.size - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        f += 100.0 * a * a + b * b
        g[i] += -400.0 * x[i] * a - 2.0 * b
        g[i + 1] += 200.0 * a
    return f, g


# ------------------------------------------------------ logistic regression
def logistic_data(n_samples: int = 20000, n_features: int = 20, seed: int = 0, test: float = 0.2):
    """``X, y, X_test, y_test``: column 0 of X is 1, labels ~ Bernoulli(sigmoid(X w_true))."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    X[:, 0] = 1.0
    w_true = rng.normal(size=n_features)
    y = (rng.random(n_samples) < expit(X @ w_true)).astype(np.float64)
    k = int(round((1.0 - test) * n_samples))
    return X[:k].copy(), y[:k].copy(), X[k:].copy(), y[k:].copy()


def logistic(w, X, y, lam):
    z = X @ w
    f = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * (w @ w)
    return f, X.T @ (expit(z) - y) / len(y) + lam * w


@njit(cache=True)
def logistic_njit(w, X, y, lam):
    n = y.size
    z = X @ w
    r = np.empty(n)
    f = 0.0
    for i in range(n):
        zi = z[i]
        if zi > 0.0:  # log(1 + e^z) - y z and sigmoid(z) - y, without overflow
            e = math.exp(-zi)
            f += zi + math.log1p(e) - y[i] * zi
            r[i] = 1.0 / (1.0 + e) - y[i]
        else:
            e = math.exp(zi)
            f += math.log1p(e) - y[i] * zi
            r[i] = e / (1.0 + e) - y[i]
    return f / n + 0.5 * lam * (w @ w), (r @ X) / n + lam * w


def accuracy(w, X, y) -> float:
    return float(np.mean((X @ w > 0) == (y > 0.5)))


# ------------------------------------------------------------ least squares
def least_squares_data(n_samples: int = 10000, n_features: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n_samples, n_features))
    return A, A @ rng.normal(size=n_features) + rng.normal(size=n_samples)


def least_squares(w, A, b):
    r = A @ w - b
    return 0.5 * (r @ r) / b.size, A.T @ r / b.size


@njit(cache=True)
def least_squares_njit(w, A, b):
    r = A @ w - b
    return 0.5 * (r @ r) / b.size, A.T @ r / b.size


# ---------------------------------------------------------------------- MLP
MLP_SIZES = (784, 128, 10)


def mnist_like(n_samples: int = 8192, seed: int = 0):
    """Synthetic 28x28 "digits" in [0, 1], float32, and int labels 0-9.

    Ten random templates inside the central 20x20 window (the border stays 0,
    as in MNIST, so those weights get exactly zero gradients), each sample a
    template scaled by 0.5-1.5 plus N(0, 1) noise, clipped to [0, 1].
    """
    rng = np.random.default_rng(seed)
    mask = np.zeros((28, 28), np.float32)
    mask[4:24, 4:24] = 1.0
    templates = (rng.random((10, 784), dtype=np.float32) ** 3) * mask.ravel()
    y = rng.integers(0, 10, n_samples)
    X = templates[y] * rng.uniform(0.5, 1.5, (n_samples, 1)).astype(np.float32)
    X += 1.0 * rng.standard_normal((n_samples, 784), dtype=np.float32) * mask.ravel()
    np.clip(X, 0.0, 1.0, out=X)
    return X, y


def mlp_init(seed: int = 0):
    """``[W1, b1, W2, b2]`` in float32 (He initialisation, zero biases)."""
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = MLP_SIZES
    scale1, scale2 = np.float32(math.sqrt(2 / n_in)), np.float32(math.sqrt(1 / n_hidden))
    return [
        rng.standard_normal((n_in, n_hidden), dtype=np.float32) * scale1,
        np.zeros(n_hidden, np.float32),
        rng.standard_normal((n_hidden, n_out), dtype=np.float32) * scale2,
        np.zeros(n_out, np.float32),
    ]


def mlp_loss_and_grads(params, X, y, grads) -> float:
    """Mean softmax cross-entropy of the batch; its gradients written into ``grads``."""
    W1, b1, W2, b2 = params
    gW1, gb1, gW2, gb2 = grads
    n = y.size
    h = X @ W1
    h += b1
    a = np.maximum(h, 0.0)
    z = a @ W2
    z += b2
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    loss = float(np.mean(np.log(s[:, 0]) - z[rows, y]))
    e /= s  # softmax
    e[rows, y] -= 1.0
    e /= np.float32(n)  # d loss / d z
    np.matmul(a.T, e, out=gW2)
    e.sum(axis=0, out=gb2)
    da = e @ W2.T
    da *= h > 0
    np.matmul(X.T, da, out=gW1)
    da.sum(axis=0, out=gb1)
    return loss


def minibatches(n_samples: int, batch: int, seed: int = 0):
    """Endless index batches: a fresh ``default_rng(seed)`` permutation each epoch."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n_samples)
        for s in range(0, n_samples - batch + 1, batch):
            yield perm[s : s + batch]


# ---------------------------------------------------------------- decay curves
def decay_data(k: int = 20000, m: int = 32, noise: float = 0.02, seed: int = 0):
    """``k`` noisy curves ``a * exp(-t / tau) + c`` on ``m`` time points, one per "pixel".

    Returns ``(t, Y, truth)``: times ``(m,)``, curves ``(k, m)`` and the true
    ``(a, tau, c)`` per curve ``(k, 3)``.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 5.0, m)
    truth = np.column_stack(
        [rng.uniform(0.5, 2.0, k), rng.uniform(0.5, 2.0, k), rng.uniform(-0.2, 0.2, k)]
    )
    a, tau, c = truth.T
    Y = a[:, None] * np.exp(-t[None, :] / tau[:, None]) + c[:, None]
    Y += noise * rng.standard_normal(Y.shape)
    return t, Y, truth


def decay_start(k: int):
    """One starting point ``(a, tau, c) = (1, 1, 0)`` per curve."""
    return np.tile(np.array([1.0, 1.0, 0.0]), (k, 1))


def _decay(p, t, y):
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


#: Mean squared residual of the decay model and its gradient; ``fun(p, t, y)``.
decay = _decay
decay_njit = njit(cache=True)(_decay)


def decay_residuals(p, t, y):
    """Residuals for ``scipy.optimize.least_squares``."""
    return p[0] * np.exp(-t / p[1]) + p[2] - y


def mlp_flat_init(seed: int = 0) -> np.ndarray:
    """:func:`mlp_init`'s parameters as one flat float32 vector (for ``nr.minimize``)."""
    return np.concatenate([p.ravel() for p in mlp_init(seed)])


def mlp_flat(x, X, y):
    """``(loss, gradient)`` of the MLP on the flat parameters ``x`` (:func:`mlp_flat_init`)."""
    n_in, n_hidden, n_out = MLP_SIZES
    shapes = ((n_in, n_hidden), (n_hidden,), (n_hidden, n_out), (n_out,))
    g = np.empty_like(x)
    params, grads, k = [], [], 0
    for shp in shapes:
        size = math.prod(shp)
        params.append(x[k : k + size].reshape(shp))
        grads.append(g[k : k + size].reshape(shp))
        k += size
    return mlp_loss_and_grads(params, X, y, grads), g


def mnist_like_zarr(path: str, n_samples: int, chunk_rows: int, seed: int = 0) -> dict:
    """Write ``n_samples`` MNIST-like rows to the Zarr group ``path`` (arrays ``X``, ``y``).

    ``X`` is float32 ``(n_samples, 784)``, ``y`` int64 labels, both chunked by
    ``chunk_rows`` along axis 0 and stored uncompressed (the bytes on disk are
    the bytes in memory: a run measures reading, not decompressing). Rows are
    made chunk by chunk, as :func:`mnist_like` makes them (the same templates,
    the noise seeded per chunk), so memory stays at about one chunk whatever
    the size. Returns the shapes and sizes.
    """
    import zarr

    rng = np.random.default_rng(seed)
    mask = np.zeros((28, 28), np.float32)
    mask[4:24, 4:24] = 1.0
    templates = (rng.random((10, 784), dtype=np.float32) ** 3) * mask.ravel()
    root = zarr.open_group(path, mode="w")
    X = root.create_array(
        "X", shape=(n_samples, 784), chunks=(chunk_rows, 784), dtype="float32", compressors=None
    )
    y = root.create_array(
        "y", shape=(n_samples,), chunks=(chunk_rows,), dtype="int64", compressors=None
    )
    for k, s in enumerate(range(0, n_samples, chunk_rows)):
        m = min(chunk_rows, n_samples - s)
        r = np.random.default_rng([seed, k])
        labels = r.integers(0, 10, m)
        rows = templates[labels] * r.uniform(0.5, 1.5, (m, 1)).astype(np.float32)
        rows += r.standard_normal((m, 784), dtype=np.float32) * mask.ravel()
        np.clip(rows, 0.0, 1.0, out=rows)
        X[s : s + m] = rows
        y[s : s + m] = labels
    return dict(
        path=path,
        n_samples=n_samples,
        chunk_rows=chunk_rows,
        row_bytes=784 * 4 + 8,
        bytes=n_samples * (784 * 4 + 8),
    )


@njit(cache=True)
def linear_probe_njit(w, X, y):
    """``0.5 * mean((X @ w - y)**2)`` and its gradient; float32 ``X``, integer ``y``."""
    n, d = X.shape
    g = np.zeros(d)
    f = 0.0
    for i in range(n):
        r = -np.float64(y[i])
        for k in range(d):
            r += X[i, k] * w[k]
        f += r * r
        for k in range(d):
            g[k] += r * X[i, k]
    return 0.5 * f / n, (g / n).astype(w.dtype)
