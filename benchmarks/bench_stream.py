"""asv suites and report functions: data larger than memory (issue #12, part 2).

``nr.minimize`` streaming dask arrays read from an on-disk Zarr store
(:func:`problems.mnist_like_zarr`: MNIST-like float32 rows of 784 pixels and
an int64 label, uncompressed) through a shuffle buffer:

* :func:`memory` -- peak RSS of a streamed run over a store several times the
  buffer, in a fresh child process: its RSS before the run (imports done, the
  loop compiled on a small in-memory slice) is the baseline, the peak is
  ``VmHWM`` reset to it (:func:`common.reset_peak_rss`). The claim: the peak
  stays below baseline + buffer + a small constant (two load groups of at
  most 16 MiB, the batch, the loader's transients).
* :func:`throughput` -- steps per second of the streamed run against the same
  run with the same data in memory, steady state: each is timed at ``steps``
  and at ``steps // 5`` steps and the difference is divided out (setup, the
  first fill of the buffer and the final full-data evaluation cancel). The
  claim: >= 0.8x with chunks of >= 8 MB when a step costs more than reading
  its rows (the NumPy MLP of ``problems.py``); ``probe``, a cheap ``@njit``
  objective, shows the read-bound case.
* asv: :class:`StreamMemory` (``peakmem_`` of one streamed epoch; ``track_`` of
  the RSS above the buffer, MiB) and :class:`StreamThroughput` (``track_`` of
  the ratio, one BLAS thread), on a 256 MiB store with 8 MiB chunks.

Full size, as a script (writes the stores into a temporary folder, or
``--dir``; removes them after; BLAS and numba get one thread, ``--threads``,
so that on 2 cores the loader thread has the other one, in both runs)::

    python benchmarks/bench_stream.py --store-mb 2048 --buffer-mb 256 --chunk-mb 8
    python -m benchmarks.report --preset stream --threads 1 --set stream_memory.store_mb=2048
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time

import numpy as np

if __package__ in (None, ""):  # run as a file: python benchmarks/bench_stream.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

from . import common as C  # noqa: E402
from . import problems as Q  # noqa: E402

MiB = 2**20
ROW_BYTES = 784 * 4 + 8  # a row of X (float32 pixels) and its int64 label


def _rows(mb: float, row_bytes: int = ROW_BYTES) -> int:
    return max(1, int(mb * MiB) // row_bytes)


@contextlib.contextmanager
def _store(size_mb: float, chunk_mb: float, directory=None, seed: int = 0):
    """A temporary MNIST-like Zarr store of ``size_mb`` with chunks of ``chunk_mb`` (of X)."""
    tmp = tempfile.mkdtemp(prefix="nr-stream-", dir=directory)
    try:
        path = os.path.join(tmp, "data.zarr")
        yield Q.mnist_like_zarr(path, _rows(size_mb), _rows(chunk_mb, 784 * 4), seed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open(path: str):
    import dask.array as da

    return da.from_zarr(path, component="X"), da.from_zarr(path, component="y")


# ------------------------------------------------------------------ memory
def _streamed_probe(X, y, buffer_rows: int, batch: int, epochs: float = 1.0):
    import numba_rmsprop as nr

    steps = max(1, int(epochs * -(-X.shape[0] // batch)))
    return nr.minimize(
        Q.linear_probe_njit,
        np.zeros(784, np.float32),
        args=(X, y),
        jac=True,
        options=dict(
            batch_size=batch, maxiter=steps, shuffle_buffer=buffer_rows, learning_rate=1e-4, seed=0
        ),
    )


def memory_child(path: str, buffer_rows: int, batch: int, epochs: float) -> dict:
    """In a fresh process: baseline RSS, then the peak of one streamed run (MiB)."""
    import gc

    import dask.array as da

    X, y = _open(path)
    # Compile and start everything the run uses on a small slice first: the
    # compiler's memory is not the stream's.
    Xs, ys = np.asarray(X[: 4 * batch]), np.asarray(y[: 4 * batch])
    small = da.from_array(Xs, chunks=(batch, 784)), da.from_array(ys, chunks=batch)
    _streamed_probe(*small, buffer_rows=2 * batch, batch=batch // 2)
    del Xs, ys, small
    gc.collect()
    baseline = C.rss_mb()
    reset = C.reset_peak_rss()
    t0 = time.perf_counter()
    res = _streamed_probe(X, y, buffer_rows, batch, epochs)
    seconds = time.perf_counter() - t0
    return dict(
        baseline_mb=baseline,
        peak_mb=C.peak_rss_mb(),
        peak_was_reset=reset,
        seconds=seconds,
        nit=int(res.nit),
        nepoch=int(res.nepoch),
        nfev=int(res.nfev),
        fun=float(res.fun),
        success=bool(res.success),
    )


def memory(
    store_mb: float = 2048,
    buffer_mb: float = 256,
    chunk_mb: float = 8,
    batch: int = 1024,
    epochs: float = 1.0,
    directory=None,
) -> dict:
    """Peak RSS of a streamed run over a ``store_mb`` Zarr store with a ``buffer_mb`` buffer."""
    t0 = time.perf_counter()
    with _store(store_mb, chunk_mb, directory) as info:
        written = time.perf_counter() - t0
        buffer_rows = _rows(buffer_mb)
        r = C.child_call(
            "bench_stream.memory_child",
            path=info["path"],
            buffer_rows=buffer_rows,
            batch=batch,
            epochs=epochs,
        )
    buffer_actual = buffer_rows * ROW_BYTES / MiB
    r.update(
        store_mb=info["bytes"] / MiB,
        n_samples=info["n_samples"],
        chunk_rows=info["chunk_rows"],
        chunk_mb=info["chunk_rows"] * 784 * 4 / MiB,
        buffer_rows=buffer_rows,
        buffer_mb=buffer_actual,
        batch=batch,
        above_baseline_mb=r["peak_mb"] - r["baseline_mb"],
        above_buffer_mb=r["peak_mb"] - r["baseline_mb"] - buffer_actual,
        write_seconds=written,
    )
    return r


# -------------------------------------------------------------- throughput
def _objectives():
    return {
        "mlp": (Q.mlp_flat, Q.mlp_flat_init(0), 1e-3),
        "probe": (Q.linear_probe_njit, np.zeros(784, np.float32), 1e-4),
    }


def _timed_run(fun, x0, args, steps, batch, lr, buffer_rows=None) -> float:
    import numba_rmsprop as nr

    o = dict(batch_size=batch, maxiter=steps, learning_rate=lr, seed=0)
    if buffer_rows is not None:
        o["shuffle_buffer"] = buffer_rows
    t0 = time.perf_counter()
    nr.minimize(fun, x0, args=args, jac=True, options=o)
    return time.perf_counter() - t0


def throughput(
    data_mb: float = 256,
    buffer_mb: float = 64,
    chunk_mb: float = 8,
    batch: int = 64,
    steps: int = 2000,
    repeat: int = 3,
    objectives=("mlp", "probe"),
    directory=None,
) -> dict:
    """Steady-state steps/s, streamed from Zarr and in memory, per objective (see the docstring)."""
    out = {}
    with _store(data_mb, chunk_mb, directory) as info:
        X, y = _open(info["path"])
        Xm, ym = np.asarray(X), np.asarray(y)
        buffer_rows = _rows(buffer_mb)
        short = max(1, steps // 5)
        for name in objectives:
            fun, x0, lr = _objectives()[name]
            runs = {
                "memory": lambda n, f=fun, x=x0, r=lr: _timed_run(f, x, (Xm, ym), n, batch, r),
                "streamed": lambda n, f=fun, x=x0, r=lr: _timed_run(
                    f, x, (X, y), n, batch, r, buffer_rows
                ),
            }
            for run in runs.values():
                run(short)  # warm-up: compile, caches
            per = {k: [] for k in runs}
            whole = {k: [] for k in runs}
            for r in range(repeat):
                for k in list(runs) if r % 2 == 0 else list(runs)[::-1]:
                    t_long, t_short = runs[k](steps), runs[k](short)
                    per[k].append((steps - short) / max(t_long - t_short, 1e-9))
                    whole[k].append(steps / t_long)
            ratios = [s / m for s, m in zip(per["streamed"], per["memory"], strict=False)]
            out[name] = dict(
                steps_per_s={k: float(np.median(v)) for k, v in per.items()},
                whole_run_steps_per_s={k: float(np.median(v)) for k, v in whole.items()},
                ratio=float(np.median(ratios)),
                ratios=ratios,
            )
    out["setup"] = dict(
        data_mb=info["bytes"] / MiB,
        n_samples=info["n_samples"],
        chunk_rows=info["chunk_rows"],
        chunk_mb=info["chunk_rows"] * 784 * 4 / MiB,
        buffer_rows=buffer_rows,
        buffer_mb=buffer_rows * ROW_BYTES / MiB,
        batch=batch,
        steps=steps,
        short=short,
        repeat=repeat,
    )
    return out


# ------------------------------------------------------------------ asv
class _Store(C.Benchmark):
    timeout = 600
    store_mb, chunk_mb = C.sized(256, 4), C.sized(8, 0.25)

    def setup_cache(self):
        C.need("dask.array")
        C.need("zarr")
        path = os.path.abspath("stream.zarr")
        return Q.mnist_like_zarr(path, _rows(self.store_mb), _rows(self.chunk_mb, 784 * 4))

    batch = C.sized(256, 32)

    def setup(self, info):
        C.need("dask.array")
        self.X, self.y = _open(info["path"])
        self.buffer_rows = max(_rows(self.store_mb / 8), info["chunk_rows"] + self.batch)


class StreamMemory(_Store):
    """One streamed epoch over a store 8x the buffer (asv: peak RSS of the whole process)."""

    def peakmem_streamed_epoch(self, info):
        _streamed_probe(self.X, self.y, self.buffer_rows, batch=self.batch)

    def track_rss_above_buffer(self, info):
        """Peak RSS above the pre-run RSS, minus the buffer (MiB; a fresh child process)."""
        r = C.child_call(
            "bench_stream.memory_child",
            path=info["path"],
            buffer_rows=self.buffer_rows,
            batch=self.batch,
            epochs=1.0,
        )
        return max(r["peak_mb"] - r["baseline_mb"] - self.buffer_rows * ROW_BYTES / MiB, 1e-3)

    track_rss_above_buffer.unit = "MiB"


class StreamThroughput(_Store):
    """Streamed steps/s over in-memory steps/s, MLP objective."""

    def track_ratio(self, info):
        """In a child with one BLAS/numba thread (the loader gets the other core)."""
        env = C.child_env(**{v: 1 for v in C.THREAD_VARS})
        r = C.child_call(
            "bench_stream.throughput",
            env=env,
            data_mb=self.store_mb,
            buffer_mb=self.store_mb / 4,
            chunk_mb=self.chunk_mb,
            steps=C.sized(1000, 20),
            repeat=C.sized(3, 1),
            objectives=["mlp"],
        )
        return r["mlp"]["ratio"]

    track_ratio.unit = "streamed / in memory"


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Peak memory and throughput of streamed minimize "
        "runs over on-disk Zarr stores (a report with the machine)."
    )
    ap.add_argument("--store-mb", type=float, default=2048, help="memory run: store size")
    ap.add_argument("--buffer-mb", type=float, default=256, help="memory run: shuffle buffer")
    ap.add_argument("--chunk-mb", type=float, default=8, help="chunk size of X, both runs")
    ap.add_argument("--throughput-mb", type=float, default=256, help="throughput run: data size")
    ap.add_argument("--throughput-buffer-mb", type=float, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", help="where to write the stores (default: the temp folder)")
    ap.add_argument("--only", choices=["memory", "throughput"])
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/numba threads (default 1: the loader thread gets the other core)",
    )
    args = ap.parse_args(argv)
    from . import report

    sets = [
        f"stream_memory.store_mb={args.store_mb}",
        f"stream_memory.buffer_mb={args.buffer_mb}",
        f"stream_memory.chunk_mb={args.chunk_mb}",
        f"stream_throughput.data_mb={args.throughput_mb}",
        f"stream_throughput.buffer_mb={args.throughput_buffer_mb}",
        f"stream_throughput.chunk_mb={args.chunk_mb}",
        f"stream_throughput.steps={args.steps}",
        f"stream_throughput.repeat={args.repeat}",
    ]
    if args.dir:
        sets += [
            f'stream_memory.directory="{args.dir}"',
            f'stream_throughput.directory="{args.dir}"',
        ]
    sections = [f"stream_{args.only}"] if args.only else ["stream_memory", "stream_throughput"]
    sets = [s for s in sets if s.split(".")[0] in sections]
    return report.main(["--sections", *sections, "--threads", str(args.threads), "--set", *sets])


if __name__ == "__main__":
    main()
