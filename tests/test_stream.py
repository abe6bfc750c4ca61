"""Streaming dask arrays through a shuffle buffer (issue #12, part 2;
``numba_rmsprop.frontend.stream``).

The order of the batches is pinned against a plain NumPy transcription of
the scheme in ``_stream``'s docstring (:func:`documented_order`); everything
else is compared bit for bit with in-memory runs, across loops, loaders
(the run's threads, a ``LocalCluster`` client) and load groupings.
"""

import threading

import numpy as np
import pytest
from numba import njit

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

from helpers import run_fresh_python  # noqa: E402

import numba_rmsprop as nr  # noqa: E402
from numba_rmsprop.frontend import stream as _stream  # noqa: E402
from numba_rmsprop.frontend import stream_loader  # noqa: E402

N, D = 1000, 5
RNG = np.random.default_rng(0)
X = RNG.standard_normal((N, D))
Y = X @ np.arange(1.0, D + 1) + 0.1 * RNG.standard_normal(N)
IDS = np.arange(N, dtype=np.float64)  # row numbers, to see which rows a batch got


def lsq(w, X, y):
    r = X @ w - y
    return 0.5 * np.mean(r * r), X.T @ r / len(y)


@njit
def lsq_nb(w, X, y):
    r = X @ w - y
    return 0.5 * np.mean(r * r), X.T @ r / len(y)


def lazy(*arrays, chunks=100):
    return tuple(da.from_array(a, chunks=(chunks,) + a.shape[1:]) for a in arrays)


def minimize(fun, args, callback=None, **options):
    o = dict(learning_rate=1e-2, batch_size=64, maxiter=200, seed=0)
    o.update(options)
    return nr.minimize(fun, np.zeros(D), args=args, jac=True, callback=callback, options=o)


def same(a, b, skip=()):
    assert set(a) == set(b), set(a) ^ set(b)
    for k in set(a) - set(skip):
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], strict=True, err_msg=k)
        else:
            assert a[k] == b[k], (k, a[k], b[k])


def our_threads():
    return [t for t in threading.enumerate() if t.name.startswith(stream_loader.THREAD_NAME)]


@pytest.fixture(autouse=True)
def no_thread_left():
    yield
    assert our_threads() == []


# ---------------------------------------------------------------------------
# The order of the batches
# ---------------------------------------------------------------------------


def documented_order(n, sizes, buffer, bs, seed, epochs, shuffle=True):
    """The rows of every batch, per ``_stream``'s docstring, in plain NumPy."""
    rng = np.random.default_rng(seed)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    batches = []
    if n <= buffer:
        for _ in range(epochs):
            perm = rng.permutation(n) if shuffle else np.arange(n)
            batches += [perm[s : s + bs] for s in range(0, n, bs)]
        return batches
    crng = None
    slot_row = np.full(buffer, -1)  # which row each buffer slot holds
    S, m = np.arange(buffer), 0
    for _ in range(epochs):
        if shuffle:
            crng = crng or rng.spawn(1)[0]
            pi = crng.permutation(len(sizes))
        else:
            pi = np.arange(len(sizes))
        t = 0
        while t < len(sizes) or m:
            while t < len(sizes) and buffer - m >= sizes[pi[t]]:
                c = pi[t]
                slot_row[S[m : m + sizes[c]]] = np.arange(bounds[c], bounds[c + 1])
                m += sizes[c]
                t += 1
            if t < len(sizes):
                R = bs * -(-(sizes[pi[t]] - (buffer - m)) // bs)
            else:
                R = m
            if shuffle:
                js = rng.integers(0, np.arange(m, m - R, -1))
                for k in range(R):
                    i = m - 1 - k
                    S[i], S[js[k]] = S[js[k]], S[i]
                order = S[m - R : m].copy()
            else:
                order = S[:R].copy()
                S[: m - R] = S[R:m].copy()
                S[m - R : m] = order
            m -= R
            rows = slot_row[order]
            batches += [rows[s : s + bs] for s in range(0, R, bs)]
    return batches


def recorded_batches(args_fn, steps, **options):
    """The rows (IDS) of every minibatch a run evaluated, in order."""
    seen = []

    def fun(w, X, y, ids):
        seen.append(ids.astype(np.int64))
        return lsq(w, X, y)

    res = nr.minimize(
        fun,
        np.zeros(D),
        args=args_fn(),
        jac=True,
        options=dict(dict(learning_rate=1e-2, batch_size=64, seed=0), maxiter=steps, **options),
    )
    assert len(seen) == res.nfev  # the steps, then the final evaluation
    return seen[:steps], res


@pytest.mark.parametrize(
    "chunks, buffer, bs, shuffle",
    [
        (100, 300, 64, True),  # rounds of one chunk
        ((90, 10, 300, 120, 480), 700, 64, True),  # uneven chunks
        (40, 150, 32, True),  # several chunks per refill
        (100, 300, 64, False),  # FIFO: the in-memory order
        (100, None, 64, True),  # the default buffer holds it all
    ],
)
def test_order_is_the_documented_scheme(chunks, buffer, bs, shuffle):
    args = lambda: lazy(X, Y, IDS, chunks=chunks)  # noqa: E731
    steps = 3 * -(-N // bs) + 5  # three epochs and a bit
    seen, res = recorded_batches(args, steps, shuffle_buffer=buffer, batch_size=bs, shuffle=shuffle)
    sizes = np.array(args()[0].chunks[0])
    ref = documented_order(N, sizes, buffer or N, bs, 0, 4, shuffle)[:steps]
    assert len(seen) == steps
    for k, (a, b) in enumerate(zip(seen, ref, strict=False)):
        np.testing.assert_array_equal(a, b, err_msg=f"batch {k}")
    assert res.nepoch == 4
    # every epoch uses every row once, in batches of the in-memory sizes
    nb = -(-N // bs)
    for e in range(3):
        epoch = seen[e * nb : (e + 1) * nb]
        assert [len(b) for b in epoch] == [bs] * (nb - 1) + [N - (nb - 1) * bs]
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(N))
    if not shuffle:
        mem, _ = recorded_batches(lambda: (X, Y, IDS), steps, batch_size=bs, shuffle=False)
        for a, b in zip(seen, mem, strict=False):
            np.testing.assert_array_equal(a, b)


def test_order_does_not_depend_on_load_groups(monkeypatch):
    args = lambda: lazy(X, Y, IDS, chunks=50)  # noqa: E731
    base, rb = recorded_batches(args, 70, shuffle_buffer=300)
    for group_bytes, group_chunks in [(1, 1), (10**9, 3)]:
        monkeypatch.setattr(_stream, "GROUP_BYTES", group_bytes)
        monkeypatch.setattr(_stream, "GROUP_CHUNKS", group_chunks)
        seen, r = recorded_batches(args, 70, shuffle_buffer=300)
        assert all(np.array_equal(a, b) for a, b in zip(base, seen, strict=False))
        same(r, rb)


# ---------------------------------------------------------------------------
# Bit for bit: in memory, across seeds, loops and loaders
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fun", [lsq, lsq_nb], ids=["python-loop", "compiled-loop"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_whole_array_buffer_equals_in_memory(fun, shuffle):
    o = dict(shuffle=shuffle, return_history=True, use_ema=True, momentum=0.5)
    mem = minimize(fun, (X, Y), **o)
    for buffer in (None, N, 5 * N):
        same(minimize(fun, lazy(X, Y), shuffle_buffer=buffer, **o), mem)
    same(minimize(fun, (lazy(X)[0], Y), **o), mem)  # NumPy data arrays may join in


def test_chunks_along_other_axes_do_not_matter():
    Xc = da.from_array(X.reshape(N, D, 1), chunks=(100, 2, 1))  # blocks of 3 x 1 pieces
    cube = lambda w, X, y: lsq(w, X[:, :, 0], y)  # noqa: E731
    for buffer in (300, None):
        same(
            minimize(cube, (Xc, lazy(Y)[0]), shuffle_buffer=buffer),
            minimize(cube, lazy(X.reshape(N, D, 1), Y), shuffle_buffer=buffer),
        )


def test_same_seed_same_result_small_buffer():
    args = lazy(X, Y)
    runs = [
        minimize(lsq, args, shuffle_buffer=300, maxiter=300, return_history=True) for _ in range(3)
    ]
    for r in runs[1:]:
        same(r, runs[0])
    other = minimize(lsq, args, shuffle_buffer=300, maxiter=300, seed=1)
    assert not np.array_equal(other.x, runs[0].x)
    gen = minimize(
        lsq,
        args,
        shuffle_buffer=300,
        maxiter=300,
        return_history=True,
        seed=np.random.default_rng(0),
    )
    same(gen, runs[0], skip=["checkpoint"])  # which records the seed's kind
    assert gen.checkpoint.fixed["seed"] == "a generator"
    np.testing.assert_array_equal(gen.checkpoint.S, runs[0].checkpoint.S, strict=True)
    mem = minimize(lsq, (X, Y), maxiter=300)
    assert not np.array_equal(mem.x, runs[0].x)  # buffer shuffling is another order
    np.testing.assert_allclose(runs[0].x, mem.x, atol=0.05)  # of the same problem


def test_compiled_loop_equals_python_loop():
    o = dict(
        shuffle_buffer=300,
        maxiter=400,
        return_history=True,
        centered=True,
        learning_rate=nr.schedules.ExponentialDecay(0.02, 100, 0.5),
    )
    rc = minimize(lsq_nb, lazy(X, Y), compiled=True, **o)
    rp = minimize(lsq_nb, lazy(X, Y), compiled=False, **o)
    same(rc, rp)
    np.testing.assert_allclose(minimize(lsq, lazy(X, Y), **o).x, rc.x, rtol=1e-12)


def test_client_and_threads_agree(client):
    args = lazy(X, Y, chunks=250)
    o = dict(shuffle_buffer=600, maxiter=100, return_history=True)
    threads = minimize(lsq, args, **o)
    same(minimize(lsq, args, client=client, **o), threads)
    same(minimize(lsq_nb, args, client=client, **o), minimize(lsq_nb, args, **o))
    # client=None takes the default Client, as dask.compute does; "local" does not
    with distributed.Client(client.scheduler.address) as default:
        assert stream_loader.resolve_client(None) is default
        assert stream_loader.resolve_client("local") is None
        same(minimize(lsq, args, client="local", **o), threads)
        same(minimize(lsq, args, **o), threads)
    assert stream_loader.resolve_client(None) is None


def _streamed_task(store, seed, client):
    """One streamed run as a task on a worker (as runs sent to a cluster would be)."""
    args = (da.from_zarr(f"{store}/X.zarr"), da.from_zarr(f"{store}/Y.zarr"))
    if client == "worker":
        client = distributed.get_client()
    return minimize(lsq, args, shuffle_buffer=600, maxiter=60, seed=seed, client=client).x


def test_runs_inside_worker_tasks(client, tmp_path):
    # With one thread per worker, a task loading through the worker's client
    # would wait for a thread it holds itself: client=None loads in the task's
    # process, an explicit Client secedes from the worker's pool.
    Xs, Ys = lazy(X, Y, chunks=250)
    da.to_zarr(Xs, str(tmp_path / "X.zarr"))
    da.to_zarr(Ys, str(tmp_path / "Y.zarr"))
    local = [_streamed_task(str(tmp_path), s, None) for s in (1, 2)]
    for how in (None, "worker"):
        futures = [client.submit(_streamed_task, str(tmp_path), s, how, pure=False) for s in (1, 2)]
        for f, x in zip(futures, local, strict=False):
            np.testing.assert_array_equal(f.result(timeout=60), x)


def test_zarr_store_on_disk(tmp_path):
    zarr = pytest.importorskip("zarr")
    Xs, Ys = lazy(X, Y, chunks=125)
    da.to_zarr(Xs, str(tmp_path / "X.zarr"))
    da.to_zarr(Ys, str(tmp_path / "Y.zarr"))
    Xz, Yz = da.from_zarr(str(tmp_path / "X.zarr")), da.from_zarr(str(tmp_path / "Y.zarr"))
    assert isinstance(zarr.open(str(tmp_path / "X.zarr")), zarr.Array)
    assert Xz.chunks[0] == (125,) * 8
    o = dict(shuffle_buffer=400, maxiter=600, learning_rate=5e-2)
    res = minimize(lsq_nb, (Xz, Yz), **o)
    same(res, minimize(lsq_nb, (Xs, Ys), **o))  # the same bits as from memory, chunked alike
    assert res.success and res.nepoch == 38  # 600 steps of 16 per epoch
    np.testing.assert_allclose(res.x, np.arange(1.0, D + 1), atol=0.05)
    assert res.nfev == 600 + 3  # the final evaluation: blocks of <= 400 rows (3, 3 and 2 chunks)


def test_final_evaluation_is_the_row_weighted_mean():
    res = minimize(lsq, lazy(X, Y), shuffle_buffer=300, maxiter=50)
    f, g = lsq(res.x, X, Y)  # a mean over rows: the weighted mean of the blocks is it
    np.testing.assert_allclose(res.fun, f, rtol=1e-13)
    np.testing.assert_allclose(res.jac, g, rtol=1e-12, atol=1e-15)
    blocks = [(0, 300), (300, 600), (600, 900), (900, 1000)]
    parts = [lsq(res.x, X[a:b], Y[a:b]) for a, b in blocks]
    assert res.fun == sum((b - a) * p[0] for (a, b), p in zip(blocks, parts, strict=False)) / N
    assert res.nfev == 50 + len(blocks)


def test_callback_sees_the_in_memory_batch_positions():
    def positions(args):
        out = []

        def cb(intermediate_result):
            r = intermediate_result
            out.append((r.epoch, r.batch, r.batch_size))

        minimize(lsq, args, shuffle_buffer=300, maxiter=40, callback=cb)
        return out

    assert positions(lazy(X, Y)) == positions((X, Y))


# ---------------------------------------------------------------------------
# The loader thread: errors, the end of a run
# ---------------------------------------------------------------------------


def _fails_on_block(block, block_info=None):
    if block_info[0]["chunk-location"][0] == 7:
        raise OSError("disk on fire")
    return block


def test_loader_exception_reaches_the_caller():
    Xf = da.from_array(X, chunks=(100, D)).map_blocks(_fails_on_block, dtype=X.dtype)
    Yd = lazy(Y)[0]
    for buffer in (300, None):  # streamed, and loaded whole
        with pytest.raises(OSError, match="disk on fire"):
            minimize(lsq, (Xf, Yd), shuffle_buffer=buffer, maxiter=200)
        with pytest.raises(OSError, match="disk on fire"):
            minimize(lsq_nb, (Xf, Yd), shuffle_buffer=buffer, maxiter=200)


def test_no_thread_left_behind():
    args = lazy(X, Y)
    started = []

    def cb(intermediate_result):
        started.extend(our_threads())
        if intermediate_result.nit == 30:
            raise StopIteration

    res = minimize(lsq, args, shuffle_buffer=300, callback=cb)
    assert res.status == 99 and started and not any(t.is_alive() for t in started)
    assert our_threads() == []

    def boom(w, X, y):
        if len(started) > 50:
            raise ZeroDivisionError("in fun")
        started.append(None)
        return lsq(w, X, y)

    with pytest.raises(ZeroDivisionError):
        minimize(boom, args, shuffle_buffer=300)
    assert our_threads() == []
    res = minimize(lsq, args, shuffle_buffer=300, maxiter=0)
    assert res.nit == 0 and res.nfev == 4
    # data that fit the buffer: the loader ends once they are loaded, before the run does
    seen = []
    minimize(lsq, args, callback=lambda xk: seen.append(our_threads()), maxiter=5)
    assert seen == [[]] * 5


def test_import_does_not_import_dask():
    code = (
        "import sys, numpy as np, numba_rmsprop as nr\n"
        "X = np.ones((20, 2)); y = np.ones(20)\n"
        "nr.minimize(lambda w, X, y: (float(w @ w), 2 * w), np.ones(2), args=(X, y),\n"
        "            jac=True, options=dict(batch_size=4, maxiter=3))\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed', 'zarr')]\n"
        "assert not bad, bad\n"
        "assert 'numba_rmsprop.frontend.stream' not in sys.modules\n"
    )
    run_fresh_python(code)


# ---------------------------------------------------------------------------
# Bad input: a clear error before anything is loaded
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, options, exc, match",
    [
        (
            lambda: lazy(X, Y),
            dict(batch_size=None),
            ValueError,
            r"args\[0\], args\[1\] are dask arrays.*batch_size.*np.asarray",
        ),
        (
            lambda: (lazy(X)[0], Y),
            dict(batch_size=None),
            ValueError,
            r"args\[0\] is a dask array.*options\['batch_size'\]",
        ),
        (
            lambda: (lazy(X)[0], lazy(Y[:-1])[0]),
            {},
            ValueError,
            r"same length; args\[0\] has 1000, args\[1\] has 999",
        ),
        (
            lambda: (lazy(X)[0], lazy(Y, chunks=250)[0]),
            {},
            ValueError,
            r"chunked alike along axis 0.*args\[0\] has chunks \(100, 100, 100, \.\.\., 100, 100\) "
            r"and args\[1\] has \(250, 250, 250, 250\).*args\[1\] = args\[1\]\.rechunk\(\{0: "
            r"args\[0\]\.chunks\[0\]\}\)",
        ),
        (lambda: (lazy(X)[0], Y[:-1]), {}, ValueError, r"args\[1\] has 999"),
        (
            lambda: lazy(X, Y),
            dict(shuffle_buffer=120),
            ValueError,
            r"shuffle_buffer=120.*largest chunk \(100 rows\).*at least 164 rows.*at most 56 rows",
        ),
        (
            lambda: lazy(X, Y),
            dict(shuffle_buffer=60),
            ValueError,
            r"at least 164 rows \(or to all 1000\)\.$",
        ),
        (lambda: lazy(X, Y), dict(shuffle_buffer=0), ValueError, r"shuffle_buffer"),
        (
            lambda: lazy(X, Y),
            dict(client="tcp://scheduler:8786"),
            TypeError,
            r"`client` must be a dask.distributed.Client",
        ),
        (lambda: lazy(X, Y), dict(client=object()), TypeError, r"`client` must be"),
        (lambda: (X, Y), dict(client=42), TypeError, r"`client` must be"),
        (lambda: (lazy(X)[0][lazy(X)[0][:, 0] > 0], Y), {}, ValueError, r"compute_chunk_sizes"),
        (
            lambda: lazy(X, Y) + (da.ones(3),),
            dict(data_args=[0, 1]),
            ValueError,
            r"args\[2\] is a dask array but not one of the data arrays",
        ),
    ],
)
def test_bad_input(args, options, exc, match):
    with pytest.raises(exc, match=match):
        minimize(lsq, args(), **options)
    assert our_threads() == []
