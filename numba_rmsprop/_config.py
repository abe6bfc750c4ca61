"""Package-wide defaults, in one place (as STUMPY keeps its ``config``).

Every tunable the engine reads lives here so that tests, benchmarks and users
can see and override it without hunting through kernels.
"""

from __future__ import annotations

import os

#: Variables with at least this many elements take the ``prange`` kernels;
#: smaller ones take the serial (still vectorised) twins, because a parallel
#: launch costs a few microseconds. Measured on a 2-core machine with
#: ``benchmarks/threshold.py``; override with ``NUMBA_RMSPROP_PARALLEL_THRESHOLD``.
PARALLEL_THRESHOLD: int = int(os.environ.get("NUMBA_RMSPROP_PARALLEL_THRESHOLD", 50_000))

#: Numba threading layer requested before the first parallel launch, unless the
#: user already chose one with ``NUMBA_THREADING_LAYER``. ``"threadsafe"`` picks
#: TBB or OpenMP; both survive concurrent launches from several Python threads,
#: whereas the default ``workqueue`` layer aborts the process.
THREADING_LAYER: str = "threadsafe"

#: Threads per block for the CUDA kernels.
CUDA_THREADS_PER_BLOCK: int = 256

#: Whether compiled kernels are cached on disk (``cache=True``). Set
#: ``NUMBA_CACHE_DIR`` to a writable folder for read-only installs.
CACHE: bool = os.environ.get("NUMBA_RMSPROP_NO_CACHE", "") == ""
