"""``minimize_many(vectorized=True)`` in scipy's layout, and its compiled loop.

``fun(X, *args)`` gets ``X`` of shape ``(n, m)``, one column per active run,
and per-run arguments sliced along the axis ``run_args`` names. With an
``@njit`` ``fun`` the whole loop is compiled (:mod:`numba_rmsprop.many.columns`):
blocks of runs, compaction of the runs that stop, one fused pass or each
run's own step. Every run must be, bit for bit, its own ``nr.minimize``
with a one-run objective of the same arithmetic; the Python vectorized loop
(``compiled=False``) must agree with it too.
"""

import numpy as np
import pytest
from numba import njit

import numba_rmsprop as nr
from numba_rmsprop.engine.entries import EntryCache
from numba_rmsprop.engine.threads import chunk_bounds
from numba_rmsprop.many import columns, compiled_vectorized

P = 12  # data points per run


@njit
def poly_columns(X, t, Y):
    """Quadratic-in-t least squares for every column of ``X`` (``Y``: points x runs);
    a loss above 1e6 is NaN (a run that diverges stops alone)."""
    n, m = X.shape
    p = t.size
    f = np.zeros(m)
    G = np.zeros((n, m))
    for j in range(p):
        tj = t[j]
        tt = tj * tj
        for r in range(m):
            res = X[0, r] + X[1, r] * tj + X[2, r] * tt - Y[j, r]
            f[r] += res * res
            G[0, r] += res
            G[1, r] += res * tj
            G[2, r] += res * tt
    for r in range(m):
        f[r] = 0.5 * f[r] / p
        if f[r] > 1e6:
            f[r] = np.nan
        for i in range(n):
            G[i, r] = G[i, r] / p
    return f, G


@njit
def poly_rows(X, t, Yr):
    """:func:`poly_columns` with the data of run ``r`` in row ``r`` (``Yr``: runs x points)."""
    return poly_columns(X, t, np.ascontiguousarray(Yr.T))


def poly_one(x, t, y):
    """One run of :func:`poly_columns`, the same operations in the same order."""
    f, G = poly_columns.py_func(x[:, None], t, y[:, None])
    return f[0], G[:, 0]


def data(k, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, P).astype(dtype)
    truth = rng.uniform(-1, 1, (3, k))
    Y = (truth[0] + np.outer(t, truth[1]) + np.outer(t * t, truth[2])).astype(dtype)
    X0 = rng.uniform(-0.5, 0.5, (k, 3)).astype(dtype)
    return X0, t, np.ascontiguousarray(Y)


def assert_each_run(res, X0, t, Y, options, bounds=None):
    """Run ``i`` of the batch is ``nr.minimize`` of ``poly_one`` on column ``i``, exactly."""
    for i in range(X0.shape[0]):
        o = {k: (v[i] if isinstance(v, list) else v) for k, v in options.items()}
        one = nr.minimize(
            poly_one,
            X0[i],
            args=(t, np.ascontiguousarray(Y[:, i])),
            jac=True,
            bounds=bounds,
            options=o,
        )
        for name in ("x", "fun", "jac", "nit", "nfev", "njev", "status"):
            np.testing.assert_array_equal(
                np.asarray(res[name])[i], one[name], err_msg=f"run {i}: {name}"
            )
        assert res.message[i] == one.message, i


def same_result(a, b):
    for name in ("x", "fun", "jac", "nit", "nfev", "njev", "status", "message"):
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)


CASES = {
    # the fused pass; maxiter per run and a diverging run: compaction, a declined pass
    "fused, compaction": (dict(learning_rate=0.05, maxiter=[40, 3, 17, 40, 1, 40, 25, 40]), None),
    # each run's own step (per-run rates and tolerances), the same layout: nothing new compiles
    "each run's step": (
        dict(
            learning_rate=[0.01, 0.02, 0.05, 0.1, 0.02, 0.03, 0.04, 0.05],
            gtol=[1e-1, 1e-2, 1e-3, 1e-2, 1e-1, 1e-2, 1e-3, 1e-4],
            tol_momentum=0.0,
            maxiter=60,
        ),
        None,
    ),
    # a learning-rate schedule: each step's own rate, in the fused pass and in each run's step
    "fused, a schedule": (
        dict(learning_rate=nr.schedules.ExponentialDecay(0.05, 3, 0.8), maxiter=[40, 3] * 4),
        None,
    ),
    "each run's step, a schedule": (
        dict(
            learning_rate=nr.schedules.ExponentialDecay(0.05, 3, 0.8),
            gtol=[1e-1, 1e-2, 1e-3, 1e-2, 1e-1, 1e-2, 1e-3, 1e-4],
            tol_momentum=0.0,
            maxiter=60,
        ),
        None,
    ),
    # and with momentum, centered, EMA overwrite and bounds: another layout (slow tier)
    "each run's step, every state row": (
        dict(
            learning_rate=[0.01, 0.02, 0.05, 0.1, 0.02, 0.03, 0.04, 0.05],
            momentum=0.5,
            centered=True,
            use_ema=True,
            ema_overwrite_frequency=3,
            gtol=[1e-1, 1e-2, 1e-3, 1e-2, 1e-1, 1e-2, 1e-3, 1e-4],
            tol_momentum=0.0,
            maxiter=60,
        ),
        [(-0.6, 0.6)] * 3,
    ),
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.slow) if c.endswith("every state row") else c
        for c in CASES
    ],
)
def test_compiled_runs_are_each_runs_minimize(case, monkeypatch):
    """Blocks of 8 runs (forced), two threads: each run is its own nr.minimize, and the
    Python vectorized loop (compiled=False) gives the same batch."""
    options, bounds = CASES[case]
    k = 8
    X0, t, Y = data(k)
    Y[:, 6] *= 1e4  # run 6's loss is NaN at once: it stops alone (the fused pass declines)
    # blocks of 4 runs: two blocks, whose runs stop at different steps
    monkeypatch.setattr(columns, "block_size", lambda *a: 4)
    calls, fused = [], []
    monkeypatch.setattr(compiled_vectorized, "COLUMN_ENTRIES", EntryCache())
    monkeypatch.setattr(columns, "columns_blocks", _Counted(columns.columns_blocks, calls))
    real = columns.fused_possible
    monkeypatch.setattr(columns, "fused_possible", lambda *a: fused.append(real(*a)) or fused[-1])
    res = nr.minimize_many(
        poly_columns,
        X0,
        args=(t, Y),
        run_args=((1, 1),),
        vectorized=True,
        bounds=bounds,
        options=options,
    )
    assert calls, "the compiled loop did not run"
    assert fused == [case.startswith("fused")]
    assert res.status[6] == 2 and "Non-finite loss" in res.message[6]
    assert_each_run(res, X0, t, Y, options, bounds)
    python = nr.minimize_many(
        poly_columns,
        X0,
        args=(t, Y),
        run_args=((1, 1),),
        vectorized=True,
        bounds=bounds,
        options=dict(options, compiled=False),
    )
    same_result(res, python)


class _Counted:
    """A stand-in for the compiled loop's dispatcher that records its compiles."""

    def __init__(self, dispatcher, calls):
        self.dispatcher, self.calls = dispatcher, calls

    def compile(self, sig):
        self.calls.append(sig)
        return self.dispatcher.compile(sig)


def test_the_loop_is_typed_once_per_argument_types(monkeypatch):
    """A second call with arguments of the same types reuses the compiled entry (typing
    them cost 3 ms a call); another dtype, or a history, types and compiles again."""
    calls = []
    monkeypatch.setattr(compiled_vectorized, "COLUMN_ENTRIES", EntryCache())
    monkeypatch.setattr(columns, "columns_blocks", _Counted(columns.columns_blocks, calls))
    X0, t, Y = data(8)

    def run(X0, t, Y, **extra):
        o = dict(learning_rate=0.05, maxiter=5, **extra)
        kw = dict(args=(t, Y), run_args=((1, 1),), vectorized=True, options=o)
        return nr.minimize_many(poly_columns, X0, **kw)

    first = run(X0, t, Y)
    np.testing.assert_array_equal(run(X0 + 0.0, t.copy(), Y.copy()).x, first.x)
    assert len(calls) == 1
    X32, t32, Y32 = data(8, np.float32)
    assert run(X32, t32, Y32).x.dtype == np.float32 and len(calls) == 2
    assert len(run(X0, t, Y, return_history=True).history) == 8 and len(calls) == 3
    assert len(run(X0, t, Y, return_history=True).history) == 8 and len(calls) == 3


def test_runs_along_axis_0_or_1_give_the_same_runs():
    """The same data with its runs along axis 1 (points x runs) or axis 0 (runs x points,
    ``run_args`` position only): the same result, each run's slice its own."""
    X0, t, Y = data(8)
    o = dict(learning_rate=0.05, maxiter=30)
    by_column = nr.minimize_many(
        poly_columns, X0, args=(t, Y), run_args=((1, 1),), vectorized=True, options=o
    )
    by_row = nr.minimize_many(
        poly_rows,
        X0,
        args=(t, np.ascontiguousarray(Y.T)),
        run_args=(1,),
        vectorized=True,
        options=o,
    )
    same_result(by_column, by_row)
    negative = nr.minimize_many(
        poly_columns, X0, args=(t, Y), run_args=((1, -1),), vectorized=True, options=o
    )
    same_result(by_column, negative)


def test_python_objective_gets_columns_and_the_argument_itself():
    """The Python loop: ``X`` is ``(n, m)`` C-contiguous, a copy; while every run is active
    a per-run argument is passed as given (no copy), then the active runs' slices."""
    X0, t, Y = data(5)
    seen = []

    def fun(X, t_, Y_):
        seen.append((X.shape, X.flags.c_contiguous, Y_ is Y, Y_.shape))
        out = poly_columns(X.copy(), t_, Y_)
        X[...] = 1e9  # the objective's copy: the optimizer must not see this
        return out

    o = dict(learning_rate=0.05, maxiter=[3, 1, 3, 3, 3])
    res = nr.minimize_many(fun, X0, args=(t, Y), run_args=((1, 1),), vectorized=True, options=o)
    assert seen[0] == ((3, 5), True, True, (P, 5))
    assert seen[1] == ((3, 4), True, False, (P, 4))
    assert_each_run(res, X0, t, Y, o)


def test_an_njit_objective_with_the_wrong_shapes_is_a_clear_error():
    @njit
    def rows_not_columns(X, t, Y):
        f, G = poly_columns(X, t, Y)
        return f, np.ascontiguousarray(G.T)

    X0, t, Y = data(4)
    with pytest.raises(ValueError, match=r"gradient of shape \(n, m\)"):
        nr.minimize_many(
            rows_not_columns,
            X0,
            args=(t, Y),
            run_args=((1, 1),),
            vectorized=True,
            options=dict(maxiter=3),
        )


@pytest.mark.parametrize(
    "run_args, match",
    [
        (((1, 2),), "no such axis"),
        (((1, 0),), "one entry per run: axis 0 of length 4"),
        (((1, 1, 0),), "pair"),
        (((1, 1), (1, 0)), "twice"),
        ("1", "sequence"),
    ],
)
def test_bad_run_args_are_clear_errors(run_args, match):
    X0, t, Y = data(4)
    with pytest.raises((ValueError, TypeError), match=match):
        nr.minimize_many(
            poly_columns,
            X0,
            args=(t, Y),
            run_args=run_args,
            vectorized=True,
            options=dict(maxiter=3),
        )


def test_block_size_fits_the_cache_and_the_threads():
    assert columns.block_size(8 * 64, 100_000, 1) == columns.BLOCK_BYTES // 512
    assert columns.block_size(1, 100_000, 1) == 4096
    assert columns.block_size(10**9, 100_000, 1) == 64
    # two threads, 2000 runs: two blocks per thread (4 x 500 -> 504)
    assert columns.block_size(8, 2000, 2) == 504
    # cache-sized blocks of 328 runs would be 7 blocks: 8 equal ones instead (250 -> 256)
    assert columns.block_size(columns.BLOCK_BYTES // 328, 2000, 2) == 256
    # a cache-sized block (512 runs of 512 bytes) already gives each thread 98 of them
    assert columns.block_size(512, 100_000, 2) == 512
    # 300 runs: two blocks per thread (75 -> 80); 100 runs: blocks of 64 at least
    assert columns.block_size(8, 300, 2) == 80
    assert columns.block_size(8, 100, 2) == 64


def test_chunks_are_guided_longest_first_and_cover_every_run():
    for m, threads in ((2000, 2), (8, 2), (7, 4), (1, 2), (100_003, 3)):
        bounds = chunk_bounds(m, threads)
        assert bounds[0][0] == 0 and bounds[-1][1] == m
        assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        sizes = [hi - lo for lo, hi in bounds]
        assert min(sizes) >= 1 and sizes[:-1] == sorted(sizes[:-1], reverse=True)
        assert sizes[-1] <= max(1, m // (16 * threads))  # the last one is short
    assert len(chunk_bounds(2000, 2)) <= 16
