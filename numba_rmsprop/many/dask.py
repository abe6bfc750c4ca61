"""``minimize_many(..., client=client)``: the runs as tasks of a Dask cluster.

Imported only when ``client`` is given: ``import numba_rmsprop`` never imports
dask.

How it runs
-----------
1. **Checks, all of them, first.** The local call's checks (a
   :class:`numba_rmsprop.many.batch.Batch` is built, and not run), then what the
   cluster needs: ``client`` a synchronous, open ``distributed.Client``;
   ``runs_per_task`` an integer >= 1; no ``callback`` (it would run on the
   workers), no CUDA ``X0``; ``fun`` (and a callable ``jac``) pickles. Nothing
   is scattered or submitted before all of them pass.
2. **Shared arguments once.** The arguments every run shares (those not in
   ``run_args``) are scattered to every worker once
   (``client.scatter(..., broadcast=True)``) and reach the tasks as futures:
   a large design matrix crosses the network once per worker, not once per
   task.
3. **Blocks.** The runs are cut into consecutive blocks: run 0 alone (the
   *warm-up*), then blocks of ``runs_per_task`` runs. All are submitted at
   once, but the other blocks depend on the warm-up's (small) result, so it
   runs first, alone: its worker compiles the loop and writes Numba's
   on-disk cache, and the other workers of that machine then load the
   compiled code instead of compiling it at the same time into one cache
   directory (numba/numba#4807); an objective that fails on the workers (a
   module they cannot import) fails there first.
4. **Each task** is the local ``minimize_many`` of its block -- the block's
   rows of ``X0`` and of the ``run_args``, the block's slice of every
   per-run option, the shared arguments and options -- on one thread of its
   worker (a worker runs as many blocks at once as it has threads). Dask
   arrays in ``run_args`` are sliced here and read by the worker that runs
   the block (``compute(scheduler="sync")``, in the task).
5. **Results by block index**, joined in run order; warnings the blocks
   raised (a fallback to per-run ``nr.minimize``, say) are raised again here,
   once each.

Same numbers
------------
Runs are independent: run ``i``'s result depends on its own start, rows,
options and seed only (that is ``minimize_many``'s defining rule), never on
the other runs of its block, on the block size, on the worker or on its
threads. One shared ``seed`` gives every run the ``default_rng(seed)`` order
of ``nr.minimize``, which each block draws anew. So the joined result is bit
for bit the local one, for any ``runs_per_task`` and number of workers.
``seed=None`` with ``batch_size`` draws fresh entropy per run, locally as on
the cluster: not reproducible by definition, and a block run again after a
fault draws anew.

Faults
------
A block is a deterministic function of what its task carries and of the
shared arguments. When a worker dies, the scheduler runs the blocks it held
again elsewhere (up to ``distributed.scheduler.allowed-failures`` times),
with the same results. Scattered data cannot be recomputed, and Dask's
active memory manager drops the copies of it that no waiting task needs: if
the dead worker held the last copy, the blocks that need it are cancelled;
they are submitted again after one new scatter (at most
:data:`MAX_SCATTERS` scatters per call). Each block's result is taken once,
into its block's rows, whichever attempt delivers it: no run is lost or
duplicated. A block that raises fails the call with the block's exception
(the other blocks are cancelled).
"""

from __future__ import annotations

import math
import sys
import uuid
import warnings
from collections.abc import Sequence

import numpy as np

from ..composition import refuse
from ..engine import threads as _threads
from ..engine.hyperparameters import integer
from ..frontend.data import positions
from ..frontend.result import OptimizeResult
from .batch import Batch
from .options import is_device_array, take_runs

#: Blocks per worker thread with the default ``runs_per_task``: enough for
#: runs that stop early (blocks of unequal cost) to even out across threads.
TASKS_PER_THREAD = 4
#: Fewest runs per block with the default ``runs_per_task``: a task costs a
#: few milliseconds of scheduling and transfer, which a block should outweigh
#: (``benchmarks/bench_dask.py`` measures it).
MIN_RUNS_PER_TASK = 32
#: Threads a block's loop uses on its worker.
THREADS_PER_TASK = 1
#: Scatters of the shared arguments per call: the first, and again after each loss of
#: their last copy (a block of the lost generation fails then).
MAX_SCATTERS = 4


def minimize_many(
    fun, X0, args, jac, bounds, options, run_args, vectorized, callback, client, runs_per_task
) -> OptimizeResult:
    """:func:`numba_rmsprop.minimize_many` with ``client`` (see the module docstring)."""
    _check_client(client)
    runs_per_task = integer(1, optional=True)("runs_per_task", runs_per_task)
    refuse("many_client", {"callback"} if callback is not None else set())
    if is_device_array(X0):
        raise ValueError(
            "A CUDA `X0` cannot be sent to a Dask cluster: pass a NumPy `X0` "
            "(the blocks run on the workers' CPUs), or run on this GPU without "
            "`client`."
        )
    loader = options.get("client")
    if loader is not None and not (isinstance(loader, str) and loader == "local"):
        raise ValueError(
            "`options['client']` (who loads streamed dask arrays) cannot go to "
            "the workers with `client`: leave it out (runs on a worker load "
            "their chunks in the worker)."
        )
    rows = {j: args[j] for j in _positions(args, run_args)}
    lazy = {j: a for j, a in rows.items() if _is_dask(a)}
    # The local call's checks, on the same inputs; dask rows stand in by their shape.
    batch = Batch(fun, X0, _stand_ins(args, lazy), jac, bounds, options, run_args, vectorized, None)
    seed = batch.options0.get("seed")
    if (
        isinstance(seed, (np.random.Generator, np.random.BitGenerator))
        and batch.options0.get("batch_size") is not None
    ):
        raise TypeError(
            "`seed` must be an integer (or one per run) with `client`: one "
            "Generator cannot be shared by runs on different workers."
        )
    _check_pickles(fun, "fun")
    if callable(jac) and jac is not True:
        _check_pickles(jac, "jac")
    k = batch.k
    if runs_per_task is None:
        runs_per_task = default_runs_per_task(k, client)
    blocks = split(k, runs_per_task)
    return _Run(client, fun, batch, args, lazy, jac, bounds, vectorized, blocks).solve()


def default_runs_per_task(k: int, client) -> int:
    """``ceil(k / (TASKS_PER_THREAD * threads))``, at least ``MIN_RUNS_PER_TASK``."""
    threads = max(1, sum(client.nthreads().values()))
    return max(MIN_RUNS_PER_TASK, math.ceil(k / (TASKS_PER_THREAD * threads)))


def split(k: int, runs_per_task: int) -> list:
    """The blocks ``(start, stop)``: run 0 alone (the warm-up), then ``runs_per_task`` each."""
    return [(0, 1)] + [(s, min(s + runs_per_task, k)) for s in range(1, k, runs_per_task)]


# ===================================================================== checks
def _check_client(client) -> None:
    dist = sys.modules.get("distributed")  # a Client exists only once it is imported
    if dist is None or not isinstance(client, dist.Client):
        raise TypeError(
            '`client` must be a dask.distributed.Client (Client("tcp://scheduler:8786") for '
            "a cluster, Client(LocalCluster()) on this machine) or None (run here); got "
            f"{client!r}."
        )
    if client.asynchronous:
        raise ValueError(
            "`client` must be a synchronous Client: minimize_many waits for "
            "its blocks (use Client(..., asynchronous=False))."
        )
    if client.status in ("closing", "closed"):
        raise ValueError(f"`client` is {client.status}.")


def _check_pickles(obj, name: str) -> None:
    """``obj`` pickles as ``distributed`` sends it (cloudpickle), or a TypeError that says why."""
    import cloudpickle

    try:
        cloudpickle.dumps(obj)
    except Exception as exc:
        raise TypeError(
            f"`{name}` cannot be sent to the Dask workers: it does not pickle "
            f"({type(exc).__name__}: {exc}). Define it at the top level of a module the "
            "workers can import (or of the script you run), without references to objects "
            "that do not pickle (locks, open files, clients, GPU handles)."
        ) from None


def _positions(args, run_args) -> tuple:
    """The ``run_args`` positions as the local checks take them (errors left to them)."""
    try:
        pos = [e[0] if isinstance(e, (tuple, list)) and e else e for e in run_args]
        return tuple(positions(args, pos, "run_args"))
    except (TypeError, ValueError):  # the local checks say what is wrong
        return ()


def _is_dask(a) -> bool:
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(a, da.Array)


class _ShapeOnly:
    """A dask array in ``run_args`` for the local checks: its shape and dtype, no data."""

    def __init__(self, a):
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim

    def __getitem__(self, i):  # the shape of what indexing would give; no memory
        return np.broadcast_to(np.zeros((), self.dtype), self.shape)[i]


def _stand_ins(args, lazy) -> tuple:
    return tuple(_ShapeOnly(a) if j in lazy else a for j, a in enumerate(args))


# ===================================================================== the run
class _Carried:
    """A dask array in a task: rows of a ``run_args`` one to read (by the worker that runs
    the block), or a shared one to pass on as it is (each run streams it, as locally).
    Wrapped, so that ``distributed`` ships it as an object and does not look inside."""

    def __init__(self, array, read: bool):
        self.array, self.read = array, read

    def load(self):
        return np.asarray(self.array.compute(scheduler="sync")) if self.read else self.array


def run_block(fun, X0, args, jac, bounds, options, run_args, vectorized, after=None):
    """One task: the local ``minimize_many`` of a block, and the warnings it raised.

    ``after``: the warm-up block's result, when this block waits for it (unused).
    """
    args = tuple(a.load() if isinstance(a, _Carried) else a for a in args)
    with _threads.limited(THREADS_PER_TASK), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = Batch(fun, X0, args, jac, bounds, options, run_args, vectorized, None).solve()
    # the caller warns of unknown options (an OptimizeWarning: scipy.optimize is loaded then)
    optimize = sys.modules.get("scipy.optimize")
    quiet = (DeprecationWarning, PendingDeprecationWarning)
    quiet += (optimize.OptimizeWarning,) if optimize is not None else ()
    return res, [
        (w.category, str(w.message))
        for w in caught  # warned of unknown options
        if not issubclass(w.category, quiet)
    ]


class _Run:
    def __init__(self, client, fun, batch, args, lazy, jac, bounds, vectorized, blocks):
        self.client, self.fun, self.batch = client, fun, batch
        self.args, self.lazy = args, lazy
        self.jac, self.bounds, self.vectorized = jac, bounds, vectorized
        self.blocks = blocks
        self.name = f"minimize_many-block-{uuid.uuid4().hex}"

    def solve(self) -> OptimizeResult:
        from distributed import as_completed

        try:
            from distributed.client import FutureCancelledError as Cancelled
        except ImportError:  # pragma: no cover - older distributed
            from concurrent.futures import CancelledError as Cancelled

        self._scatter()
        results = [None] * len(self.blocks)
        pending = {}  # future -> (block, scatter generation)
        bar = self.batch._progress("block", len(self.blocks))  # one display: blocks done

        def submit(i, after=None):
            f = self._submit(i, after)
            pending[f] = (i, self.generation)
            return f

        try:
            warm = submit(0)  # the warm-up: the other blocks wait for it (a dependency)
            flow = as_completed(
                [warm] + [submit(i, warm) for i in range(1, len(self.blocks))],
                loop=self.client.loop,
            )
            del warm
            for f in flow:
                i, generation = pending.pop(f)
                try:
                    results[i] = f.result()
                except Cancelled as exc:
                    # The block's shared arguments were lost (their last copy was on a
                    # worker that died): scatter them again, once per loss, and resubmit.
                    if generation == self.generation:
                        if self.generation >= MAX_SCATTERS - 1:
                            raise RuntimeError(
                                f"minimize_many: block {i} was cancelled by the cluster "
                                f"({exc}) after {MAX_SCATTERS} scatters of the shared "
                                "arguments: workers keep dying with their last copy (or the "
                                "cluster was restarted)."
                            ) from exc
                        self._scatter()
                    flow.add(submit(i))
                    continue
                except ModuleNotFoundError as exc:
                    if hasattr(exc, "add_note"):  # Python >= 3.11
                        exc.add_note(
                            "numba_rmsprop: the blocks of minimize_many run on the "
                            "Dask workers, which must be able to import the modules "
                            "`fun` refers to (install them there, or define `fun` "
                            "in the script you run)."
                        )
                    raise
                del f  # its result is here: the cluster may forget it
                if bar is not None:
                    done = [r for r in results if r is not None]
                    left = sum(
                        e - s for (s, e), r in zip(self.blocks, results, strict=True) if r is None
                    )
                    fun = np.concatenate([r.fun for r, _ in done])
                    bar.update(bar.done + 1, **self.batch.summary(left, fun))
        finally:
            if pending:  # an error (or an interrupt): stop the rest
                self.client.cancel(list(pending))
            if bar is not None:
                bar.close()
            self.shared = {}
        seen = set()
        for _, caught in results:
            for category, message in caught:
                if (category, message) not in seen:
                    seen.add((category, message))
                    warnings.warn(message, category, stacklevel=4)
        return join([r for r, _ in results])

    def _scatter(self) -> None:
        """The shared arguments to every worker, as futures (a new generation of them).

        ``hash=False``: keys of this scatter's own (data scattered earlier, maybe by an
        earlier call, may still be on its way out of the cluster: a hashed key would
        collide with it). ``broadcast``: every worker gets a copy now; Dask's memory
        manager may later drop copies that no waiting task needs, so a worker that dies
        can take the last copy with it (``solve`` then scatters again).
        """
        b = self.batch
        shared = [
            j for j in range(len(self.args)) if j not in b.run_pos and not _is_dask(self.args[j])
        ]
        futures = (
            self.client.scatter([self.args[j] for j in shared], broadcast=True, hash=False)
            if shared
            else []
        )
        self.shared = dict(zip(shared, futures, strict=False))
        self.generation = getattr(self, "generation", -1) + 1

    def _submit(self, i, after=None):
        b = self.batch
        s, e = self.blocks[i]
        args = []
        for j, a in enumerate(self.args):
            if j in self.shared:
                args.append(self.shared[j])
            elif j in self.lazy:
                args.append(_Carried(take_runs(a, b.run_axis[j], slice(s, e)), read=True))
            elif j in b.run_pos:
                args.append(take_runs(a, b.run_axis[j], slice(s, e)))
            else:  # a shared dask array
                args.append(_Carried(a, read=False))
        options = dict(b.shared, disp=False)
        for name, values in b.per_run.items():
            options[name] = values[s:e]
        if b.resumed is not None:  # this block's runs' checkpoints
            options["resume"] = b.resumed[s:e]
        return self.client.submit(
            run_block,
            self.fun,
            b.X0[s:e],
            args,
            self.jac,
            self.bounds,
            options,
            tuple(b.run_axis.items()),
            self.vectorized,
            after,
            key=f"{self.name}-{self.generation}-{i}",
            pure=False,
        )


def join(results) -> OptimizeResult:
    """The blocks' results as one, in run order (arrays concatenated, lists joined)."""
    out = OptimizeResult()
    for name, value in results[0].items():
        parts = [r[name] for r in results]
        if isinstance(value, np.ndarray):
            out[name] = np.concatenate(parts)
        elif isinstance(value, Sequence):  # a list, or the checkpoints made on reading
            out[name] = [np.array(v) if isinstance(v, np.ndarray) else v for p in parts for v in p]
        else:  # pragma: no cover - every field of a batched result is one of the above
            raise TypeError(f"Cannot join the field {name!r} of the blocks' results.")
    return out
