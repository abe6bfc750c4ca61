"""Package-wide defaults, in one place (as STUMPY keeps its ``config``).

Every tunable the engine reads lives here so that tests, benchmarks and users
can see and override it without hunting through kernels.
"""

from __future__ import annotations

import os

#: Variables of at least this many bytes take the ``prange`` kernels; smaller
#: ones take the serial (still vectorised) twins, because a parallel launch
#: costs a few microseconds. The serial/parallel crossover measured on a
#: 2-core machine (``benchmarks/bench_kernels.py --sections threshold``) was
#: ~16k float32 and ~7k float64 elements: about 64 KiB for both. Override with
#: ``NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES``.
PARALLEL_THRESHOLD_BYTES: int = int(os.environ.get("NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES", 65536))

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
