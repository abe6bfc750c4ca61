"""The ``scipy.optimize.minimize`` front end (``numba_rmsprop.frontend.api``).

Layout, after optimistix's test suite: a shared list of test problems with
known minimizers, crossed with a list of optimizer configurations, each run
checked against the known answer; then the contract, rule by rule.
"""

import inspect
import sys
import warnings

import numpy as np
import pytest
from numba import njit
from scipy.optimize import Bounds, OptimizeWarning
from scipy.optimize import minimize as sp_minimize

import numba_rmsprop as nr
from numba_rmsprop import RMSprop, schedules
from numba_rmsprop.frontend import api as nro
from numba_rmsprop.frontend import compiled_loop, learning_rates
from numba_rmsprop.frontend import run as fe_run

# ---------------------------------------------------------------------------
# Test problems: (loss, gradient) functions with known minimizers.
# ---------------------------------------------------------------------------

_A_DIAG = np.array([1.0, 2.0, 5.0, 10.0, 0.5])
_C = np.array([1.0, -2.0, 3.0, 0.5, -1.0])


def quadratic(x, a, c):
    d = x - c
    return 0.5 * np.sum(a * d * d), a * d


def least_squares(x, A, b):
    r = A @ x - b
    return 0.5 * (r @ r) / b.size, A.T @ r / b.size


def logistic(x, X, y, lam):
    z = X @ x
    p = 1.0 / (1.0 + np.exp(-z))
    loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * (x @ x)
    return loss, X.T @ (p - y) / y.size + lam * x


def rosenbrock(x):
    f = 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2
    g = np.array(
        [-400.0 * x[0] * (x[1] - x[0] ** 2) - 2.0 * (1.0 - x[0]), 200.0 * (x[1] - x[0] ** 2)]
    )
    return f, g


def _make_problems():
    rng = np.random.default_rng(42)
    A = rng.normal(size=(256, 4))
    w = np.array([0.5, -1.0, 2.0, 0.25])
    b = A @ w + 0.1 * rng.normal(size=256)
    X = rng.normal(size=(256, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.5 * rng.normal(size=256) > 0).astype(float)
    lam = 0.1
    from scipy.optimize import minimize as _m

    w_log = _m(
        logistic, np.zeros(3), args=(X, y, lam), jac=True, method="BFGS", options={"gtol": 1e-12}
    ).x
    return {
        "quadratic": dict(fun=quadratic, x0=np.zeros(5), args=(_A_DIAG, _C), answer=_C, data=False),
        "least_squares": dict(
            fun=least_squares,
            x0=np.zeros(4),
            args=(A, b),
            answer=np.linalg.lstsq(A, b, rcond=None)[0],
            data=True,
        ),
        "logistic": dict(fun=logistic, x0=np.zeros(3), args=(X, y, lam), answer=w_log, data=True),
        "rosenbrock": dict(
            fun=rosenbrock, x0=np.array([-1.2, 1.0]), args=(), answer=np.ones(2), data=False
        ),
    }


PROBLEMS = _make_problems()


def _decay(lr0, steps):
    return schedules.ExponentialDecay(lr0, steps, 0.5)


# name -> (options, tolerance on |x - answer|_inf, applies to data problems only)
CONFIGS = {
    "plain": (dict(learning_rate=_decay(0.05, 300), maxiter=3000), 2e-3, False),
    "momentum": (dict(learning_rate=_decay(0.01, 300), momentum=0.5, maxiter=3000), 2e-3, False),
    "centered": (dict(learning_rate=_decay(0.05, 300), centered=True, maxiter=3000), 2e-3, False),
    "ema": (
        dict(learning_rate=_decay(0.05, 300), use_ema=True, ema_momentum=0.9, maxiter=3000),
        2e-3,
        False,
    ),
    "accumulation": (
        dict(learning_rate=_decay(0.05, 600), gradient_accumulation_steps=2, maxiter=6000),
        2e-3,
        False,
    ),
    "clipnorm": (dict(learning_rate=_decay(0.05, 300), clipnorm=0.5, maxiter=3000), 2e-3, False),
    "float32": (dict(learning_rate=_decay(0.05, 300), maxiter=3000, _float32=True), 2e-3, False),
    "minibatch": (
        dict(
            learning_rate=schedules.PolynomialDecay(0.02, 3000, 1e-4),
            batch_size=32,
            seed=0,
            use_ema=True,
            ema_momentum=0.99,
            maxiter=3000,
        ),
        2e-2,
        True,
    ),
}


def _run(problem, options, **kw):
    options = dict(options)
    x0 = problem["x0"]
    if options.pop("_float32", False):
        x0 = x0.astype(np.float32)
    return nr.minimize(problem["fun"], x0, args=problem["args"], jac=True, options=options, **kw)


CASES = [
    (name, config)
    for name in PROBLEMS
    if name != "rosenbrock"
    for config in CONFIGS
    if PROBLEMS[name]["data"] or not CONFIGS[config][2]
]  # minibatches need data


@pytest.mark.parametrize("name, config", CASES)
def test_problem_solved(name, config):
    problem = PROBLEMS[name]
    options, tol, _ = CONFIGS[config]
    res = _run(problem, options)
    assert isinstance(res, nr.OptimizeResult)
    assert res.success and res.status == 0
    assert res.x.dtype == (np.float32 if options.get("_float32") else np.float64)
    err = np.max(np.abs(res.x - problem["answer"]))
    assert err <= tol, (name, config, err, res.x, problem["answer"])
    # fun and jac are the full objective at res.x
    f, g = problem["fun"](res.x, *problem["args"])
    assert res.fun == pytest.approx(float(f), rel=1e-5)
    np.testing.assert_allclose(res.jac, g, rtol=1e-4, atol=1e-6)


def test_rosenbrock():
    p = PROBLEMS["rosenbrock"]
    res = nr.minimize(
        p["fun"], p["x0"], jac=True, options=dict(learning_rate=_decay(0.02, 3000), maxiter=30000)
    )
    assert np.max(np.abs(res.x - 1.0)) < 1e-2, res.x


# ---------------------------------------------------------------------------
# Equivalences: RMSprop itself, scipy's dispatcher, the compiled loop.
# ---------------------------------------------------------------------------


def _rmsprop_loop(fun, x0, args, steps, batch_size=None, seed=None, **kw):
    """The reference: the same run through RMSprop.apply."""
    opt = RMSprop(**kw)
    x = np.array(x0, dtype=np.result_type(x0, np.float32) if x0.dtype == np.float32 else np.float64)
    if batch_size is None:
        for _ in range(steps):
            f, g = fun(x, *args)
            opt.apply([np.asarray(g, dtype=x.dtype)], [x])
    else:
        rng = np.random.default_rng(seed)
        n = len(args[0])
        it = 0
        while it < steps:
            p = rng.permutation(n)
            data = [a[p] if isinstance(a, np.ndarray) and a.ndim else a for a in args]
            for s in range(0, n, batch_size):
                if it == steps:
                    break
                batch = [
                    d[s : s + batch_size] if isinstance(d, np.ndarray) and d.ndim else d
                    for d in data
                ]
                f, g = fun(x, *batch)
                opt.apply([np.asarray(g, dtype=x.dtype)], [x])
                it += 1
    opt.finalize_variable_values([x])
    return x


@pytest.mark.parametrize(
    "kw",
    [
        dict(learning_rate=0.01),
        dict(
            learning_rate=schedules.CosineDecay(0.05, 200, warmup_target=0.1, warmup_steps=20),
            momentum=0.9,
            centered=True,
            weight_decay=0.01,
        ),
        dict(
            learning_rate=0.01,
            clipvalue=0.05,
            use_ema=True,
            ema_overwrite_frequency=7,
            gradient_accumulation_steps=3,
            loss_scale_factor=4.0,
        ),
        dict(learning_rate=0.01, global_clipnorm=0.1, _float32=True),
    ],
)
def test_matches_rmsprop_apply(kw):
    kw = dict(kw)
    p = PROBLEMS["least_squares"]
    x0 = p["x0"].astype(np.float32) if kw.pop("_float32", False) else p["x0"]
    res = nr.minimize(least_squares, x0, args=p["args"], jac=True, options=dict(kw, maxiter=300))
    ref = _rmsprop_loop(least_squares, x0, p["args"], 300, **kw)
    np.testing.assert_array_equal(res.x, ref, strict=True)
    # minibatches: the same permutations as rng.permutation per epoch
    res = nr.minimize(
        least_squares,
        x0,
        args=p["args"],
        jac=True,
        options=dict(kw, maxiter=300, batch_size=40, seed=7),
    )
    ref = _rmsprop_loop(least_squares, x0, p["args"], 300, batch_size=40, seed=7, **kw)
    np.testing.assert_array_equal(res.x, ref, strict=True)
    assert res.nepoch == -(-300 // 7)


def _same_result(a, b):
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], strict=True)
        else:
            assert a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]), k


@pytest.mark.parametrize(
    "options",
    [
        dict(learning_rate=0.01, maxiter=200, return_history=True),
        dict(learning_rate=0.01, maxiter=200, batch_size=50, seed=1, momentum=0.5, gtol=1e-9),
    ],
)
def test_scipy_dispatch_identical(options):
    p = PROBLEMS["logistic"]
    seen = {"scipy": [], "nr": []}
    r1 = sp_minimize(
        logistic,
        p["x0"],
        args=p["args"],
        method=nr.rmsprop,
        jac=True,
        callback=lambda xk: seen["scipy"].append(xk),
        options=dict(options),
    )
    r2 = nr.minimize(
        logistic,
        p["x0"],
        args=p["args"],
        jac=True,
        callback=lambda xk: seen["nr"].append(xk),
        options=dict(options),
    )
    _same_result(r1, r2)
    np.testing.assert_array_equal(np.array(seen["scipy"]), np.array(seen["nr"]))
    # tol reaches the method as options["tol"] and means gtol
    r3 = sp_minimize(
        quadratic,
        np.zeros(5),
        args=(_A_DIAG, _C),
        method=nr.rmsprop,
        jac=True,
        tol=1e-3,
        options=dict(learning_rate=0.01, maxiter=10000, tol_momentum=0.0),
    )
    r4 = nr.minimize(
        quadratic,
        np.zeros(5),
        args=(_A_DIAG, _C),
        jac=True,
        tol=1e-3,
        options=dict(learning_rate=0.01, maxiter=10000, tol_momentum=0.0),
    )
    _same_result(r3, r4)
    assert r3.status == 0 and "gtol" in r3.message


def test_scipy_passes_hess_and_ignores_it():
    r = sp_minimize(
        quadratic,
        np.zeros(5),
        args=(_A_DIAG, _C),
        method=nr.rmsprop,
        jac=True,
        hess=lambda x, *a: np.eye(5),
        options=dict(maxiter=5),
    )
    assert r.nit == 5


class _Counter:
    def __init__(self, fun):
        self.fun = fun
        self.calls = 0

    def __call__(self, x, *args):
        self.calls += 1
        return self.fun(x, *args)


def test_memoizejac_one_evaluation_per_step():
    counted = _Counter(quadratic)
    res = sp_minimize(
        counted,
        np.zeros(5),
        args=(_A_DIAG, _C),
        method=nr.rmsprop,
        jac=True,
        options=dict(maxiter=50),
    )
    assert counted.calls == 51 == res.nfev == res.njev  # 50 steps + the final evaluation
    counted = _Counter(lambda x, *a: quadratic(x, *a)[0])
    jcount = _Counter(lambda x, *a: quadratic(x, *a)[1])
    res = nr.minimize(
        counted, np.zeros(5), args=(_A_DIAG, _C), jac=jcount, options=dict(maxiter=20)
    )
    assert counted.calls == jcount.calls == 21 == res.nfev == res.njev


# ---- compiled loop ----------------------------------------------------------


@njit
def lsq_nb(x, A, b):
    r = A @ x - b
    return 0.5 * (r @ r) / b.size, A.T @ r / b.size


@njit
def lsq_nb_nan(x, A, b):
    r = A @ x - b
    f = 0.5 * (r @ r) / b.size
    if x[0] > 0.3:
        f = np.nan
    return f, A.T @ r / b.size


@pytest.mark.parametrize(
    "options",
    [
        dict(learning_rate=0.01, maxiter=300, return_history=True),
        dict(
            learning_rate=_decay(0.02, 100),
            maxiter=5000,
            batch_size=48,
            seed=5,
            momentum=0.5,
            use_ema=True,
            ftol=1e-3,
            patience=30,
            return_history=True,
        ),
        dict(
            learning_rate=0.01,
            maxiter=3000,
            centered=True,
            clipnorm=0.5,
            gradient_accumulation_steps=2,
            gtol=1e-3,
            tol_momentum=0.5,
            bounds=[(-0.2, 0.2)] * 4,
        ),
    ],
    ids=["plain", "minibatch-ftol", "bounds-gtol"],
)
def test_compiled_equals_python(options):
    options = dict(options)
    bounds = options.pop("bounds", None)
    p = PROBLEMS["least_squares"]
    rc = nr.minimize(
        lsq_nb,
        p["x0"],
        args=p["args"],
        jac=True,
        bounds=bounds,
        options=dict(options, compiled=True),
    )
    rp = nr.minimize(
        lsq_nb,
        p["x0"],
        args=p["args"],
        jac=True,
        bounds=bounds,
        options=dict(options, compiled=False),
    )
    rpy = nr.minimize(
        least_squares, p["x0"], args=p["args"], jac=True, bounds=bounds, options=dict(options)
    )
    _same_result(rc, rp)
    # through scipy's dispatcher (MemoizeJac around the @njit function): compiled too
    rs = sp_minimize(
        lsq_nb,
        p["x0"],
        args=p["args"],
        method=nr.rmsprop,
        jac=True,
        bounds=bounds,
        options=dict(options, compiled=True),
    )
    _same_result(rc, rs)
    # the NumPy twin of the objective: the same path up to BLAS rounding
    np.testing.assert_allclose(rc.x, rpy.x, rtol=1e-6, atol=1e-9)
    if "ftol" in options or "gtol" in options:
        assert rc.status == 0 and rc.nit < options["maxiter"]


def test_compiled_nonfinite_and_maxfev():
    p = PROBLEMS["least_squares"]
    o = dict(learning_rate=0.01, maxiter=1000)
    rc = nr.minimize(lsq_nb_nan, p["x0"], args=p["args"], jac=True, options=dict(o, compiled=True))
    rp = nr.minimize(lsq_nb_nan, p["x0"], args=p["args"], jac=True, options=dict(o, compiled=False))
    _same_result(rc, rp)
    assert rc.status == 2 and "Non-finite loss" in rc.message and np.isnan(rc.fun)
    assert np.all(np.isfinite(rc.x))
    rc = nr.minimize(
        lsq_nb, p["x0"], args=p["args"], jac=True, options=dict(o, maxfev=77, compiled=True)
    )
    assert rc.status == 1 and rc.nit == 77 and rc.nfev == 78


def test_compiled_is_used_and_fallbacks(monkeypatch):
    p = PROBLEMS["least_squares"]
    calls = []
    python_loop = fe_run.Run._run_python

    def spy(self, it0, nsteps, *a, **k):
        calls.append(nsteps)
        return python_loop(self, it0, nsteps, *a, **k)

    monkeypatch.setattr(fe_run.Run, "_run_python", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = nr.minimize(
            lsq_nb, p["x0"], args=p["args"], jac=True, options=dict(maxiter=300, batch_size=64)
        )
    assert r.nit == 300 and calls == [1]  # only the first (validating) step ran in Python
    calls.clear()
    nr.minimize(least_squares, p["x0"], args=p["args"], jac=True, options=dict(maxiter=300))
    assert sum(calls) == 300
    with pytest.raises(ValueError, match="compiled=True"):
        nr.minimize(
            least_squares, p["x0"], args=p["args"], jac=True, options=dict(maxiter=3, compiled=True)
        )
    with pytest.raises(ValueError, match="callback"):
        nr.minimize(
            lsq_nb,
            p["x0"],
            args=p["args"],
            jac=True,
            callback=lambda xk: None,
            options=dict(maxiter=3, compiled=True),
        )


# ---------------------------------------------------------------------------
# Status codes
# ---------------------------------------------------------------------------


def test_status_maxiter():
    r = nr.minimize(quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=dict(maxiter=10))
    assert (r.status, r.success, r.nit, r.nfev) == (0, True, 10, 11)
    r = nr.minimize(
        quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=dict(maxiter=10, gtol=1e-12)
    )
    assert (r.status, r.success, r.nit) == (1, False, 10)
    r = nr.minimize(
        quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=dict(maxiter=10, maxfev=4)
    )
    assert (r.status, r.success, r.nit, r.nfev) == (1, False, 4, 5)
    assert "maxfev" in r.message
    r = nr.minimize(quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=dict(maxiter=0))
    assert (r.status, r.nit, r.nfev) == (0, 0, 1)
    np.testing.assert_array_equal(r.x, np.zeros(5))


def test_status_gtol_and_ftol():
    o = dict(learning_rate=_decay(0.05, 200), maxiter=20000)
    r = nr.minimize(
        quadratic,
        np.zeros(5),
        args=(_A_DIAG, _C),
        jac=True,
        options=dict(o, gtol=1e-4, tol_momentum=0.0, return_history=True),
    )
    assert r.status == 0 and r.success and "gtol" in r.message
    assert r.nit < 20000 and len(r.history) == r.nit + 1
    assert np.max(np.abs(r.jac)) <= 1e-4  # full batch, raw gradient, at the returned x
    assert r.nfev == r.nit + 1  # the stopping evaluation is reused
    r = nr.minimize(
        quadratic,
        np.zeros(5),
        args=(_A_DIAG, _C),
        jac=True,
        options=dict(o, ftol=1e-6, patience=20),
    )
    assert r.status == 0 and "ftol" in r.message and r.nit < 20000


def _nan_after(k):
    calls = {"n": 0}

    def fun(x, a, c):
        calls["n"] += 1
        f, g = quadratic(x, a, c)
        if calls["n"] > k:
            return np.nan, g
        return f, g

    return fun


def test_status_nonfinite():
    r = nr.minimize(
        _nan_after(5),
        np.zeros(5),
        args=(_A_DIAG, _C),
        jac=True,
        options=dict(maxiter=100, use_ema=True),
    )
    assert r.status == 2 and not r.success and "Non-finite loss" in r.message
    assert "step 5" in r.message and r.nit == 5 and r.nfev == 6
    ref = nr.minimize(
        quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=dict(maxiter=5, use_ema=True)
    )
    # the raw iterate after 5 steps (not the EMA): where the NaN was evaluated
    raw = _rmsprop_loop(quadratic, np.zeros(5), (_A_DIAG, _C), 5)
    np.testing.assert_array_equal(r.x, raw)
    assert not np.array_equal(r.x, ref.x)

    def bad_grad(x):
        return 1.0, np.array([1.0, np.inf])

    r = nr.minimize(bad_grad, np.zeros(2), jac=True, options=dict(maxiter=10))
    assert r.status == 2 and "Non-finite gradient" in r.message and r.nit == 0
    np.testing.assert_array_equal(r.x, np.zeros(2))


def test_status_overflow_rolls_back():
    # float32 centered RMSprop: mg**2 overflows, v - mg**2 = inf - inf = NaN.
    def huge(x):
        return 1.0, np.full(2, 1e30, dtype=np.float32)

    x0 = np.array([1.0, 2.0], dtype=np.float32)
    r = nr.minimize(huge, x0, jac=True, options=dict(maxiter=10, centered=True))
    assert r.status == 2 and "non-finite parameters" in r.message
    np.testing.assert_array_equal(r.x, x0, strict=True)
    assert r.nit == 0


def test_status_callback_stop_iteration():
    def cb(xk):
        if len(seen) == 3:
            raise StopIteration
        seen.append(xk)

    seen = []
    r = nr.minimize(
        quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, callback=cb, options=dict(maxiter=100)
    )
    assert r.status == 99 and not r.success and r.nit == 4
    assert "StopIteration" in r.message


# ---------------------------------------------------------------------------
# Callbacks, bounds, constraints, seeds
# ---------------------------------------------------------------------------


def test_callback_forms():
    xs, results = [], []
    nr.minimize(
        quadratic,
        np.zeros(5),
        args=(_A_DIAG, _C),
        jac=True,
        callback=lambda xk: xs.append(xk),
        options=dict(maxiter=7),
    )

    def cb(intermediate_result):
        results.append(intermediate_result)

    r = nr.minimize(
        quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, callback=cb, options=dict(maxiter=7)
    )
    assert len(xs) == len(results) == 7
    assert all(isinstance(x, np.ndarray) and x.shape == (5,) for x in xs)
    assert all(isinstance(res, nr.OptimizeResult) for res in results)
    assert [res.nit for res in results] == list(range(1, 8))
    np.testing.assert_array_equal(results[-1].x, r.x)
    np.testing.assert_array_equal(xs[3], results[3].x)
    # fun of step k is the loss evaluated at iterate k-1
    assert results[1].fun == pytest.approx(quadratic(results[0].x, _A_DIAG, _C)[0])
    # copies: later steps don't change what the callback got
    assert not np.array_equal(xs[0], xs[-1])


@pytest.mark.parametrize(
    "bounds",
    [
        Bounds([0.0, -1.0, 0.0, 0.0, -5.0], [2.0, 1.0, 2.5, 1.0, 5.0]),
        [(0.0, 2.0), (-1.0, 1.0), (None, 2.5), (0.0, None), (None, None)],
    ],
)
def test_bounds_projection(bounds):
    inside = []

    def cb(xk):
        inside.append(xk)

    r = nr.minimize(
        quadratic,
        np.full(5, 10.0),
        args=(_A_DIAG, _C),
        jac=True,
        bounds=bounds,
        callback=cb,
        options=dict(learning_rate=_decay(0.05, 300), maxiter=3000),
    )
    expect = np.clip(_C, [0, -1, -np.inf, 0, -np.inf], [2, 1, 2.5, np.inf, np.inf])
    np.testing.assert_allclose(r.x, expect, atol=2e-3)
    lb = np.array([0, -1, -np.inf, 0, -np.inf])
    ub = np.array([2, 1, 2.5, np.inf, np.inf])
    allx = np.array(inside)
    assert np.all(allx >= lb) and np.all(allx <= ub)
    # gtol works on the projected gradient even though the gradient at x* is not 0
    r = sp_minimize(
        quadratic,
        np.full(5, 10.0),
        args=(_A_DIAG, _C),
        method=nr.rmsprop,
        jac=True,
        bounds=bounds,
        options=dict(learning_rate=_decay(0.05, 300), maxiter=20000, gtol=1e-5, tol_momentum=0.0),
    )
    assert r.status == 0 and "gtol" in r.message


def test_bounds_float32_stay_inside():
    r = nr.minimize(
        quadratic,
        np.zeros(5, np.float32),
        args=(_A_DIAG, _C),
        jac=True,
        bounds=[(0.1, 0.3)] * 5,
        options=dict(learning_rate=0.1, maxiter=50),
    )
    assert r.x.dtype == np.float32
    assert np.all(r.x.astype(np.float64) >= 0.1) and np.all(r.x.astype(np.float64) <= 0.3)


def test_constraints_error():
    with pytest.raises(ValueError, match="constraints"):
        sp_minimize(
            quadratic,
            np.zeros(5),
            args=(_A_DIAG, _C),
            method=nr.rmsprop,
            jac=True,
            constraints={"type": "eq", "fun": lambda x: x[0]},
        )
    # the empty default is fine
    sp_minimize(
        quadratic,
        np.zeros(5),
        args=(_A_DIAG, _C),
        method=nr.rmsprop,
        jac=True,
        constraints=(),
        options=dict(maxiter=2),
    )


def test_seed_reproducibility():
    p = PROBLEMS["logistic"]
    o = dict(learning_rate=0.01, maxiter=100, batch_size=16)
    r1 = nr.minimize(logistic, p["x0"], args=p["args"], jac=True, options=dict(o, seed=3))
    r2 = nr.minimize(logistic, p["x0"], args=p["args"], jac=True, options=dict(o, seed=3))
    r3 = nr.minimize(logistic, p["x0"], args=p["args"], jac=True, options=dict(o, seed=4))
    r4 = nr.minimize(
        logistic, p["x0"], args=p["args"], jac=True, options=dict(o, seed=np.random.default_rng(3))
    )
    np.testing.assert_array_equal(r1.x, r2.x)
    np.testing.assert_array_equal(r1.x, r4.x)
    assert not np.array_equal(r1.x, r3.x)
    # shuffle=False: the batches are the data in order, whatever the seed
    r5 = nr.minimize(
        logistic, p["x0"], args=p["args"], jac=True, options=dict(o, shuffle=False, seed=1)
    )
    r6 = nr.minimize(
        logistic, p["x0"], args=p["args"], jac=True, options=dict(o, shuffle=False, seed=2)
    )
    np.testing.assert_array_equal(r5.x, r6.x)


def test_batching_slices_only_data():
    seen = []

    def fun(x, X, y, lam, scale):
        seen.append((X.shape[0], y.shape[0], lam, scale.shape))
        return logistic(x, X, y, lam)

    p = PROBLEMS["logistic"]
    X, y, lam = p["args"]
    r = nr.minimize(
        fun,
        p["x0"],
        args=(X, y, lam, np.float64(2.0)),
        jac=True,
        options=dict(maxiter=20, batch_size=100),
    )
    # 256 samples: batches of 100, 100, 56; the 0-d array and the float pass whole
    assert [s[0] for s in seen[:6]] == [100, 100, 56, 100, 100, 56]
    assert all(s[0] == s[1] and s[2] == lam and s[3] == () for s in seen[:-1])
    assert seen[-1][0] == 256  # the final evaluation uses all the data
    assert r.nepoch == 7
    # data_args picks the per-sample arrays explicitly
    weights = np.ones(3)
    seen.clear()

    def fun2(x, X, y, w):
        seen.append(w.shape)
        return logistic(x, X, y, lam)

    nr.minimize(
        fun2,
        p["x0"],
        args=(X, y, weights),
        jac=True,
        options=dict(maxiter=3, batch_size=100, data_args=[0, 1]),
    )
    assert seen == [(3,)] * 4


# ---------------------------------------------------------------------------
# jac forms, x0 forms, options
# ---------------------------------------------------------------------------


def test_jac_forms():
    def f(x, a, c):
        return quadratic(x, a, c)[0]

    def g(x, a, c):
        return quadratic(x, a, c)[1]

    o = dict(maxiter=30, learning_rate=0.01)
    exact = nr.minimize(quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=o)
    rj = nr.minimize(f, np.zeros(5), args=(_A_DIAG, _C), jac=g, options=o)
    _same_result(exact, rj)
    for jac, per_step in [(None, 6), ("2-point", 6), ("3-point", 11), ("cs", 6)]:
        r = nr.minimize(f, np.zeros(5), args=(_A_DIAG, _C), jac=jac, options=o)
        np.testing.assert_allclose(r.x, exact.x, atol=1e-5)
        assert r.nfev == 31 * per_step and r.njev == 31
    # scipy turns jac=False into None: finite differences too
    r = sp_minimize(f, np.zeros(5), args=(_A_DIAG, _C), method=nr.rmsprop, options=o)
    np.testing.assert_allclose(r.x, exact.x, atol=1e-5)


def test_x0_forms():
    def f(x):
        return float(np.sum((x - 1.0) ** 2)), 2.0 * (x - 1.0)

    r = nr.minimize(f, 3, jac=True, options=dict(maxiter=2))
    assert r.x.shape == (1,) and r.x.dtype == np.float64
    r = nr.minimize(f, [1, 2, 3], jac=True, options=dict(maxiter=2))
    assert r.x.dtype == np.float64
    r = nr.minimize(f, np.zeros(3, np.float32), jac=True, options=dict(maxiter=2))
    assert r.x.dtype == np.float32  # the float64 gradient is cast
    with pytest.raises(ValueError, match="'x0' must only have one dimension"):
        nr.minimize(f, np.zeros((2, 3)), jac=True, options=dict(maxiter=2))  # as scipy's
    x0 = np.zeros(3)
    nr.minimize(f, x0, jac=True, options=dict(maxiter=5))
    np.testing.assert_array_equal(x0, np.zeros(3))  # never modified


def test_scalar_gradient_for_one_parameter():
    r = nr.minimize(
        lambda x: (float((x[0] - 2) ** 2), 2 * (x[0] - 2)),
        0.0,
        jac=True,
        options=dict(maxiter=2000, learning_rate=_decay(0.1, 200)),
    )
    assert abs(r.x[0] - 2) < 1e-3


def test_learning_rate_callable_and_history():
    lr = {"v": 0.01}
    seen = []

    def cb(xk):
        seen.append(xk)
        lr["v"] *= 0.5

    r = nr.minimize(
        quadratic,
        np.zeros(5),
        args=(_A_DIAG, _C),
        jac=True,
        callback=cb,
        options=dict(learning_rate=lambda: lr["v"], maxiter=20, return_history=True),
    )
    assert r.nit == 20 and r.history.shape == (20,)
    assert r.history[0] == pytest.approx(quadratic(np.zeros(5), _A_DIAG, _C)[0])


def test_unknown_option_warns():
    with pytest.warns(OptimizeWarning, match="Unknown solver options: bogus"):
        nr.minimize(
            quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=dict(maxiter=2, bogus=1)
        )
    with pytest.warns(OptimizeWarning, match="bogus"):
        sp_minimize(
            quadratic,
            np.zeros(5),
            args=(_A_DIAG, _C),
            method=nr.rmsprop,
            jac=True,
            options=dict(maxiter=2, bogus=1),
        )


def test_disp(capsys, monkeypatch):
    nr.minimize(
        quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=dict(maxiter=300, disp=True)
    )
    err = capsys.readouterr().err
    assert "rmsprop" in err and "Iterations: 300" in err
    monkeypatch.setitem(sys.modules, "tqdm", None)  # no tqdm: a plain line
    nr.minimize(
        quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=dict(maxiter=300, disp=True)
    )
    err = capsys.readouterr().err
    assert "rmsprop: step 300/300" in err


class _StepClock:
    """A clock for the progress display that ticks ``dt`` seconds per evaluation of the
    objective (read from ``calls[0]``, which the objective increments): the display sees
    steps that take exactly ``dt``, whatever the machine does meanwhile."""

    def __init__(self, calls, dt):
        self.calls, self.dt = calls, dt

    def __call__(self):
        return float(self.calls[0]) * self.dt


class _LineRecorder:
    """Stands in for sys.stderr: records each progress line with the clock's time."""

    def __init__(self, clock):
        self.clock, self.lines, self.text = clock, [], []

    def write(self, s):
        if s.startswith("\rrmsprop: step"):
            self.lines.append((self.clock(), s))
        self.text.append(s)
        return len(s)

    def flush(self):
        pass


def _with_step_clock(monkeypatch, calls, dt):
    """Plain progress lines (no tqdm) on a recorder, timed by a :class:`_StepClock`."""
    from numba_rmsprop.frontend.progress import Progress

    clock = _StepClock(calls, dt)
    monkeypatch.setattr(Progress, "clock", staticmethod(clock))
    monkeypatch.setitem(sys.modules, "tqdm", None)
    err = _LineRecorder(clock)
    monkeypatch.setattr(sys, "stderr", err)
    return err


def _assert_refreshes_every_segment(err, segments, dt, total):
    """After the first step, every segment lasts ``SEGMENT_SECONDS`` of the clock (or ends
    the run), and the plain line is rewritten after each, never more often than every
    ``PRINT_SECONDS`` (plus the last line)."""
    from numba_rmsprop.frontend.progress import Progress

    per = int(Progress.SEGMENT_SECONDS / dt)
    assert segments[0] == 1, segments  # no step rate known yet: one step
    assert all(s == per for s in segments[1:-1]), segments
    assert 1 <= segments[-1] <= per and sum(segments) == total, segments
    times = [t for t, _ in err.lines]
    assert len(times) == len(segments) + 1, err.lines  # each segment, and the close
    shown = times[:-2]  # the last update and the close are written whenever they come
    gaps = [b - a for a, b in zip(shown[:-1], shown[1:], strict=True)]
    assert all(g >= Progress.PRINT_SECONDS for g in gaps), times
    assert err.lines[-1][1].startswith(f"\rrmsprop: step {total}/{total}"), err.lines[-1]


def _counting_quadratic(x, a, c, calls):
    calls[0] += 1
    return quadratic(x, a, c)


def test_disp_without_tqdm_refreshes_during_a_python_loop(monkeypatch):
    calls, dt = np.zeros(1, np.int64), 2.0**-7  # a step "takes" 7.8 ms
    segments = []
    python_loop = fe_run.Run._run_python

    def spy(self, it0, nsteps, *a, **kw):
        segments.append(nsteps)
        return python_loop(self, it0, nsteps, *a, **kw)

    monkeypatch.setattr(fe_run.Run, "_run_python", spy)
    err = _with_step_clock(monkeypatch, calls, dt)
    args = (_A_DIAG, _C, calls)
    r = nr.minimize(
        _counting_quadratic, np.zeros(5), args=args, jac=True, options=dict(maxiter=300, disp=True)
    )
    assert r.nit == 300 and "rmsprop: step 300/300" in "".join(err.text)
    _assert_refreshes_every_segment(err, segments, dt, 300)


@njit
def counting_lsq(x, A, b, calls):
    calls[0] += 1
    return lsq_nb(x, A, b)


def test_disp_without_tqdm_refreshes_during_the_compiled_loop(monkeypatch):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(50, 4))
    b = A @ np.array([0.5, -1.0, 2.0, 0.25])
    x0, maxiter, dt = np.zeros(4), 3000, 2.0**-10  # a step "takes" ~1 ms: 3 s in all
    segments = []
    compiled_loop = fe_run.Run._run_compiled

    def spy(self, entry, it, nsteps, *a):
        segments.append(nsteps)
        return compiled_loop(self, entry, it, nsteps, *a)

    monkeypatch.setattr(fe_run.Run, "_run_compiled", spy)
    calls = np.zeros(1, np.int64)
    quiet = nr.minimize(
        counting_lsq, x0, args=(A, b, calls), jac=True, options=dict(maxiter=maxiter)
    )
    assert segments == [maxiter - 1]  # without disp: one compiled segment, as before
    segments.clear()
    calls[0] = 0
    err = _with_step_clock(monkeypatch, calls, dt)
    shown = nr.minimize(
        counting_lsq, x0, args=(A, b, calls), jac=True, options=dict(maxiter=maxiter, disp=True)
    )
    # The first step runs in Python (it checks what fun returns), then compiled segments.
    _assert_refreshes_every_segment(err, [1] + segments, dt, maxiter)
    _same_result(shown, quiet)  # shorter segments, the same run


LR_BLOCK_STEPS = learning_rates.LR_BLOCK


def test_public_names():
    assert nr.minimize is nro.minimize and nr.rmsprop is nro.rmsprop
    params = inspect.signature(nr.minimize).parameters
    assert list(params) == [
        "fun",
        "x0",
        "args",
        "jac",
        "bounds",
        "tol",
        "callback",
        "options",
        "hess",
        "hessp",
        "constraints",
    ]
    assert all(
        params[k].kind == inspect.Parameter.KEYWORD_ONLY for k in ("hess", "hessp", "constraints")
    )


# ---------------------------------------------------------------------------
# Bad input: each rule, with a message naming the problem
# ---------------------------------------------------------------------------


def _q(**options):
    return dict(
        fun=quadratic,
        x0=np.zeros(5),
        args=(_A_DIAG, _C),
        jac=True,
        options=dict(dict(maxiter=3), **options),
    )


@pytest.mark.parametrize(
    "change, exc, match",
    [
        (dict(fun=42), TypeError, "`fun` must be callable"),
        (dict(x0=[]), ValueError, "x0.*empty"),
        (dict(x0=np.zeros((1, 5))), ValueError, "'x0' must only have one dimension"),
        (dict(x0=np.zeros(5, complex)), TypeError, "x0.*real"),
        (dict(jac="4-point"), ValueError, "`jac`"),
        (dict(fun=lambda x, a, c: 1.0), ValueError, "pair"),
        (dict(fun=lambda x, a, c: (1.0, np.zeros(4))), ValueError, r"shape \(4,\).*\(5,\)"),
        (dict(fun=lambda x, a, c: (1.0, np.zeros((5, 1)))), ValueError, r"shape \(5, 1\)"),
        (dict(fun=lambda x, a, c: (np.ones(2), np.zeros(5))), ValueError, "scalar loss"),
        (
            dict(fun=lambda x, a, c: 1.0, jac=lambda x, a, c: np.zeros(3)),
            ValueError,
            r"shape \(3,\).*from `jac`",
        ),
        (dict(options=dict(learning_rate=-1.0)), ValueError, "learning_rate"),
        (dict(options=dict(maxiter=-1)), ValueError, "maxiter"),
        (dict(options=dict(maxiter="2")), TypeError, "maxiter"),
        (dict(options=dict(tol_momentum=1.0)), ValueError, "tol_momentum"),
        (dict(options=dict(compiled="yes")), ValueError, "compiled"),
        (dict(callback=3), TypeError, "callback"),
        (dict(bounds=[(0, 1)] * 4), ValueError, "4 .*pairs.*5"),
        (dict(bounds=[(1, 0)] * 5), ValueError, "infeasible"),
    ],
)
def test_bad_input(change, exc, match):
    kw = _q()
    kw.update(change)
    with pytest.raises(exc, match=match):
        nr.minimize(**kw)


def test_bad_batching():
    p = PROBLEMS["logistic"]
    X, y, lam = p["args"]
    kw = dict(jac=True)
    for bs, exc, match in [
        (0, ValueError, "batch_size.*>= 1"),
        (-3, ValueError, ">= 1"),
        (257, ValueError, "larger than the data.*256"),
        (2.0, TypeError, "integer"),
    ]:
        with pytest.raises(exc, match=match):
            nr.minimize(logistic, p["x0"], args=p["args"], options=dict(batch_size=bs), **kw)
    with pytest.raises(ValueError, match=r"args\[0\] has 256.*args\[1\] has 255"):
        nr.minimize(logistic, p["x0"], args=(X, y[:-1], lam), options=dict(batch_size=8), **kw)
    with pytest.raises(ValueError, match="no data arrays"):
        nr.minimize(
            quadratic, np.zeros(5), args=(list(_A_DIAG), 1.0), options=dict(batch_size=8), **kw
        )
    with pytest.raises(ValueError, match="data_args"):
        nr.minimize(
            logistic, p["x0"], args=p["args"], options=dict(batch_size=8, data_args=[2]), **kw
        )
    # mismatched lengths without batch_size are nobody's business
    nr.minimize(logistic, p["x0"], args=(X, y, lam), options=dict(maxiter=1), **kw)


@njit("Tuple((float64, float64[::1]))(float64[::1], float64[:], float64[:])")
def _quadratic_fixed_sig(x, a, c):
    d = x - c
    return 0.5 * np.sum(a * d * d), a * d


def test_compiled_fallback_warns():
    # An @njit objective with a fixed signature cannot be compiled for the
    # loop's argument types: the run warns and takes the Python loop.
    o = dict(maxiter=20, learning_rate=0.01)
    with pytest.warns(RuntimeWarning, match="Python loop"):
        r = nr.minimize(_quadratic_fixed_sig, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=o)
    ref = nr.minimize(quadratic, np.zeros(5), args=(_A_DIAG, _C), jac=True, options=o)
    np.testing.assert_allclose(r.x, ref.x, rtol=1e-12)
    with pytest.raises(ValueError, match="compiled=True.*did not compile"):
        nr.minimize(
            _quadratic_fixed_sig,
            np.zeros(5),
            args=(_A_DIAG, _C),
            jac=True,
            options=dict(o, compiled=True),
        )


# ---------------------------------------------------------------- entry cache
TYPE_KEY_VALUES = [
    None,
    True,
    1,
    -1,
    2**63,
    1.5,
    1j,
    "s",
    np.float32(1),
    np.float64(1),
    np.int32(1),
    np.zeros(3),
    np.zeros(3, np.float32),
    np.zeros((2, 3)),
    np.zeros((2, 3), order="F"),
    np.zeros((3, 4))[:, ::2],
    np.zeros(3)[::2],
    np.frombuffer(np.zeros(3).tobytes()),  # read-only
    (np.zeros(3), 1.0),
    (np.zeros(3), (1, None)),
    (),
]


def test_type_key_equal_exactly_when_numba_types_equal():
    """The entry cache's key stands for numba.typeof: same key -> same type, and
    values of different types never share a key."""
    import numba

    from numba_rmsprop.engine.entries import type_key

    for a in TYPE_KEY_VALUES:
        for b in TYPE_KEY_VALUES:
            ka, kb = type_key(a), type_key(b)
            assert ka is not None and kb is not None
            if ka == kb:
                assert numba.typeof(a) == numba.typeof(b), (a, b)
            if numba.typeof(a) != numba.typeof(b):
                assert ka != kb, (a, b)
    assert type_key([1, 2]) is None and type_key((np.zeros(2), [1])) is None


_NRT_BALANCE = """
import gc
import numpy as np
from numba import njit
from numba.core.runtime import rtsys
import numba_rmsprop as nr

@njit
def exact(x, d):
    r = x - d
    return 0.5 * np.sum(r * r), r

@njit
def converted(x, d):  # a float32 gradient for a float64 x: converted in the loop
    r = x - d
    return 0.5 * np.sum(r * r), r.astype(np.float32)

@njit
def array_loss(x, d):  # a one-element array as the loss
    r = x - d
    return np.array([0.5 * np.sum(r * r)]), r

@njit
def blows_up(x, d):  # a non-finite gradient stops the loop mid-segment
    r = x - d
    g = r.copy()
    if x[0] > 0.5:
        g[0] = np.nan
    return 0.5 * np.sum(r * r), g

@njit
def wrong_size(x, d):
    return 0.0, np.zeros(x.size + 1)

@njit
def rows(x, A, y):  # minibatches: in order (views) or shuffled (gathered)
    r = A @ x - y
    return 0.5 * np.sum(r * r), A.T @ r

d = np.linspace(1, 2, 5)
A = np.random.default_rng(0).standard_normal((40, 5))
y = A @ d
cases = {
    "exact": (exact, (d,), {}),
    "converted": (converted, (d,), {}),
    "array loss": (array_loss, (d,), {}),
    "stop": (blows_up, (d,), {}),
    "in-order minibatches": (rows, (A, y), dict(batch_size=8, shuffle=False)),
    "shuffled minibatches": (rows, (A, y), dict(batch_size=8, seed=1)),
}

def held():  # NRT memory blocks alive
    s = rtsys.get_allocation_stats()
    return s.mi_alloc - s.mi_free, s.alloc

def run(fun, args, opts, steps, many=False):
    o = dict(opts, maxiter=steps, learning_rate=1e-2, compiled=True)
    if many:
        return nr.minimize_many(fun, np.zeros((3, 5)), args=args, options=o)
    return nr.minimize(fun, np.zeros(5), args=args, jac=True, options=o)

for many in (False, True):
    for name, (fun, args, opts) in cases.items():
        run(fun, args, opts, 3, many)  # compiled, entries cached
        gc.collect()
        before, allocs = held()
        res = run(fun, args, opts, 300, many)
        del res
        gc.collect()
        after, allocs_after = held()
        assert allocs_after - allocs >= 30, (name, many)  # the objective's arrays are seen
        assert after == before, (name, many, after - before)
    gc.collect()
    before = held()[0]
    try:
        run(wrong_size, (d,), {}, 300, many)
        raise AssertionError("no error")
    except ValueError:
        pass
    gc.collect()
    assert held()[0] == before, ("wrong size", many)
"""


def test_compiled_loop_drops_every_reference():
    """The compiled loops (compiled without reference counting) release each
    array the objective returns, exactly once: the memory Numba holds is the
    same before and after a run of 300 steps, on every way through a step
    (a converted gradient, an array loss, a stop, minibatches in order and
    gathered, a gradient of the wrong size), for minimize and minimize_many."""
    from helpers import run_fresh_python

    run_fresh_python(_NRT_BALANCE, NUMBA_NRT_STATS="1")


_INLINED_STEP = """
import sys
import numpy as np
from numba import njit
import numba_rmsprop as nr
from numba_rmsprop.frontend import segment

@njit
def quad(x, d):
    r = x - d
    return 0.5 * np.sum(r * r), r

d = np.linspace(1, 2, 5)
for momentum, compiled in RUNS:
    opts = dict(maxiter=3, momentum=momentum, compiled=compiled)
    nr.minimize(quad, np.zeros(5), args=(d,), jac=True, options=opts)
for sig in segment.segment_loop.signatures:
    calls = [line for line in segment.segment_loop.inspect_llvm(sig).splitlines()
             if "call " in line and "step_arrays" in line]
    assert not calls, calls
"""


@pytest.mark.slow  # compiles from scratch in two processes by design; .ci/run runs it
def test_compiled_loop_inlines_its_step(tmp_path):
    """LLVM inlines the step into the compiled loop (a call cost a third of a
    step), whether the step is loaded from the disk cache (compiled by an
    earlier process for the Python loop) or compiled in the same process."""
    from helpers import run_fresh_python

    cache = str(tmp_path / "cache")
    for runs in ([(0.9, False)], [(0.9, True), (0.0, True)]):
        run_fresh_python(f"RUNS = {runs!r}\n" + _INLINED_STEP, NUMBA_CACHE_DIR=cache)


def test_compiled_loop_entry_reused_for_the_same_types(monkeypatch):
    """A second minimize with arguments of the same types reuses the compiled
    loop's entry; other types (read-only data, float32) compile their own."""
    from helpers import quad

    from numba_rmsprop.frontend import segment

    compiled = []
    real = segment.segment_loop.compile
    at_args = list(inspect.signature(segment.segment_loop.py_func).parameters).index("args")

    def counting(sig):
        compiled.append(sig)
        return real(sig)

    monkeypatch.setattr(segment.segment_loop, "compile", counting)
    monkeypatch.setattr(compiled_loop, "LOOP_ENTRIES", type(compiled_loop.LOOP_ENTRIES)())
    c, w = np.linspace(-1, 1, 4), np.ones(4)
    opts = dict(maxiter=5, learning_rate=1e-2)
    r1 = nr.minimize(quad, np.zeros(4), args=(c, w), jac=True, options=opts)
    r2 = nr.minimize(quad, np.ones(4), args=(c + 1, w), jac=True, options=opts)
    assert len(compiled) == 1
    ro = np.frombuffer(c.tobytes())
    r3 = nr.minimize(quad, np.zeros(4), args=(ro, w), jac=True, options=opts)
    assert len(compiled) == 2 and not compiled[1][at_args][0].mutable
    r4 = nr.minimize(quad, np.zeros(4, np.float32), args=(c, w), jac=True, options=opts)
    assert len(compiled) == 3
    np.testing.assert_array_equal(r1.x, r3.x)
    assert r4.x.dtype == np.float32 and np.all(r2.x > r1.x)
