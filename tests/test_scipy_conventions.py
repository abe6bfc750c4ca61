"""The front end behaves as scipy users expect (issue #9).

Each test names the scipy convention it pins; see also ``test_optimize.py``.
"""

import inspect
import math
import sys
import textwrap

import numpy as np
import pytest
from helpers import CHILD_OBJECTIVES, run_fresh_python
from numba import njit
from scipy.optimize import Bounds
from scipy.optimize import minimize as sp_minimize

import numba_rmsprop as nr

D = np.array([1.0, 2.0, 5.0, 10.0, 0.5])
C = np.array([1.0, -2.0, 3.0, 0.5, -1.0])


def quadratic(x, d, c):
    r = x - c
    return 0.5 * np.sum(d * r * r), d * r


quadratic_nb = njit(quadratic)


def loss_only(x, d, c):
    r = x - c
    return 0.5 * np.sum(d * r * r)


def grad_only(x, d, c):
    return d * (x - c)


def _same(a, b, skip=()):
    assert set(a) == set(b)
    for k in a:
        if k in skip:
            continue
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], strict=True)
        else:
            assert a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]), k


OPTIONS = dict(learning_rate=0.05, maxiter=40)


# ---------------------------------------------------------------- 1. copies of x
def _vandal(fun):
    """``fun`` that keeps every x it is given and then scribbles over it."""
    seen, values = [], []

    def wrapped(x, *args):
        seen.append(x)
        values.append(x.copy())
        out = fun(x.copy(), *args)
        x -= 1.0
        values[-1] -= 1.0  # what x holds now
        return out

    wrapped.seen, wrapped.values = seen, values
    return wrapped


@pytest.mark.parametrize("form", ["pair", "callable", "2-point"])
def test_fun_and_jac_get_a_fresh_copy_of_x(form):
    """scipy hands fun a copy (gh-13740): an objective that modifies or keeps
    its argument neither corrupts the run nor sees its stored copies change."""
    if form == "pair":
        fun, kw, ref_kw = _vandal(quadratic), dict(jac=True), dict(jac=True)
        ref_fun = quadratic
    elif form == "callable":
        fun, kw = _vandal(loss_only), dict(jac=_vandal(grad_only))
        ref_fun, ref_kw = loss_only, dict(jac=grad_only)
    else:
        fun, kw, ref_fun, ref_kw = _vandal(loss_only), dict(jac="2-point"), loss_only, {}
    xs = []
    r = nr.minimize(
        fun, np.zeros(5), args=(D, C), callback=lambda xk: xs.append(xk), options=OPTIONS, **kw
    )
    ref = nr.minimize(ref_fun, np.zeros(5), args=(D, C), options=OPTIONS, **ref_kw)
    _same(r, ref)
    seen = fun.seen
    assert len({id(x) for x in seen}) == len(seen)  # a fresh array per evaluation
    # nothing changed a stored argument after the call
    for x, value in zip(seen, fun.values, strict=False):
        np.testing.assert_array_equal(x, value)
    if form != "2-point":
        np.testing.assert_array_equal(seen[0], np.zeros(5) - 1.0)
        for k, xk in enumerate(xs):
            np.testing.assert_array_equal(seen[k + 1], xk - 1.0)
    if form == "callable":
        jseen = kw["jac"].seen
        assert not any(any(j is s for s in seen) for j in jseen)  # fun and jac: own copies
        for k, xk in enumerate(xs):
            np.testing.assert_array_equal(jseen[k + 1], xk - 1.0)


def test_callback_gets_copies():
    xs, results = [], []

    def cb(xk):
        xs.append(xk)
        xk[:] = 1e6

    r = nr.minimize(quadratic, np.zeros(5), args=(D, C), jac=True, callback=cb, options=OPTIONS)
    ref = nr.minimize(quadratic, np.zeros(5), args=(D, C), jac=True, options=OPTIONS)
    _same(r, ref)

    def cb2(intermediate_result):
        results.append(intermediate_result)
        intermediate_result.x[:] = 1e6
        intermediate_result.jac[:] = 1e6

    r = nr.minimize(quadratic, np.zeros(5), args=(D, C), jac=True, callback=cb2, options=OPTIONS)
    _same(r, ref)


@njit
def lsq_nb(x, A, b):
    r = A @ x - b
    return 0.5 * (r @ r) / b.size, A.T @ r / b.size


@njit
def lsq_nb_vandal(x, A, b):
    r = A @ x - b
    f, g = 0.5 * (r @ r) / b.size, A.T @ r / b.size
    x[:] = 1e3  # a compiled objective can scribble over its argument too
    return f, g


@njit
def lsq_nb_grad_is_x(x, A, b):
    # the gradient of 0.5 |x|^2 is x itself: returned without a copy
    return 0.5 * (x @ x), x


@pytest.mark.parametrize(
    "options",
    [
        dict(learning_rate=0.01, maxiter=300),
        dict(learning_rate=0.01, maxiter=300, batch_size=48, seed=5, momentum=0.5, use_ema=True),
    ],
    ids=["full", "minibatch"],
)
def test_compiled_loop_protects_x_too(options):
    """The compiled loop hands the objective a copy as well, so it stays bit-identical
    with the Python loop for an objective that modifies its argument."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(256, 4))
    b = A @ np.array([0.5, -1.0, 2.0, 0.25])
    ref = nr.minimize(lsq_nb, np.zeros(4), args=(A, b), jac=True, options=options)
    rc = nr.minimize(
        lsq_nb_vandal, np.zeros(4), args=(A, b), jac=True, options=dict(options, compiled=True)
    )
    rp = nr.minimize(
        lsq_nb_vandal, np.zeros(4), args=(A, b), jac=True, options=dict(options, compiled=False)
    )
    _same(rc, rp)
    _same(rc, ref)
    x0 = np.full(4, 3.0)
    rc = nr.minimize(
        lsq_nb_grad_is_x, x0, args=(A, b), jac=True, options=dict(options, compiled=True)
    )
    rp = nr.minimize(
        lsq_nb_grad_is_x, x0, args=(A, b), jac=True, options=dict(options, compiled=False)
    )
    _same(rc, rp)


# ---------------------------------------------------------------- 2. fixed variables
@pytest.mark.parametrize("jac", [None, "2-point", "3-point"])
def test_fixed_variables_with_finite_differences(jac):
    """lb == ub with finite differences: L-BFGS-B solves it (scipy gh-12502), and
    every evaluation stays inside the bounds (approx_derivative(bounds=...))."""
    lb = np.array([-np.inf, 0.5, 0.0, -1.0, -5.0])
    ub = np.array([np.inf, 0.5, 2.5, 1.0, 5.0])
    seen = []

    def f(x, d, c):
        seen.append(x.copy())
        return loss_only(x, d, c)

    o = dict(learning_rate=nr.schedules.ExponentialDecay(0.05, 300, 0.5), maxiter=3000)
    r = nr.minimize(f, np.zeros(5), args=(D, C), jac=jac, bounds=Bounds(lb, ub), options=o)
    assert r.status == 0 and r.success, r.message
    expect = sp_minimize(
        loss_only, np.zeros(5), args=(D, C), method="L-BFGS-B", bounds=Bounds(lb, ub)
    ).x
    np.testing.assert_allclose(r.x, expect, atol=2e-3)
    assert r.x[1] == 0.5
    allx = np.array(seen)
    assert np.all(allx >= lb) and np.all(allx <= ub)
    # fixed variables cost no evaluations: 4 free ones
    per_step = 9 if jac == "3-point" else 5
    assert r.nfev == (r.nit + 1) * per_step == len(seen)
    assert r.jac[1] == 0.0  # not estimated: the projected gradient of a fixed variable
    # through scipy (which does not remove fixed variables for a callable method)
    rs = sp_minimize(
        loss_only,
        np.zeros(5),
        args=(D, C),
        method=nr.rmsprop,
        bounds=[(a, b) for a, b in zip(lb, ub, strict=False)],
        options=o,
    )
    assert rs.status == 0 and rs.x[1] == 0.5


def test_all_variables_fixed():
    r = nr.minimize(
        loss_only,
        np.zeros(2),
        args=(D[:2], C[:2]),
        bounds=[(1.0, 1.0)] * 2,
        options=dict(maxiter=5),
    )
    assert r.status == 0 and r.nfev == 6 and np.array_equal(r.x, [1.0, 1.0])


# ---------------------------------------------------------------- 3. one-element losses
@pytest.mark.parametrize(
    "wrap",
    [
        lambda f: np.array([f]),
        lambda f: np.array(f),
        lambda f: np.array([[f]]),
        lambda f: np.float32(f),
        lambda f: int(round(f * 1000)),
    ],
    ids=["shape (1,)", "0-d", "shape (1, 1)", "float32", "int"],
)
@pytest.mark.parametrize("form", ["pair", "callable", "2-point"])
def test_one_element_loss_is_accepted(wrap, form):
    """Every scipy method takes a loss returned as a one-element array (``.item()``)."""

    def pair(x, d, c):
        f, g = quadratic(x, d, c)
        return wrap(f), g

    def lone(x, d, c):
        return wrap(loss_only(x, d, c))

    fun, kw = {
        "pair": (pair, dict(jac=True)),
        "callable": (lone, dict(jac=grad_only)),
        "2-point": (lone, dict(jac="2-point")),
    }[form]

    def plain(f):
        return float(np.asarray(wrap(f)).item())

    ref_fun = {
        "pair": lambda x, d, c: (plain(quadratic(x, d, c)[0]), quadratic(x, d, c)[1]),
        "callable": lambda x, d, c: plain(loss_only(x, d, c)),
        "2-point": lambda x, d, c: plain(loss_only(x, d, c)),
    }[form]
    o = dict(OPTIONS, return_history=True)
    r = nr.minimize(fun, np.zeros(5), args=(D, C), options=o, **kw)
    ref = nr.minimize(ref_fun, np.zeros(5), args=(D, C), options=o, **kw)
    _same(r, ref)
    assert isinstance(r.fun, float)
    rs = sp_minimize(fun, np.zeros(5), args=(D, C), method=nr.rmsprop, options=o, **kw)
    _same(r, rs)


@pytest.mark.parametrize("loss", [np.zeros(2), np.zeros((1, 2)), np.zeros(0)])
def test_other_loss_shapes_are_an_error(loss):
    with pytest.raises(ValueError, match="scalar.*one element"):
        nr.minimize(lambda x: (loss, np.zeros(2)), np.zeros(2), jac=True)
    with pytest.raises(ValueError, match="scalar.*one element"):
        nr.minimize(lambda x: loss, np.zeros(2))


def test_loss_that_changes_shape_later_is_an_error():
    calls = []

    def fun(x):
        calls.append(1)
        return (1.0 if len(calls) < 3 else np.ones(3)), np.ones(2)

    with pytest.raises(ValueError, match="scalar.*one element"):
        nr.minimize(fun, np.zeros(2), jac=True, options=dict(maxiter=5))


@njit
def lsq_nb_array_loss(x, A, b):
    r = A @ x - b
    return np.array([0.5 * (r @ r) / b.size]), A.T @ r / b.size


def test_one_element_loss_in_the_compiled_loop():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(64, 3))
    b = A @ np.array([0.5, -1.0, 2.0])
    o = dict(learning_rate=0.01, maxiter=100, batch_size=16, seed=1, return_history=True)
    rc = nr.minimize(
        lsq_nb_array_loss, np.zeros(3), args=(A, b), jac=True, options=dict(o, compiled=True)
    )
    rp = nr.minimize(
        lsq_nb_array_loss, np.zeros(3), args=(A, b), jac=True, options=dict(o, compiled=False)
    )
    ref = nr.minimize(lsq_nb, np.zeros(3), args=(A, b), jac=True, options=o)
    _same(rc, rp)
    _same(rc, ref)


@njit
def lsq_nb_loss_grows(x, A, b):
    r = A @ x - b
    n = 1 if x[0] == 0.0 else 2  # one element at x0 only
    return np.full(n, 0.5 * (r @ r) / b.size), A.T @ r / b.size


def test_compiled_loop_rejects_a_loss_that_changes_size():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(64, 3))
    b = A @ np.array([0.5, -1.0, 2.0])
    with pytest.raises(ValueError, match="scalar.*one element.*step 1"):
        nr.minimize(
            lsq_nb_loss_grows,
            np.zeros(3),
            args=(A, b),
            jac=True,
            options=dict(compiled=True, maxiter=10),
        )


# ---------------------------------------------------------------- 4. maxiter, maxfev
@pytest.mark.parametrize(
    "maxiter, nit", [(None, 1000), (25.0, 25), (np.float64(7), 7), (np.int32(9), 9)]
)
def test_maxiter_values_scipy_accepts(maxiter, nit):
    r = nr.minimize(
        quadratic,
        np.zeros(5),
        args=(D, C),
        jac=True,
        options=dict(maxiter=maxiter, learning_rate=1e-4),
    )
    assert r.nit == nit and r.status == 0
    r = sp_minimize(
        quadratic,
        np.zeros(5),
        args=(D, C),
        jac=True,
        method=nr.rmsprop,
        options=dict(maxiter=maxiter, learning_rate=1e-4),
    )
    assert r.nit == nit


def test_maxiter_inf_with_another_stopping_rule():
    r = nr.minimize(
        quadratic,
        np.zeros(5),
        args=(D, C),
        jac=True,
        options=dict(
            maxiter=np.inf,
            gtol=1e-3,
            tol_momentum=0.0,
            learning_rate=nr.schedules.ExponentialDecay(0.05, 300, 0.5),
        ),
    )
    assert r.status == 0 and "gtol" in r.message and r.nit > 0
    r = nr.minimize(
        quadratic, np.zeros(5), args=(D, C), jac=True, options=dict(maxiter=math.inf, maxfev=50.0)
    )
    assert r.status == 1 and r.nit == 50 and "maxfev=50" in r.message
    r = nr.minimize(
        quadratic, np.zeros(5), args=(D, C), jac=True, options=dict(maxiter=100, maxfev=np.inf)
    )
    assert r.status == 0 and r.nit == 100
    r = nr.minimize(
        quadratic, np.zeros(5), args=(D, C), jac=True, options=dict(maxiter=30, maxfev=None)
    )
    assert r.nit == 30

    def stop_at_12(intermediate_result):
        if intermediate_result.nit == 12:
            raise StopIteration

    r = nr.minimize(
        quadratic,
        np.zeros(5),
        args=(D, C),
        jac=True,
        callback=stop_at_12,
        options=dict(maxiter=np.inf, disp=False),
    )
    assert r.status == 99 and r.nit == 12


@pytest.mark.parametrize(
    "options, exc, match",
    [
        (dict(maxiter=np.inf), ValueError, "maxiter=inf.*stopping rule"),
        (dict(maxiter=-1.0), ValueError, "maxiter"),
        (dict(maxiter=np.nan), ValueError, "maxiter"),
        (dict(maxiter="10"), TypeError, "maxiter"),
        (dict(maxiter=True), TypeError, "maxiter"),
        (dict(maxfev=0), ValueError, "maxfev"),
        (dict(maxfev=-np.inf), ValueError, "maxfev"),
    ],
)
def test_maxiter_maxfev_bad_values(options, exc, match):
    with pytest.raises(exc, match=match):
        nr.minimize(quadratic, np.zeros(5), args=(D, C), jac=True, options=options)


def test_fractional_limits_count_as_scipys_loops_do():
    """scipy's methods loop ``while k < maxiter``: a fractional limit allows ``ceil`` of it
    (accepted since scipy gh-23430); ``maxfev`` likewise."""
    r = nr.minimize(quadratic, np.zeros(5), args=(D, C), jac=True, options=dict(maxiter=10.1))
    ref = nr.minimize(quadratic, np.zeros(5), args=(D, C), jac=True, options=dict(maxiter=11))
    assert r.nit == 11 and np.array_equal(r.x, ref.x) and r.status == 0
    r = nr.minimize(quadratic, np.zeros(5), args=(D, C), jac=True, options=dict(maxfev=4.5))
    assert r.nfev == 6 and r.nit == 5  # 5 evaluations in the loop, and the final one
    sp = sp_minimize(
        quadratic, np.zeros(5), args=(D, C), method="BFGS", jac=True, options=dict(maxiter=2.5)
    )
    assert sp.nit == 3  # what scipy itself does


@pytest.mark.parametrize("x0", [[0.0, np.nan, 1, 2, 3], [0.0, np.inf, 1, 2, -np.inf]])
@pytest.mark.parametrize("compiled", [False, True])
def test_a_non_finite_x0_gives_a_failed_result(x0, compiled):
    """As every scipy method: not an exception, a failed result (status 2) naming the
    entry; ``fun`` is never called with it."""
    calls = []

    def fun(x, d, c):
        calls.append(x)
        return quadratic(x, d, c)

    f = quadratic_nb if compiled else fun
    r = nr.minimize(f, x0, args=(D, C), jac=True, options=dict(maxiter=5))
    assert (r.status, r.success, r.nit, r.nfev, r.njev) == (2, False, 0, 0, 0)
    assert (
        r.message.startswith("x0 is not finite (x0[1] = ") and "nothing was evaluated" in r.message
    )
    assert ("and 1 more" in r.message) == (len(x0) - np.isfinite(x0).sum() == 2)
    assert np.isnan(r.fun) and r.jac.shape == (5,) and np.isnan(r.jac).all()
    np.testing.assert_array_equal(r.x, np.asarray(x0, float))
    assert not calls
    sp = sp_minimize(quadratic, x0, args=(D, C), method="BFGS", jac=True)
    assert not sp.success  # scipy's own convention


# ---------------------------------------------------------------- 5. StopIteration, keywords
def test_stop_iteration_message_is_scipys():
    def cb(xk):
        raise StopIteration

    r = nr.minimize(quadratic, np.zeros(5), args=(D, C), jac=True, callback=cb)
    assert r.message == "`callback` raised `StopIteration`."
    assert (r.status, r.success, r.nit) == (99, False, 1)
    # scipy's own methods use that exact string
    b = sp_minimize(loss_only, np.zeros(5), args=(D, C), method="BFGS", callback=cb)
    assert r.message == b.message


def test_minimize_takes_scipys_keywords():
    r = nr.minimize(
        quadratic,
        np.zeros(5),
        args=(D, C),
        jac=True,
        hess=lambda x, *a: np.eye(5),
        hessp=None,
        constraints=(),
        options=dict(maxiter=3),
    )
    assert r.nit == 3
    r = nr.minimize(
        quadratic, np.zeros(5), args=(D, C), jac=True, constraints=[], options=dict(maxiter=3)
    )
    with pytest.raises(ValueError, match="constraints"):
        nr.minimize(
            quadratic,
            np.zeros(5),
            args=(D, C),
            jac=True,
            constraints={"type": "eq", "fun": lambda x: x[0]},
        )
    params = inspect.signature(nr.minimize).parameters
    sp_params = inspect.signature(sp_minimize).parameters
    assert set(params) == set(sp_params) - {"method"}


# ---------------------------------------------------------------- 6. intermediate_result
def test_intermediate_result_says_where_fun_was_evaluated():
    got = []

    def cb(intermediate_result):
        got.append(intermediate_result)

    rng = np.random.default_rng(1)
    X = rng.normal(size=(10, 5))
    y = X @ C

    def lsq(x, X, y):
        r = X @ x - y
        return 0.5 * (r @ r) / y.size, X.T @ r / y.size

    r = nr.minimize(
        lsq,
        np.zeros(5),
        args=(X, y),
        jac=True,
        callback=cb,
        options=dict(maxiter=7, batch_size=4, seed=0, shuffle=False),
    )
    assert [g.nit for g in got] == list(range(1, 8))
    assert [g.epoch for g in got] == [1, 1, 1, 2, 2, 2, 3]
    assert [g.batch for g in got] == [0, 1, 2, 0, 1, 2, 0]
    assert [g.batch_size for g in got] == [4, 4, 2, 4, 4, 2, 4]
    assert [g.nfev for g in got] == list(range(1, 8))
    np.testing.assert_array_equal(got[0].x_eval, np.zeros(5))
    for prev, cur in zip(got, got[1:], strict=False):
        np.testing.assert_array_equal(cur.x_eval, prev.x)
        # fun is the minibatch loss at x_eval, not fun(x)
        rows = slice(4 * cur.batch, 4 * cur.batch + cur.batch_size)
        f, g = lsq(cur.x_eval, X[rows], y[rows])
        assert cur.fun == f
        np.testing.assert_array_equal(cur.jac, g)
    np.testing.assert_array_equal(got[-1].x, r.x)
    # without batching: the full objective at x_eval, and no batch fields
    got.clear()
    nr.minimize(lsq, np.zeros(5), args=(X, y), jac=True, callback=cb, options=dict(maxiter=3))
    assert all(g.batch is None and g.epoch is None and g.batch_size is None for g in got)
    assert got[1].fun == lsq(got[1].x_eval, X, y)[0]


def test_intermediate_result_is_documented_in_the_guide():
    import os

    readme = open(
        os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "scipy.md"
        ),
        encoding="utf-8",
    ).read()
    assert "x_eval" in readme and "minibatch loss at the previous iterate" in readme


# ---------------------------------------------------------------- 7. callback signatures
class _UnresolvableSignature:
    """A callable whose signature cannot be read: what ``inspect.signature`` does on
    Python >= 3.14 for annotations naming types imported only under TYPE_CHECKING."""

    def __init__(self):
        self.results = []

    @property
    def __signature__(self):
        raise NameError("name 'OptimizeResult' is not defined")

    def __call__(self, intermediate_result):
        self.results.append(intermediate_result)


def test_callback_signature_with_unresolvable_annotations():
    cb = _UnresolvableSignature()
    with pytest.raises(NameError):
        inspect.signature(cb)
    nr.minimize(quadratic, np.zeros(5), args=(D, C), jac=True, callback=cb, options=dict(maxiter=3))
    assert [r.nit for r in cb.results] == [1, 2, 3]
    assert all(isinstance(r, nr.OptimizeResult) for r in cb.results)


def test_callback_with_type_checking_only_annotation():
    """The real case: on Python >= 3.14 annotations are evaluated lazily, and reading
    them with the default format raises NameError (scipy reads FORWARDREF)."""
    if sys.version_info < (3, 14):
        pytest.skip(
            "before Python 3.14 such an annotation fails at definition time "
            "(the class above simulates the 3.14 failure)"
        )
    ns = {}
    exec(
        textwrap.dedent("""
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from scipy.optimize import OptimizeResult
        seen = []
        def callback(intermediate_result: OptimizeResult) -> None:
            seen.append(intermediate_result.nit)
    """),
        ns,
    )
    nr.minimize(
        quadratic,
        np.zeros(5),
        args=(D, C),
        jac=True,
        callback=ns["callback"],
        options=dict(maxiter=3),
    )
    assert ns["seen"] == [1, 2, 3]


# ---------------------------------------------------------------- 8. the result
# Every entry point returns nr.OptimizeResult: scipy's fields, attribute access and
# printout, without importing scipy.optimize (0.3-0.6 s of a first call).
def _results():
    one = nr.minimize(quadratic, np.zeros(5), args=(D, C), jac=True, options=dict(maxiter=3))
    many = nr.minimize_many(
        quadratic, np.zeros((14, 5)), args=(D, C), jac=True, options=dict(maxiter=3)
    )
    odd = nr.OptimizeResult(
        x=np.array([np.inf, -np.inf, np.nan, 1e300, -2.5]),
        nested=nr.OptimizeResult(message="inner", fun=1.0, slack=3),
        slack=np.zeros(3),  # scipy leaves out its redundant fields
        Status=1,  # ordered case-insensitively
        long_name_first=[1, 2],
        con=None,
    )
    return {"minimize": one, "minimize_many": many, "odd": odd, "empty": nr.OptimizeResult()}


@pytest.mark.parametrize("name", ["minimize", "minimize_many", "odd", "empty"])
def test_result_prints_as_scipys(name):
    from scipy.optimize import OptimizeResult

    res = _results()[name]
    assert type(res) is nr.OptimizeResult
    assert repr(res) == repr(OptimizeResult(res))
    assert str(res) == str(OptimizeResult(res))


def test_result_is_a_dict_with_attributes():
    import copy
    import pickle

    res = _results()["minimize"]
    assert isinstance(res, dict) and res.x is res["x"] and res.nit == 3
    assert sorted(dir(res)) == sorted(res.keys())
    with pytest.raises(AttributeError, match="hess_inv"):
        _ = res.hess_inv
    assert not hasattr(res, "hess_inv")
    res.extra = 1
    assert res["extra"] == 1
    del res.extra
    assert "extra" not in res
    for twin in (pickle.loads(pickle.dumps(res)), copy.deepcopy(res), copy.copy(res)):
        assert type(twin) is nr.OptimizeResult and twin.keys() == res.keys()
        np.testing.assert_array_equal(twin.x, res.x)
    # scipy's dispatcher passes a callable method's result through (and may set fields)
    through = sp_minimize(quadratic, np.zeros(5), args=(D, C), jac=True, method=nr.rmsprop,
                          options=dict(maxiter=3))  # fmt: skip
    assert type(through) is nr.OptimizeResult and through.nit == 3


_NO_SCIPY_OPTIMIZE = (
    "import numpy as np\n"
    + CHILD_OBJECTIVES
    + r"""
import sys, warnings
from numba import njit
import numba_rmsprop as nr

d = np.linspace(1.0, 2.0, 4)
o = dict(maxiter=5)
nr.minimize(quad, np.ones(4), args=(d,), jac=True, options=o)
nr.minimize(njit(lambda x, d: (0.5 * (d * x) @ x, d * x)), np.ones(4), args=(d,), jac=True,
            options=dict(o, compiled=True))
nr.minimize(quad, np.ones(4), args=(d,), jac=True, bounds=[(0.0, 1.0)] * 4, options=o)
nr.rmsprop(quad, np.ones(4), (d,), jac=True, **o)
nr.minimize_many(quad, np.ones((3, 4)), args=(d,), jac=True, options=o)
nr.minimize_many(quad_columns, np.ones((3, 4)), args=(d,), jac=True, options=o, vectorized=True)
assert "scipy.optimize" not in sys.modules, "imported scipy.optimize"
# an unknown option warns with scipy's own class, imported for the warning
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    nr.minimize(quad, np.ones(4), args=(d,), jac=True, options=dict(o, colour=1))
from scipy.optimize import OptimizeWarning
assert [w.category for w in caught] == [OptimizeWarning], caught
"""
)


def test_entry_points_do_not_import_scipy_optimize():
    run_fresh_python(_NO_SCIPY_OPTIMIZE)
