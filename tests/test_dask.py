"""``minimize_many(..., client=client)``: runs as tasks of a Dask cluster (issue #12, part 1).

Every run on the cluster is compared bit for bit with the local
``minimize_many`` (every field, dtypes included), across block sizes, the
three modes, minibatch seeds, per-run data read from a Zarr store by the
workers, and a worker killed (SIGKILL) while blocks run. Bad input fails
before anything is scattered or submitted.
"""

import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest
from numba import njit

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from helpers import quad, quad_columns, quad_np, quad_vec, run_fresh_python  # noqa: E402

import numba_rmsprop as nr  # noqa: E402
from numba_rmsprop.many import dask as _dask  # noqa: E402

K, N = 13, 4  # 13 runs: blocks of 1, 2, 5 leave a short last block


@njit
def linreg(x, A, b):
    """Least squares, in loops (no BLAS: compiling it takes a fraction of a second)."""
    f, g = 0.0, np.zeros_like(x)
    for i in range(b.size):
        r = -b[i]
        for j in range(x.size):
            r += A[i, j] * x[j]
        f += 0.5 * r * r
        for j in range(x.size):
            g[j] += A[i, j] * r
    return f / b.size, g / b.size


@njit
def slow_quad(x, c, w, reps):
    """``quad``, its gradient computed ``reps`` times over: the same numbers, slower."""
    g = np.zeros_like(x)
    for _ in range(reps):
        g = w * (x - c)
    d = x - c
    return 0.5 * np.sum(w * d * d), g


RNG = np.random.default_rng(0)
X0 = RNG.standard_normal((K, N))
C = RNG.standard_normal((K, N)) * np.arange(1, K + 1)[:, None]
W = np.linspace(1.0, 2.0, N)
A = RNG.standard_normal((64, N))
B = A @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * RNG.standard_normal(64)


def per_run(*values):
    """``values`` cycled to one per run."""
    return [values[i % len(values)] for i in range(K)]


def same(a, b):
    """Every field, bit for bit (arrays: values, dtype and shape)."""
    assert list(a) == list(b), (list(a), list(b))
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], strict=True, err_msg=k)
        elif k == "history":
            assert len(a[k]) == len(b[k])
            for x, y in zip(a[k], b[k], strict=False):
                np.testing.assert_array_equal(x, y, strict=True, err_msg=k)
        else:
            assert a[k] == b[k], k


def both(client, fun, X, args, runs_per_task=None, **kw):
    """The local result, and the cluster's (checked to be the same)."""
    local = nr.minimize_many(fun, X, args=args, **kw)
    remote = nr.minimize_many(fun, X, args=args, client=client, runs_per_task=runs_per_task, **kw)
    same(remote, local)
    assert type(remote) is type(local) is nr.OptimizeResult
    return local


OPTIONS = [
    dict(
        learning_rate=per_run(0.01, 0.05, 0.2),
        momentum=per_run(0.0, 0.9, 0.5, 0.0),
        maxiter=per_run(0, 5, 50, 200),
    ),
    dict(
        gtol=per_run(1e-2, 1e-4, 1e-6),
        tol_momentum=0.0,
        maxiter=400,
        learning_rate=0.05,
        centered=True,
        rho=per_run(0.5, 0.9, 0.99),
    ),
    dict(
        use_ema=True,
        ema_momentum=per_run(0.5, 0.9, 0.99),
        learning_rate=0.05,
        maxiter=60,
        gradient_accumulation_steps=per_run(2, 3, 4),
        clipnorm=per_run(0.1, 1.0, 10.0),
    ),
    dict(
        learning_rate=nr.schedules.ExponentialDecay(0.1, 10, 0.5),
        momentum=0.9,
        maxfev=per_run(5, 40, 160),
        ftol=1e-4,
        patience=per_run(3, 10, 40),
    ),
]


@pytest.mark.parametrize("runs_per_task", [1, 5, K, None])
@pytest.mark.parametrize("options", OPTIONS, ids=range(len(OPTIONS)))
def test_compiled_blocks_are_the_local_result(client, options, runs_per_task):
    both(client, quad, X0, (C, W), runs_per_task, run_args=(0,), options=options)


def test_vectorized_and_python_objectives(client):
    o = dict(learning_rate=per_run(0.01, 0.05, 0.2), maxiter=per_run(3, 30, 60), gtol=1e-3)
    both(client, quad_vec, X0, (C, W), 3, run_args=(0,), options=o, vectorized=True)
    both(client, quad_np, X0, (C, W), 4, run_args=(0,), options=o)  # by reference (a module)

    def here(x, c, w):  # defined in a function: pickled by value, as in __main__
        return quad_np(x, c, w)

    both(client, here, X0[:5], (C[:5], W), 2, run_args=(0,), options=dict(maxiter=20))


def test_vectorized_objective_with_runs_along_axis_1(client):
    """Blocks of runs whose per-run data holds them along axis 1 (sliced there for each
    task); a Python objective, so that the workers compile nothing."""
    o = dict(learning_rate=per_run(0.01, 0.05, 0.2), maxiter=per_run(3, 30, 60))
    Ccols = np.ascontiguousarray(C.T)
    both(
        client,
        quad_columns.py_func,
        X0,
        (Ccols, W),
        3,
        run_args=((0, 1),),
        options=o,
        vectorized=True,
    )


@pytest.mark.slow
def test_compiled_vectorized_objective_on_the_workers(client):
    """The compiled vectorized loop in the workers' tasks (each worker compiles it cold:
    in the slow tier)."""
    o = dict(learning_rate=per_run(0.01, 0.05, 0.2), maxiter=per_run(3, 30, 60))
    Ccols = np.ascontiguousarray(C.T)
    both(client, quad_columns, X0, (Ccols, W), 3, run_args=((0, 1),), options=o, vectorized=True)


def test_float32_bounds_and_a_non_finite_stop(client):
    X32 = X0.astype(np.float32)
    res = both(
        client,
        quad,
        X32,
        (C.astype(np.float32), W.astype(np.float32)),
        3,
        run_args=(0,),
        bounds=[(-1.0, 1.0)] * N,
        options=dict(learning_rate=per_run(0.01, 0.1), maxiter=60),
    )
    assert res.x.dtype == np.float32 and np.abs(res.x).max() <= 1.0

    @njit
    def blows_up(x, c, w):
        d = x - c
        f = 0.5 * np.sum(w * d * d)
        return (np.nan if f > 50.0 else f), w * d

    res = both(
        client, blows_up, X0, (C, W), 3, run_args=(0,), options=dict(learning_rate=0.1, maxiter=50)
    )
    assert (res.status == 2).any() and (res.status != 2).any()


@pytest.mark.parametrize("seed", [7, list(range(K))])
def test_minibatches_with_one_seed_or_one_per_run(client, seed):
    o = dict(
        batch_size=10,
        maxiter=per_run(3, 20, 7, 40),
        learning_rate=0.05,
        seed=seed,
        return_history=True,
    )
    res = both(client, linreg, X0, (A, B), 2, options=o)
    assert len(res.history) == K and res.nepoch.max() == 6
    X1 = np.repeat(X0[:1], K, axis=0)  # one seed: every run draws the same minibatches
    res = both(client, linreg, X1, (A, B), 4, options=dict(o, maxiter=30))
    if seed == 7:
        assert (res.x == res.x[0]).all()


def test_without_a_seed_each_run_draws_its_own_order(client):
    X1 = np.repeat(X0[:1], 6, axis=0)
    res = nr.minimize_many(
        linreg,
        X1,
        args=(A, B),
        client=client,
        runs_per_task=2,
        options=dict(batch_size=8, maxiter=20, learning_rate=0.05),
    )
    assert len({r.tobytes() for r in res.x}) == 6  # fresh entropy per run, as locally


def test_per_run_rows_from_zarr_are_read_by_the_workers(client, tmp_path):
    pytest.importorskip("zarr")
    path = str(tmp_path / "C.zarr")
    da.to_zarr(da.from_array(C, chunks=(4, N)), path)
    lazy = da.from_zarr(path)  # the workers read the rows of their blocks from disk
    o = dict(learning_rate=per_run(0.01, 0.05), maxiter=50)
    local = nr.minimize_many(quad, X0, args=(C, W), run_args=(0,), options=o)
    for rpt in (3, None):
        same(
            nr.minimize_many(
                quad, X0, args=(lazy, W), run_args=(0,), options=o, client=client, runs_per_task=rpt
            ),
            local,
        )


def test_blocks_and_the_default_block_size(client):
    assert _dask.split(1, 5) == [(0, 1)]
    assert _dask.split(12, 5) == [(0, 1), (1, 6), (6, 11), (11, 12)]
    threads = sum(client.nthreads().values())
    assert threads == 2
    assert _dask.default_runs_per_task(10, client) == _dask.MIN_RUNS_PER_TASK
    big = 100 * _dask.MIN_RUNS_PER_TASK * _dask.TASKS_PER_THREAD
    assert _dask.default_runs_per_task(big, client) == -(-big // (_dask.TASKS_PER_THREAD * 2))


def test_progress_over_blocks(client, capsys):
    nr.minimize_many(
        quad,
        X0,
        args=(C, W),
        run_args=(0,),
        client=client,
        runs_per_task=4,
        options=dict(maxiter=5, disp=True),
    )
    err = capsys.readouterr().err
    assert "minimize_many" in err and "4/4" in err  # the warm-up and three blocks


def test_warnings_and_errors_of_the_blocks_reach_the_caller(client):
    fixed = njit("Tuple((float64, float64[:]))(float64[:], float64[:], float64[:])")(quad_np)
    with pytest.warns(RuntimeWarning, match="each run's nr.minimize"):
        both(client, fixed, X0[:4], (C[:4], W), 2, run_args=(0,), options=dict(maxiter=3))

    def fails(x, c, w):
        if c[0] == C[6, 0]:
            raise ZeroDivisionError("run 6")
        return quad_np(x, c, w)

    with pytest.raises(ZeroDivisionError, match="run 6"):
        nr.minimize_many(
            fails,
            X0,
            args=(C, W),
            run_args=(0,),
            client=client,
            runs_per_task=2,
            options=dict(maxiter=3),
        )


def test_an_unknown_option_warns_once(client):
    """The caller warns of an unknown option (scipy's OptimizeWarning); the blocks, which
    warn too, do not repeat it."""
    from scipy.optimize import OptimizeWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nr.minimize_many(
            quad_np,
            X0[:4],
            args=(C[:4], W),
            run_args=(0,),
            client=client,
            runs_per_task=2,
            options=dict(maxiter=3, colour=1),
        )
    assert [w.category for w in caught] == [OptimizeWarning], [str(w.message) for w in caught]


# ---------------------------------------------------------------------------
# Bad input: a clear error before anything is scattered or submitted
# ---------------------------------------------------------------------------

_LOCK = threading.Lock()


def _holds_a_lock():
    """An objective pickled by value (made in a function) that refers to a lock."""
    lock = threading.Lock()

    def fun(x, c, w):
        with lock:
            return quad_np(x, c, w)

    return fun


@pytest.mark.parametrize(
    "change, exc, match",
    [
        (dict(client="tcp://scheduler:8786"), TypeError, r"`client` must be a dask.distributed"),
        (dict(client=object()), TypeError, r"`client` must be a dask.distributed.Client"),
        (dict(runs_per_task=0), ValueError, r"`runs_per_task` must be an integer >= 1"),
        (dict(runs_per_task=2.5), TypeError, r"`runs_per_task` must be an integer >= 1"),
        (dict(runs_per_task=True), TypeError, r"`runs_per_task`"),
        (dict(callback=lambda X: None), ValueError, r"with callback: the runs step on the workers"),
        (dict(options=dict(client="tcp://x:1")), ValueError, r"options\['client'\]"),
        (
            dict(fun=quad_np, options=dict(batch_size=2, seed=np.random.default_rng(0))),
            TypeError,
            r"one Generator cannot be shared by runs on different workers",
        ),
        (dict(options=dict(learning_rate=[0.1, 0.2])), ValueError, "sequence of 13"),
        (dict(options=dict(learning_rate=[0.1] * 12 + [-1.0])), ValueError, r"learning_rate\[12\]"),
        (
            dict(fun=quad_np, options=dict(learning_rate=[0.1] * 12 + [-1.0])),
            ValueError,
            r"learning_rate\[12\]",
        ),  # checked up front in the per-run mode too
        (dict(fun=quad_np, options=dict(rho=2.0)), ValueError, r"`rho`"),
        (dict(fun=quad_np, options=dict(maxiter=-1)), ValueError, r"`maxiter`"),
        (dict(fun=quad_np, bounds=[(0.0, 1.0)] * 3), ValueError, r"bounds"),
        (dict(run_args=(1,)), ValueError, "one entry per run"),
        (
            dict(fun=_holds_a_lock()),
            TypeError,
            r"`fun` cannot be sent to the Dask workers: it does not pickle \(TypeError: cannot "
            r"pickle '_thread.lock'.*module the workers can import",
        ),
        (dict(fun=quad_np, jac=lambda x, c, w: _LOCK), TypeError, r"`jac` cannot be sent"),
    ],
)
def test_bad_input_fails_before_anything_is_sent(client, monkeypatch, change, exc, match):
    def sent(*args, **kwargs):
        raise AssertionError("sent to the cluster")

    for name in ("submit", "scatter", "map", "compute"):
        monkeypatch.setattr(client, name, sent)
    kw = dict(fun=quad, X0=X0, args=(C, W), run_args=(0,), options=dict(maxiter=3), client=client)
    kw.update(change)
    if "callback" in change:
        kw["fun"] = quad  # an @njit objective takes a callback locally
    with pytest.raises(exc, match=match):
        nr.minimize_many(kw.pop("fun"), kw.pop("X0"), **kw)


def test_runs_per_task_needs_a_client():
    with pytest.raises(ValueError, match="`runs_per_task`.*needs `client`"):
        nr.minimize_many(quad, X0, args=(C, W), run_args=(0,), runs_per_task=3)


def test_a_closed_client_is_a_clear_error(client):
    c = distributed.Client(client.scheduler.address, set_as_default=False)
    c.close()
    with pytest.raises(ValueError, match="`client` is closed"):
        nr.minimize_many(quad, X0, args=(C, W), run_args=(0,), client=c)


def test_minimize_many_without_a_client_does_not_import_dask():
    code = (
        "import sys, numpy as np, numba_rmsprop as nr\n"
        "res = nr.minimize_many(lambda x: (float(x @ x), 2 * x), np.ones((3, 2)),\n"
        "                       options=dict(maxiter=3))\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
        "assert not bad, bad\n"
        "assert 'numba_rmsprop.many.dask' not in sys.modules\n"
    )
    run_fresh_python(code)


# ---------------------------------------------------------------------------
# Faults: shared arguments lost, a worker killed while blocks run
# ---------------------------------------------------------------------------

_SCATTER = _dask._Run._scatter


def _losing(times, scatters):
    """``_Run._scatter`` whose first ``times`` scatters are lost (cancelled at once, as
    when the workers holding them die)."""
    scatter = _SCATTER  # the original, also when a test patches twice

    def patched(self):
        scatter(self)
        scatters.append(self.generation)
        if self.generation < times:
            self.client.cancel(list(self.shared.values()))

    return patched


def test_lost_shared_arguments_are_scattered_again(client, monkeypatch):
    o = dict(learning_rate=per_run(0.01, 0.05, 0.2), maxiter=50)
    local = nr.minimize_many(quad, X0, args=(C, W), run_args=(0,), options=o)
    scatters = []
    monkeypatch.setattr(_dask._Run, "_scatter", _losing(1, scatters))
    same(
        nr.minimize_many(
            quad, X0, args=(C, W), run_args=(0,), options=o, client=client, runs_per_task=3
        ),
        local,
    )
    assert scatters == [0, 1]  # every block ran once more, after one new scatter
    scatters.clear()
    monkeypatch.setattr(_dask._Run, "_scatter", _losing(_dask.MAX_SCATTERS, scatters))
    with pytest.raises(RuntimeError, match="cancelled by the cluster.*after 4 scatters"):
        nr.minimize_many(
            quad, X0, args=(C, W), run_args=(0,), options=o, client=client, runs_per_task=3
        )
    assert scatters == list(range(_dask.MAX_SCATTERS))


def _kill_a_worker_running_a_block(client, pids, killed, stop):
    """Kill (SIGKILL) the first worker seen holding a block other than the warm-up."""
    while not stop.is_set():
        for addr, keys in client.processing().items():
            ours = [
                k
                for k in keys
                if str(k).startswith("minimize_many-block-") and not str(k).endswith("-0")
            ]
            if ours and addr in pids:
                os.kill(pids[addr], signal.SIGKILL)
                killed.update(addr=addr, keys=ours, time=time.time())
                return
        time.sleep(0.005)


def _computed_after(client, key, t):
    """Whether block ``key``'s block (this attempt, or a later one: ``<name>-<scatter>-<i>``)
    was computed after time ``t``, by the scheduler's record."""
    name, _, i = key.rsplit("-", 2)
    for attempt in range(_dask.MAX_SCATTERS):
        for e in client.story(f"{name}-{attempt}-{i}"):
            if e[0] == "scheduler" and e[2:4] == ("processing", "memory") and e[-1] > t:
                return True
    return False


@pytest.mark.slow  # a cluster fault test (~15 s); .ci/run runs it
def test_a_killed_worker_loses_no_run(client, monkeypatch):
    # Blocks of 2 runs of ~0.15 s each (a slow objective): while they run, the first
    # worker seen processing one is killed. The blocks it held run again (Dask's retry, or
    # after a new scatter when the shared arguments' last copy died with it), on the other
    # worker or on the one its nanny starts, and the result is still the local one bit
    # for bit: every run once, in its row.
    reps = np.int64(800)
    o = dict(learning_rate=per_run(0.01, 0.05, 0.2), momentum=per_run(0.0, 0.9), maxiter=4000)
    args = (C, W, reps)
    local = nr.minimize_many(slow_quad, X0, args=args, run_args=(0,), options=o)
    client.wait_for_workers(2, timeout=60)
    pids = client.run(os.getpid)
    scatters = []
    monkeypatch.setattr(_dask._Run, "_scatter", _losing(0, scatters))
    killed, stop = {}, threading.Event()
    watcher = threading.Thread(
        target=_kill_a_worker_running_a_block, args=(client, pids, killed, stop)
    )
    watcher.start()
    try:
        t0 = time.perf_counter()
        res = nr.minimize_many(
            slow_quad, X0, args=args, run_args=(0,), options=o, client=client, runs_per_task=2
        )
        elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        watcher.join()
    same(res, local)
    # The kill happened while that worker held blocks, which were then computed again.
    assert killed, f"no block was seen running (the run took {elapsed:.2f} s)"
    assert killed["addr"] not in client.scheduler_info()["workers"]
    for key in killed["keys"]:
        assert _computed_after(client, key, killed["time"]), client.story(key)
    # Dask's retry alone (1), or a second scatter too (2): the shared arguments' last copy
    # was on the killed worker.
    assert len(scatters) in (1, 2)
    print(f"killed {killed['addr']} holding {killed['keys']}; scatters: {len(scatters)}")
    client.wait_for_workers(2, timeout=60)  # the nanny's new worker: the cluster is whole
