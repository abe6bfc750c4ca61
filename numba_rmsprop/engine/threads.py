"""The thread policy: when the CPU kernels use threads, which threads, and how many.

Threads are shared: with BLAS (NumPy's matmuls between two training steps keep
OpenBLAS's pool spinning for a while after each call), with other processes,
and with the user's own code. A ``prange`` launch is only worth it where it
wins in such a loop, not only alone on a quiet machine:

* **Which variables.** Only variables of at least
  ``config.PARALLEL_THRESHOLD_BYTES`` take the ``prange`` kernels; smaller
  ones take the serial (vectorised) kernels. The default is set from the
  crossover measured *in a training loop with BLAS between the steps*
  (``python -m benchmarks.report --preset threads``).
* **Which layer.** Before the first launch the package asks Numba for a
  thread-safe layer: TBB when it can be loaded (its work stealing lets the
  launching thread finish the work itself when the other cores are busy),
  else OpenMP (whose team waits for every thread: if one is descheduled the
  launch stalls for a scheduler time slice, milliseconds). The ``tbb`` wheel
  puts ``libtbb`` in the environment's ``lib`` folder, where the loader does
  not look; it is loaded from there by path (:func:`_load_tbb`). A layer the
  user chose (``NUMBA_THREADING_LAYER`` or ``numba.config.THREADING_LAYER``)
  is left alone. If only ``workqueue`` loads, launches are serialised: it
  aborts the process on concurrent launches.
* **How many threads.** :func:`num_threads`: ``NUMBA_RMSPROP_NUM_THREADS``
  (read at call time), else Numba's thread count for the calling thread
  (``numba.set_num_threads``), and never more than a
  ``threadpoolctl.threadpool_limits`` limit: :func:`register_threadpoolctl`
  makes the package's kernels one of threadpoolctl's pools (``user_api``
  ``"numba_rmsprop"``), so ``threadpool_limits(1)`` limits them with BLAS.
  It is called at the package's import and at the first threaded launch when
  threadpoolctl is imported by then (the package never imports it itself).
  :func:`limited` caps the launches of one thread (a Dask task's blocks run
  on one thread each).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading

import numba

from . import config

_LAUNCH_LOCK = threading.Lock()
_launch_is_threadsafe = False
_layer_requested = False
#: A thread limit set through threadpoolctl (None: no limit).
_limit = None
#: ``.limit``: a limit for launches from this thread only (:func:`limited`).
_here = threading.local()


def _user_chose_layer() -> bool:
    return "NUMBA_THREADING_LAYER" in os.environ or numba.config.THREADING_LAYER != "default"


def _load_tbb() -> bool:
    """Load ``libtbb`` from the ``tbb`` wheel by path, so that Numba's TBB layer finds it.

    pip puts the library in ``<env>/lib``, which is not on the loader's path
    outside conda. Returns whether a TBB library is now loaded.
    """
    name = {"win32": "tbb12.dll", "darwin": "libtbb.12.dylib"}.get(sys.platform, "libtbb.so.12")
    try:
        ctypes.CDLL(name)  # already loadable (conda, system TBB, LD_LIBRARY_PATH)
        return True
    except OSError:
        pass
    try:
        from importlib import metadata

        files = metadata.distribution("tbb").files or ()
    except Exception:  # tbb is not installed
        return False
    for f in files:
        if f.name == name:
            try:
                ctypes.CDLL(str(f.locate()), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
                return True
            except OSError:
                return False
    return False


def request_layer() -> None:
    """Before the first ``prange`` launch: a thread-safe layer, TBB first (see the module doc)."""
    global _layer_requested
    if _layer_requested:
        return
    _layer_requested = True
    chosen = os.environ.get("NUMBA_THREADING_LAYER", numba.config.THREADING_LAYER).lower()
    if chosen in ("default", "tbb", "safe", "threadsafe"):
        _load_tbb()  # a layer that may be TBB: make TBB loadable
    if not _user_chose_layer():
        numba.config.THREADING_LAYER = config.THREADING_LAYER


def num_threads() -> int:
    """Threads for the next launch from this thread (see the module doc)."""
    n = numba.get_num_threads()
    wanted = os.environ.get("NUMBA_RMSPROP_NUM_THREADS")
    if wanted:
        n = min(n, max(1, int(wanted)))
    if _limit is not None:
        n = min(n, max(1, _limit))
    here = getattr(_here, "limit", None)
    if here is not None:
        n = min(n, here)
    return n


@contextlib.contextmanager
def limited(n: int):
    """At most ``n`` threads for the launches made from this thread, inside the block.

    For code that runs on one thread of a larger pool (a Dask worker's task):
    the pool's threads are the parallelism, and other threads of the process
    keep their own limits.
    """
    before = getattr(_here, "limit", None)
    _here.limit = max(1, int(n)) if before is None else min(before, max(1, int(n)))
    try:
        yield
    finally:
        _here.limit = before


def launch_parallel(kernel, *args):
    """Call a ``parallel=True`` kernel (its last argument: the chunk count) safely.

    Until a thread-safe layer (TBB or OpenMP) is known to be active, launches
    are serialised under a lock; if none can be loaded, fall back to
    workqueue and keep serialising, so concurrent launches never abort the
    process.
    """
    global _launch_is_threadsafe
    if _launch_is_threadsafe:
        return kernel(*args, num_threads())
    with _LAUNCH_LOCK:
        request_layer()
        if "threadpoolctl" in sys.modules:
            register_threadpoolctl()
        try:
            result = kernel(*args, num_threads())
        except ValueError as exc:  # "No threading layer could be loaded"
            if "threading layer" not in str(exc):
                raise
            numba.config.THREADING_LAYER = "workqueue"
            result = kernel(*args, num_threads())
        _launch_is_threadsafe = numba.threading_layer() in ("tbb", "omp")
        return result


# ------------------------------------------------------------------ chunks
_POOL = None
_POOL_LOCK = threading.Lock()


def chunk_bounds(m: int, threads: int) -> list[tuple[int, int]]:
    """Guided chunks of ``range(m)`` for ``threads`` threads, longest first.

    Each chunk is a ``1 / (2 * threads)`` share of what is left, and none is
    shorter than ``m / (16 * threads)``: few chunks (a dozen for two threads),
    and a short last one, so that a thread that was slower (descheduled, or
    sharing its core) leaves the other at most a sixteenth of its work to
    wait for. Equal chunks, four per thread, left one thread with five and
    the other three whenever one ran 10 % slower: 1.6x on two threads.
    """
    smallest = max(1, m // (16 * threads))
    bounds, lo = [], 0
    while lo < m:
        hi = min(m, lo + max(smallest, (m - lo) // (2 * threads)))
        bounds.append((lo, hi))
        lo = hi
    return bounds


def run_chunks(kernel, m: int, *args) -> None:
    """``kernel(*args, lo, hi)`` over :func:`chunk_bounds` of ``range(m)`` on
    :func:`num_threads` threads.

    For ``nogil`` kernels whose chunks are independent and long (the
    ``minimize_many`` loops). Python threads wait on a lock when idle, so
    nothing spins beside BLAS; the chunks are taken in turn, longest first.
    Exceptions of a chunk are raised here.
    """
    threads = min(num_threads(), m)
    if threads <= 1:
        kernel(*args, 0, m)
        return
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < threads:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="numba_rmsprop")
        pool = _POOL
    futures = [pool.submit(kernel, *args, lo, hi) for lo, hi in chunk_bounds(m, threads)]
    for f in futures:
        f.result()


# ------------------------------------------------------------------ threadpoolctl
_registered = False


def register_threadpoolctl() -> bool:
    """Make threadpoolctl see and limit the package's thread pool; False without threadpoolctl.

    The pool appears once a parallel kernel has run (threadpoolctl finds
    pools by their loaded shared libraries: Numba's ``tbbpool``,
    ``omppool`` or ``workqueue``).
    """
    global _registered
    if _registered:
        return True
    try:
        import threadpoolctl
    except ImportError:
        return False
    if not hasattr(threadpoolctl, "register"):  # threadpoolctl < 3.4
        return False

    class NumbaRMSpropController(threadpoolctl.LibController):
        """numba-rmsprop's kernels, on Numba's thread pool."""

        user_api = "numba_rmsprop"
        internal_api = "numba"
        filename_prefixes = ("tbbpool", "omppool", "workqueue")

        def get_num_threads(self):
            return num_threads()

        def set_num_threads(self, num_threads):
            global _limit
            _limit = None if num_threads is None else int(num_threads)

        def get_version(self):
            return numba.__version__

    threadpoolctl.register(NumbaRMSpropController)
    _registered = True
    return True
