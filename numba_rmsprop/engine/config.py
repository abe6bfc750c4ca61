"""Package-wide defaults, in one place (as STUMPY keeps its ``config``).

Every tunable the engine reads lives here so that tests, benchmarks and users
can see and override it without hunting through kernels.
"""

from __future__ import annotations

import os

#: Variables of at least this many bytes take the ``prange`` kernels; smaller
#: ones take the serial (still vectorised) twins. Measured on a 2-core
#: machine (``python -m benchmarks.report --sections threshold training``):
#: alone on a quiet machine threads start to pay at ~256 KiB, but in a
#: training loop, where OpenBLAS's threads spin on the other cores after
#: each matmul, a launch on the OpenMP layer waited 3-10 ms for its team at
#: every size up to 16 MiB (the 784-128-10 MLP loop ran 12x slower than
#: serial), and on TBB threads gained at most 1.2x there. From 32 MiB on a
#: launch costs less than the pass itself and threads still win alone (the
#: 10M-element update). Override with ``NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES``.
PARALLEL_THRESHOLD_BYTES: int = int(
    os.environ.get("NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES", 32 << 20)
)

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
