"""``minimize_many``: run ``i`` is, bit for bit, ``nr.minimize`` on run ``i``'s own slice.

Every case runs the batch and then each run alone through ``nr.minimize``
with its own options and arguments, and compares every field exactly
(``x``, ``fun``, ``jac``, ``nit``, ``nfev``, ``njev``, ``status``, ``message``,
``nepoch``, ``history``). The compiled path (``@njit`` objectives), the
vectorized path (one NumPy call for all active runs) and the per-run
fallback are each checked, on per-run options, minibatches with one seed or
one per run, early stops (tolerances, non-finite losses, limits), EMA,
accumulation, bounds and the framework variants.
"""

import numpy as np
import pytest
from helpers import quad, quad_np, quad_vec
from numba import njit

import numba_rmsprop as nr

N = 4


@njit
def linreg(x, A, b):
    r = A @ x - b
    return 0.5 * np.sum(r * r) / b.size, A.T @ r / b.size


def linreg_np(x, A, b):
    r = A @ x - b
    return 0.5 * np.sum(r * r) / b.size, A.T @ r / b.size


def linreg_vec(X, A, b):
    out = [linreg_np(x, A, b) for x in X.T]
    return np.array([f for f, _ in out]), np.stack([g for _, g in out], axis=1)


@njit
def blows_up(x, c, w):
    """Diverges for runs whose target is far away (a NaN loss stops only them)."""
    d = x - c
    f = 0.5 * np.sum(w * d * d)
    if f > 50.0:
        f = np.nan
    return f, w * d


FIELDS = ("x", "fun", "jac", "nit", "nfev", "njev", "status", "success")


def run_options(options, i):
    return {k: (v[i] if isinstance(v, (list, tuple)) else v) for k, v in options.items()}


def assert_runs_match(res, fun, X0, args, options, run_args=(), bounds=None):
    k = X0.shape[0]
    assert res.x.shape == X0.shape and res.fun.shape == (k,)
    for name in ("nit", "nfev", "njev", "status"):
        assert res[name].shape == (k,) and res[name].dtype.kind == "i", name
    assert len(res.message) == k
    for i in range(k):
        a = tuple(arg[i] if j in run_args else arg for j, arg in enumerate(args))
        one = nr.minimize(
            fun, X0[i], args=a, jac=True, bounds=bounds, options=run_options(options, i)
        )
        for name in FIELDS:
            np.testing.assert_array_equal(
                np.asarray(res[name])[i], one[name], err_msg=f"run {i}: {name}"
            )
        assert res.message[i] == one.message, i
        if "nepoch" in one:
            assert res.nepoch[i] == one.nepoch
        if "history" in one:
            np.testing.assert_array_equal(res.history[i], one.history)


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    k = 6
    X0 = rng.standard_normal((k, N))
    C = rng.standard_normal((k, N)) * np.arange(1, k + 1)[:, None]
    w = np.linspace(1.0, 2.0, N)
    return X0, C, w


PER_RUN = [
    dict(learning_rate=[0.01, 0.02, 0.05, 0.1, 0.2, 0.3], maxiter=200),
    dict(
        momentum=[0.0, 0.9, 0.0, 0.5, 0.9, 0.0],
        learning_rate=0.05,
        maxiter=[10, 50, 100, 200, 5, 0],
    ),
    dict(
        gtol=[1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-1], tol_momentum=0.0, maxiter=400, learning_rate=0.05
    ),
    dict(ftol=1e-4, patience=[3, 5, 10, 20, 40, 80], learning_rate=0.05, maxiter=300),
    dict(
        centered=True,
        rho=[0.5, 0.9, 0.99, 0.8, 0.7, 0.95],
        epsilon=[1e-7, 1e-3, 1e-5, 0.1, 1e-7, 1e-2],
    ),
    dict(
        use_ema=True,
        ema_momentum=[0.5, 0.9, 0.99, 0.0, 0.7, 0.8],
        ema_overwrite_frequency=[2, 3, 5, 7, 11, 1],
        learning_rate=0.05,
        maxiter=60,
    ),
    dict(
        gradient_accumulation_steps=[2, 3, 4, 5, 2, 3], momentum=0.9, learning_rate=0.05, maxiter=50
    ),
    dict(
        clipnorm=[0.1, 0.5, 1.0, 2.0, 5.0, 10.0],
        weight_decay=[0.0, 0.01, 0.1, 0.2, 0.5, 1.0],
        learning_rate=0.05,
        maxiter=80,
    ),
    dict(maxfev=[5, 10, 20, 40, 80, 160], learning_rate=0.05),
    dict(learning_rate=nr.schedules.ExponentialDecay(0.1, 10, 0.5), momentum=0.9, maxiter=100),
    # The framework variants, with per-run values.
    dict(
        nr.RMSprop.like_torch(momentum=0.9, centered=True, weight_decay=0.01).get_config(),
        learning_rate=[0.01, 0.02, 0.03, 0.04, 0.05, 0.06],
        maxiter=40,
    ),
    dict(
        nr.RMSprop.like_optax(
            0.05, momentum=0.9, nesterov=True, bias_correction=True, initial_scale=0.5
        ).get_config(),
        initial_velocity=[0.0, 0.1, 0.5, 1.0, 2.0, 0.25],
        maxiter=40,
    ),
]


def _clean(options):
    return {k: v for k, v in options.items() if k != "name"}


@pytest.mark.parametrize("options", PER_RUN, ids=range(len(PER_RUN)))
def test_compiled_runs_are_each_runs_minimize(problem, options):
    X0, C, w = problem
    options = _clean(options)
    res = nr.minimize_many(quad, X0, args=(C, w), run_args=(0,), options=options)
    assert_runs_match(res, quad, X0, (C, w), options, run_args=(0,))


@pytest.mark.parametrize("options", PER_RUN, ids=range(len(PER_RUN)))
def test_vectorized_runs_are_each_runs_minimize(problem, options):
    X0, C, w = problem
    options = _clean(options)
    res = nr.minimize_many(
        quad_vec, X0, args=(C, w), run_args=(0,), options=options, vectorized=True
    )
    assert_runs_match(res, quad_np, X0, (C, w), options, run_args=(0,))


def test_python_objective_runs_each_minimize(problem):
    X0, C, w = problem
    options = dict(learning_rate=[0.01, 0.02, 0.05, 0.1, 0.2, 0.3], maxiter=30)
    res = nr.minimize_many(quad_np, X0, args=(C, w), run_args=(0,), options=options)
    assert_runs_match(res, quad_np, X0, (C, w), options, run_args=(0,))
    # finite differences too (each run is an nr.minimize call)
    fd = nr.minimize_many(
        lambda x, c, w: quad_np(x, c, w)[0],
        X0[:2],
        args=(C[:2], w),
        run_args=(0,),
        jac="2-point",
        options=dict(maxiter=5),
    )
    one = nr.minimize(
        lambda x, c, w: quad_np(x, c, w)[0],
        X0[1],
        args=(C[1], w),
        jac="2-point",
        options=dict(maxiter=5),
    )
    np.testing.assert_array_equal(fd.x[1], one.x)
    assert fd.nfev[1] == one.nfev


@pytest.fixture
def regression():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((64, N))
    b = A @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.standard_normal(64)
    X0 = rng.standard_normal((5, N))
    return X0, A, b


@pytest.mark.parametrize(
    "seed, shuffle", [(7, True), ([1, 2, 3, 4, 5], True), (7, False), (None, False)]
)
def test_minibatches_with_one_seed_or_one_per_run(regression, seed, shuffle):
    X0, A, b = regression
    options = dict(
        batch_size=10,
        maxiter=[3, 20, 7, 13, 40],
        learning_rate=0.05,
        shuffle=shuffle,
        seed=seed,
        return_history=True,
    )
    res = nr.minimize_many(linreg, X0, args=(A, b), options=options)
    assert_runs_match(res, linreg, X0, (A, b), options)
    assert res.nepoch.tolist() == [1, 3, 1, 2, 6]  # 7 batches per epoch


def test_without_a_seed_each_run_draws_its_own_order(regression):
    """seed=None: fresh entropy per run, as each nr.minimize call would draw."""
    X0, A, b = regression
    X0 = np.repeat(X0[:1], 3, axis=0)
    res = nr.minimize_many(
        linreg, X0, args=(A, b), options=dict(batch_size=8, maxiter=20, learning_rate=0.05)
    )
    assert not np.array_equal(res.x[0], res.x[1]) and not np.array_equal(res.x[1], res.x[2])
    again = nr.minimize_many(
        linreg,
        X0,
        args=(A, b),
        options=dict(batch_size=8, maxiter=20, learning_rate=0.05, seed=[4, 4, 5]),
    )
    np.testing.assert_array_equal(again.x[0], again.x[1])
    assert not np.array_equal(again.x[1], again.x[2])


def test_the_compiled_path_is_taken(problem):
    from numba_rmsprop.many.batch import Batch

    X0, C, w = problem
    batch = Batch(quad, X0, (C, w), True, None, {}, (0,), False, None)
    assert batch.mode == "compiled"
    batch = Batch(quad_np, X0, (C, w), True, None, {}, (0,), False, None)
    assert batch.mode == "each"


def test_vectorized_minibatches(regression):
    X0, A, b = regression
    options = dict(batch_size=16, maxiter=[3, 20, 7, 13, 40], learning_rate=0.05, seed=3, gtol=1e-3)
    res = nr.minimize_many(linreg_vec, X0, args=(A, b), options=options, vectorized=True)
    assert_runs_match(res, linreg_np, X0, (A, b), options)
    with pytest.raises(ValueError, match="give one seed, not one per run"):
        nr.minimize_many(
            linreg_vec,
            X0,
            args=(A, b),
            vectorized=True,
            options=dict(options, seed=[1, 2, 3, 4, 5]),
        )


@pytest.mark.parametrize("vectorized", [False, True])
def test_a_non_finite_loss_stops_only_its_run(problem, vectorized):
    X0, C, w = problem
    options = dict(learning_rate=0.1, maxiter=50)
    if vectorized:

        def fun(X, C, w):
            f, G = quad_vec(X, C, w)
            return np.where(f > 50.0, np.nan, f), G
    else:
        fun = blows_up
    res = nr.minimize_many(
        fun, X0, args=(C, w), run_args=(0,), options=options, vectorized=vectorized
    )
    assert (res.status == 2).any() and (res.status != 2).any()
    scalar = (
        blows_up
        if not vectorized
        else (
            lambda x, c, w: (
                np.nan if quad_np(x, c, w)[0] > 50.0 else quad_np(x, c, w)[0],
                quad_np(x, c, w)[1],
            )
        )
    )
    assert_runs_match(res, scalar, X0, (C, w), options, run_args=(0,))


def test_bounds_and_float32(problem):
    X0, C, w = problem
    X0 = X0.astype(np.float32)
    bounds = [(-1.0, 1.0)] * N
    options = dict(learning_rate=[0.01, 0.02, 0.05, 0.1, 0.2, 0.3], maxiter=60)

    @njit
    def quad32(x, c, w):
        d = x - c
        return np.float32(0.5) * np.sum(w * d * d), w * d

    res = nr.minimize_many(
        quad32,
        X0,
        args=(C.astype(np.float32), w.astype(np.float32)),
        run_args=(0,),
        bounds=bounds,
        options=options,
    )
    assert res.x.dtype == np.float32 and np.all(np.abs(res.x) <= 1.0)
    assert_runs_match(
        res,
        quad32,
        X0,
        (C.astype(np.float32), w.astype(np.float32)),
        options,
        run_args=(0,),
        bounds=bounds,
    )


@pytest.mark.parametrize("vectorized", [False, True])
def test_callback_sees_every_run_once_per_step(problem, vectorized):
    X0, C, w = problem
    seen = []

    def callback(intermediate_result):
        r = intermediate_result
        assert r.x.shape == X0.shape and r.fun.shape == (6,) and r.active.dtype == bool
        seen.append(r.nit.copy())
        if len(seen) == 5:
            raise StopIteration

    fun = quad_vec if vectorized else quad
    res = nr.minimize_many(
        fun,
        X0,
        args=(C, w),
        run_args=(0,),
        vectorized=vectorized,
        options=dict(maxiter=[3, 100, 100, 100, 100, 100]),
        callback=callback,
    )
    assert len(seen) == 5
    assert res.status.tolist() == [0, 99, 99, 99, 99, 99]
    assert res.message[1] == "`callback` raised `StopIteration`."
    assert res.nit.tolist() == [3, 5, 5, 5, 5, 5]


@pytest.mark.parametrize(
    "change, exc, match",
    [
        (dict(X0=np.zeros(4)), ValueError, "2-D"),
        (dict(X0=np.zeros((0, 4))), ValueError, "at least one run"),
        (dict(run_args=(5,)), ValueError, "not a position"),
        (dict(run_args=(1,)), ValueError, "one entry per run"),
        (dict(options=dict(learning_rate=[0.1, 0.2])), ValueError, "sequence of 6"),
        (dict(options=dict(learning_rate=[0.1] * 5 + [-1.0])), ValueError, r"learning_rate\[5\]"),
        (dict(options=dict(learning_rate=[0.1] * 5 + [None])), TypeError, "number"),
        (dict(options=dict(centered=[True] * 6)), ValueError, "shared"),
        (dict(options=dict(nesterov=True, momentum=[0.9] * 5 + [0.0])), ValueError, "nesterov"),
        (dict(vectorized=True, jac="2-point"), ValueError, "vectorized"),
        (dict(fun=42), TypeError, "`fun` must be callable"),
    ],
)
def test_bad_input_is_a_clear_error(problem, change, exc, match):
    X0, C, w = problem
    kw = dict(fun=quad, X0=X0, args=(C, w), run_args=(0,), options=dict(maxiter=3))
    kw.update(change)
    fun, X = kw.pop("fun"), kw.pop("X0")
    with pytest.raises(exc, match=match):
        nr.minimize_many(fun, X, **kw)


def test_vectorized_wrong_shapes_name_what_was_expected(problem):
    X0, C, w = problem
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        nr.minimize_many(
            lambda X, C, w: (np.zeros(5), X), X0, args=(C, w), run_args=(0,), vectorized=True
        )
    with pytest.raises(ValueError, match=r"shape \(4, 6\)"):
        nr.minimize_many(
            lambda X, C, w: (np.zeros(6), X[:, :2]), X0, args=(C, w), run_args=(0,), vectorized=True
        )
    with pytest.raises(ValueError, match=r"shape \(4, 6\)"):  # the old (runs, parameters)
        nr.minimize_many(
            lambda X, C, w: (np.zeros(6), X.T), X0, args=(C, w), run_args=(0,), vectorized=True
        )


def test_runs_that_stop_early_cost_nothing_further(problem):
    """A run at its limit is not evaluated again (count the vectorized rows)."""
    X0, C, w = problem
    rows = []

    def fun(X, C, w):
        rows.append(X.shape[1])
        return quad_vec(X, C, w)

    nr.minimize_many(
        fun,
        X0,
        args=(C, w),
        run_args=(0,),
        vectorized=True,
        options=dict(maxiter=[1, 2, 3, 4, 5, 6]),
    )
    assert rows[:6] == [6, 5, 4, 3, 2, 1]


def test_an_objective_that_does_not_compile_falls_back_with_a_warning(problem):
    X0, C, w = problem

    def quad_any(x, c, w):
        d = x - c
        return 0.5 * np.sum(w * d * d), w * d

    # A fixed signature (any-layout arrays) that the loop's C-contiguous types do not
    # match exactly, and that cannot compile another.
    fixed = njit("Tuple((float64, float64[:]))(float64[:], float64[:], float64[:])")(quad_any)
    with pytest.warns(RuntimeWarning, match="each run's nr.minimize"):
        res = nr.minimize_many(
            fixed, X0[:2], args=(C[:2], w), run_args=(0,), options=dict(maxiter=3)
        )
    assert res.nit.tolist() == [3, 3]
    with pytest.raises(ValueError, match="compiled=True, but"):
        nr.minimize_many(
            fixed, X0[:2], args=(C[:2], w), run_args=(0,), options=dict(maxiter=3, compiled=True)
        )


# ---------------------------------------------------------------- one pass over all runs
FLAT_CASES = [  # (options, dtype, bounded): each compiles the step once
    (dict(momentum=0.9, centered=True), np.float32, True),
    (
        dict(
            use_ema=True,
            ema_momentum=0.7,
            ema_overwrite_frequency=3,
            weight_decay=0.1,
            gradient_accumulation_steps=2,
            clipvalue=0.3,
        ),
        np.float64,
        False,
    ),
    (
        dict(nesterov=True, momentum=0.9, bias_correction=True, epsilon_in_sqrt=False),
        np.float64,
        True,
    ),
]


@pytest.mark.parametrize("config, dtype, bounded", FLAT_CASES, ids=range(len(FLAT_CASES)))
def test_one_pass_step_equals_each_runs_step(config, dtype, bounded):
    """The vectorized loop's single pass over all runs changes the state exactly as
    stepping each run on its own does: with one row of per-call scalars for all,
    with a row per run (per-run learning rates), rollbacks of overflowing runs and
    bounds included."""
    from numba_rmsprop.frontend.state import OK, OVERFLOW, make_state
    from numba_rmsprop.many.kernels import many_step

    k, n = 5, 7
    rng = np.random.default_rng(3)
    spec = nr.RMSprop(learning_rate=0.05, **config)._spec
    bounds = (np.full(n, -2.0, dtype), np.full(n, 2.5, dtype)) if bounded else None
    st = make_state(
        spec,
        rng.uniform(-1, 1, (k, n)).astype(dtype),
        bounds,
        gtol=None,
        ftol=None,
        patience=10,
        tol_momentum=0.9,
        initial_velocity=0.0,
    )
    S = np.ascontiguousarray(st.S.transpose(1, 0, 2))
    shared_lr = np.full((1, 8), 0.05, dtype)
    per_run_lr = np.linspace(0.01, 0.09, k * 8).reshape(k, 8).astype(dtype)
    # (same counters, same scalars) of many_step: one pass with one row of scalars,
    # one pass with a row per run, each run alone
    ways = {"one row": (True, True), "rows": (True, False), "alone": (False, False)}
    for LR, compared in (
        (shared_lr, ("one row", "rows", "alone")),
        (per_run_lr, ("rows", "alone")),
    ):
        states = {w: (S.copy(), st.T.copy(), st.P.copy()) for w in compared}
        runs = np.arange(k)
        for it in range(6):
            G = rng.standard_normal((k, n)).astype(dtype)
            if it == 4:  # run 2's update overflows: rolled back alone
                G[2] = np.finfo(dtype).max
            f = rng.standard_normal(k)
            out = {}
            for w, (S_, T_, P_) in states.items():
                codes = np.zeros(k, np.int64)
                stops = many_step(
                    S_, G.copy(), T_, P_, st.cfg, st.counters, f, it, LR, it, runs, codes, *ways[w]
                )
                out[w] = stops, codes
            if it == 4:
                codes_at_overflow = out["alone"][1].copy()
            for w in compared[:-1]:
                assert out[w][0] == out["alone"][0]
                np.testing.assert_array_equal(out[w][1], out["alone"][1])
                for a, b in zip(states[w], states["alone"], strict=False):
                    np.testing.assert_array_equal(a, b, strict=True)
        if "centered" in config:  # float32: mg**2 overflows, the update is NaN
            assert codes_at_overflow[2] == OVERFLOW and codes_at_overflow[0] == OK


@pytest.mark.parametrize("mode", ["compiled", "vectorized", "each"])
def test_disp_shows_one_display_for_the_batch(mode, monkeypatch, problem):
    """disp=True: one display of the whole batch (steps or runs done, active runs, best and
    median loss), never one per run, in every mode. The display's clock is the count of
    objective calls (each 'takes' 50 ms), so what it shows does not depend on the machine."""
    import sys

    from numba_rmsprop.frontend.progress import Progress

    X0, C, w = problem
    calls = [0]

    def counted_np(x, c, w):
        calls[0] += 1
        return quad_np(x, c, w)

    def counted_vec(X, C, w):
        calls[0] += X.shape[1]
        return quad_vec(X, C, w)

    lines = []

    class Err:
        def write(self, s):
            lines.append(s)

        def flush(self):
            pass

    monkeypatch.setattr(Progress, "clock", staticmethod(lambda: calls[0] * 0.05))
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setattr(sys, "stderr", Err())
    fun = {"compiled": quad, "vectorized": counted_vec, "each": counted_np}[mode]
    res = nr.minimize_many(
        fun,
        X0,
        args=(C, w),
        run_args=(0,),
        vectorized=mode == "vectorized",
        options=dict(maxiter=40, learning_rate=0.1, disp=True),
    )
    text = "".join(lines)
    assert "rmsprop:" not in text  # no run's own display
    shown = [s for s in lines if s.startswith("\rminimize_many:")]
    unit = "run" if mode == "each" else "step"
    total = X0.shape[0] if mode == "each" else 40
    assert shown[-1] == f"\rminimize_many: {unit} {total}/{total}\n"
    last = shown[-2]
    assert last.startswith(f"\rminimize_many: {unit} {total}/{total} active 0/{X0.shape[0]}")
    assert f"best {np.min(res.fun):.6g} median {np.median(res.fun):.6g}" in last
    if mode != "compiled":  # the clock moved: the display refreshed while the runs ran
        assert len(shown) > 3
