"""Report function: ``minimize_many`` on a Dask cluster against the same runs here (issue #12).

:func:`measure` fits ``k`` decay curves (``problems.decay_data`` /
``problems.decay_njit``: 3 parameters, 32 points, ``steps`` steps each, the
per-pixel case) and times

* **here**: ``nr.minimize_many`` in this process, on all its threads and on
  one;
* **on a LocalCluster** of ``workers`` processes x 1 thread (started here;
  its start is reported): the first call (the workers import the package,
  load the compiled loop from Numba's cache and compile the objective), then
  the best of ``repeat`` calls for each block size in ``block_sizes`` (None:
  the default ``runs_per_task``), every result checked bit for bit against
  the local one;
* **overheads**: a no-op task's round trip (``client.submit(...).result()``);
  the cost per block of ``minimize_many`` itself, from ``k_overhead`` runs of
  one step in blocks of one run (the caller's view: submission, scheduling,
  the block's pickles both ways, the join); and scattering a shared array of
  ``scatter_mb`` MiB to every worker (``client.scatter(..., broadcast=True)``).

On one machine the cluster cannot beat the threads of one process (the same
cores, plus the overheads above); a cluster pays off with more machines, or
objectives that hold the GIL. As a script (a child process per section, as
``report.py``)::

    python benchmarks/bench_dask.py --k 20000 --steps 200
    python -m benchmarks.report --sections dask
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

if __package__ in (None, ""):  # run as a file: python benchmarks/bench_dask.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import numba_rmsprop as nr  # noqa: E402

from . import common as C  # noqa: E402
from . import problems as Q  # noqa: E402


def _noop(x):
    return x


def _same(a, b) -> bool:
    return list(a) == list(b) and all(
        np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype
        if isinstance(a[k], np.ndarray)
        else a[k] == b[k]
        for k in a
    )


def measure(
    k=20000,
    steps=200,
    workers=2,
    repeat=3,
    block_sizes=(100, 1000, None),
    k_overhead=200,
    scatter_mb=64.0,
) -> dict:
    """The table of the module docstring; seconds unless named."""
    distributed = C.need("distributed")
    from numba_rmsprop.engine import threads as _threads
    from numba_rmsprop.many import dask as _dask

    t, Y, _ = Q.decay_data(k)
    X0 = Q.decay_start(k)
    opts = dict(learning_rate=0.05, maxiter=steps)

    def run(**kw):
        return nr.minimize_many(Q.decay_njit, X0, args=(t, Y), run_args=(1,), options=opts, **kw)

    out = {
        "setup": dict(
            k=k,
            steps=steps,
            workers=workers,
            threads_here=_threads.num_threads(),
            repeat=repeat,
            k_overhead=k_overhead,
            scatter_mb=scatter_mb,
        )
    }
    nr.minimize_many(
        Q.decay_njit, X0[:2], args=(t, Y[:2]), run_args=(1,), options=dict(opts, maxiter=3)
    )  # compile (or load) here first
    _, best, _, local = C.best_of(run, repeat)
    out["here, all threads"] = best
    os.environ["NUMBA_RMSPROP_NUM_THREADS"] = "1"
    try:
        out["here, 1 thread"] = C.best_of(run, repeat)[1]
    finally:
        del os.environ["NUMBA_RMSPROP_NUM_THREADS"]

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster, set_as_default=False)
    try:
        client.wait_for_workers(workers)
        out["cluster start"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = run(client=client)
        out["cluster, first call"] = time.perf_counter() - t0
        assert _same(first, local), "the cluster's result differs from the local one"
        for b in block_sizes:
            rpt = b if b is not None else _dask.default_runs_per_task(k, client)
            name = f"cluster, blocks of {rpt}" + (" (default)" if b is None else "")
            _, best, _, res = C.best_of(lambda b=b: run(client=client, runs_per_task=b), repeat)
            assert _same(res, local), name
            out[name] = best
            out[name + ", blocks"] = len(_dask.split(k, rpt))
        client.submit(_noop, 0, pure=False).result()
        out["no-op task round trip"] = C.best_of(
            lambda: client.submit(_noop, 0, pure=False).result(), 20
        )[1]
        ko = min(k_overhead, k)

        def tiny():
            return nr.minimize_many(
                Q.decay_njit,
                X0[:ko],
                args=(t, Y[:ko]),
                run_args=(1,),
                options=dict(opts, maxiter=1),
                client=client,
                runs_per_task=1,
            )

        out["minimize_many, per block (1-step runs)"] = C.best_of(tiny, repeat)[1] / ko
        big = np.ones(max(1, int(scatter_mb * 2**20) // 8))

        def scatter():
            f = client.scatter(big, broadcast=True, hash=False)
            del f

        out[f"scatter {scatter_mb:g} MiB to every worker"] = C.best_of(scatter, repeat)[1]
    finally:
        client.close()
        cluster.close()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=20000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    from . import report

    return report.main(
        [
            "--sections",
            "dask",
            "--set",
            f"dask.k={args.k}",
            f"dask.steps={args.steps}",
            f"dask.workers={args.workers}",
            f"dask.repeat={args.repeat}",
        ]
    )


if __name__ == "__main__":
    main()
