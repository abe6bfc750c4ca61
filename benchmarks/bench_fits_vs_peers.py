"""asv suite and report section: the per-pixel fit against what users would pick instead.

20,000 noisy curves ``a * exp(-t / tau) + c`` on 32 points (``problems.decay_data``),
3 parameters each, from ``(1, 1, 0)``:

* ``minimize_many``, ``@njit`` objective (``problems.decay_njit``): 200 RMSprop steps,
  Keras math, ``learning_rate=0.05``; the whole batch compiled, on the CPU threads.
* ``minimize_many(vectorized=True)`` with a NumPy objective over all active runs.
* ``jax.vmap`` of ``optax.rmsprop`` under ``jax.jit``: the same 200 steps and math
  (``eps_in_sqrt=True``, ``decay=0.9``, ``eps=1e-7``: Keras's rule), the gradient by
  autodiff, all steps in one ``lax.fori_loop`` and the start donated: JAX at its best.
* A Python loop of ``scipy.optimize.curve_fit`` (Levenberg-Marquardt, to convergence) and
  one of ``scipy.optimize.least_squares`` (trust-region reflective) on a sample of the
  curves, scaled up: what a scientist writes first.

Agreement: the mean final loss (half the mean squared residual) and the median error of
``tau`` against the truth, each method on its own curves (the scipy loops on their
sample). Timings exclude compilation (each is reported once, as ``first call``).
"""

from __future__ import annotations

import time

import numpy as np

import numba_rmsprop as nr

from . import common as C
from . import problems as Q


def _decay_vectorized(P, t, Y):
    """All active runs at once: ``P`` (3, m), one column per run; ``Y`` (m, points)."""
    a, tau, c = P[0][:, None], P[1][:, None], P[2][:, None]
    e = np.exp(-t / tau)
    R = a * e + c - Y
    m = t.size
    G = np.stack([(R * e).sum(1) / m, (R * a * e * t).sum(1) / (tau[:, 0] ** 2 * m), R.sum(1) / m])
    return 0.5 * (R * R).sum(1) / m, G


def _jax_fit(t, Y, lr, steps):
    """``fit(X0) -> (X, losses)`` on the curves ``Y`` (put on the device once):
    jit(vmap(...)) of the optax loop, ``X0`` donated."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    tj = jnp.asarray(t)
    tx = optax.rmsprop(learning_rate=lr, decay=0.9, eps=1e-7, eps_in_sqrt=True)

    def loss(p, y):
        r = p[0] * jnp.exp(-tj / p[1]) + p[2] - y
        return 0.5 * jnp.mean(r * r)

    grad = jax.grad(loss)

    def fit_one(p, y):
        def body(_, carry):
            p, state = carry
            updates, state = tx.update(grad(p, y), state, p)
            return optax.apply_updates(p, updates), state

        p, _ = jax.lax.fori_loop(0, steps, body, (p, tx.init(p)))
        return p, loss(p, y)

    fit = jax.jit(jax.vmap(fit_one), donate_argnums=(0,))

    Yj = jnp.asarray(Y)

    def run(X0):
        X, f = fit(jnp.array(X0), Yj)
        return np.asarray(X.block_until_ready()), np.asarray(f)

    return run


def _scipy_loop(method, t, Y, X0, sample):
    from scipy.optimize import curve_fit, least_squares

    X = np.empty((sample, 3))
    for i in range(sample):
        if method == "curve_fit":
            X[i] = curve_fit(lambda t, a, tau, c: a * np.exp(-t / tau) + c, t, Y[i], p0=X0[i])[0]
        else:
            X[i] = least_squares(Q.decay_residuals, X0[i], args=(t, Y[i])).x
    return X


def _summary(X, Y, t, truth):
    losses = [Q.decay(x, t, y)[0] for x, y in zip(X, Y, strict=True)]
    return float(np.mean(losses)), float(np.median(np.abs(X[:, 1] - truth[:, 1])))


def measure(k=20000, steps=200, sample=200, repeat=3) -> dict:
    """Seconds for ``k`` fits by each method, their mean final loss and median tau error."""
    t, Y, truth = Q.decay_data(k)
    X0 = Q.decay_start(k)
    lr = 0.05
    opts = dict(learning_rate=lr, maxiter=steps)
    rows = {}

    def add(name, seconds, first, X, Ys, truths, note=""):
        loss, tau_err = _summary(X, Ys, t, truths)
        rows[name] = dict(seconds=seconds, first=first, loss=loss, tau_err=tau_err, note=note)

    out = {}

    def many():
        out["many"] = nr.minimize_many(Q.decay_njit, X0, args=(t, Y), run_args=(1,), options=opts)

    first, best = C.best_of(many, repeat)[:2]
    add("minimize_many, @njit objective", best, first, out["many"].x, Y, truth)

    def vectorized():
        out["vec"] = nr.minimize_many(
            _decay_vectorized, X0, args=(t, Y), run_args=(1,), vectorized=True, options=opts
        )

    first, best = C.best_of(vectorized, repeat)[:2]
    add("minimize_many, vectorized NumPy objective", best, first, out["vec"].x, Y, truth)

    try:
        fit = _jax_fit(t, Y, lr, steps)
    except ImportError as exc:
        rows["jax.vmap(optax.rmsprop) under jit"] = dict(skipped=f"not installed ({exc.name})")
    else:

        def jax_run():
            out["jax"] = fit(X0)

        first, best = C.best_of(jax_run, repeat)[:2]
        add("jax.vmap(optax.rmsprop) under jit", best, first, out["jax"][0], Y, truth)

    sample = min(sample, k)
    for method in ("curve_fit", "least_squares"):
        t0 = time.perf_counter()
        X = _scipy_loop(method, t, Y, X0, sample)
        seconds = (time.perf_counter() - t0) * k / sample
        add(
            f"Python loop of scipy {method}, scaled from {sample} curves",
            seconds,
            float("nan"),
            X,
            Y[:sample],
            truth[:sample],
            note="to convergence",
        )
    base = rows["minimize_many, @njit objective"]["seconds"]
    for r in rows.values():
        if "seconds" in r:
            r["time / minimize_many"] = r["seconds"] / base
    return {"k": k, "steps": steps, "rows": rows}


def _sized_measure():
    return measure(
        **C.sized(
            dict(k=20000, steps=200, sample=100, repeat=1),
            dict(k=40, steps=5, sample=3, repeat=1),
        )
    )


class FitsVsPeers(C.Benchmark):
    """``track_``: seconds of ``minimize_many`` for the batch, and a curve_fit loop's ratio."""

    timeout = 600

    def setup(self):
        self.r = _sized_measure()

    def track_minimize_many_seconds(self):
        return self.r["rows"]["minimize_many, @njit objective"]["seconds"]

    def track_curve_fit_loop_over_minimize_many(self):
        (row,) = [v for n, v in self.r["rows"].items() if "curve_fit" in n]
        return row["time / minimize_many"]


class FitsVsJax(C.Benchmark):
    """``track_``: ``jax.vmap(optax.rmsprop)``'s time over ``minimize_many``'s (skipped
    without jax and optax)."""

    timeout = 600

    def setup(self):
        C.need("jax")
        C.need("optax")
        self.r = _sized_measure()

    def track_jax_over_minimize_many(self):
        return self.r["rows"]["jax.vmap(optax.rmsprop) under jit"]["time / minimize_many"]
