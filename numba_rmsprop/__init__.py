"""numba-rmsprop: Keras 3's RMSprop, exact, on fused Numba kernels.

Public names
------------
RMSprop
    The optimizer (NumPy arrays on CPU threads; CUDA device arrays on GPUs).
schedules
    ``LearningRateSchedule`` and the six Keras schedules.
minimize, rmsprop
    The ``scipy.optimize.minimize``-compatible front end.
minimize_many
    Many independent ``minimize`` runs at once (CPU threads, or a GPU).
OptimizeResult
    What they return: a dict whose keys are also attributes, as scipy's.
register_threadpoolctl
    Let ``threadpoolctl.threadpool_limits`` limit the package's threads too
    (done automatically when threadpoolctl is imported first).
"""

import sys as _sys
from typing import TYPE_CHECKING as _TYPE_CHECKING

from .engine import cache_lock as _cache_lock

_cache_lock.install()  # before anything compiles: processes can share a cache (numba#4807)

from . import schedules  # noqa: E402
from .engine.threads import register_threadpoolctl  # noqa: E402
from .optimizer import RMSprop  # noqa: E402

if _TYPE_CHECKING:  # what __getattr__ below gives, for type checkers
    from .frontend.api import minimize, rmsprop
    from .frontend.result import OptimizeResult
    from .many import minimize_many

if "threadpoolctl" in _sys.modules:
    register_threadpoolctl()

__version__ = "0.1.0"


def __getattr__(name):
    # The front end and many runs: loaded on first use (import numba_rmsprop stays small).
    if name in ("minimize", "rmsprop"):
        from .frontend import api as _front

        return getattr(_front, name)
    if name == "OptimizeResult":
        from .frontend.result import OptimizeResult

        return OptimizeResult
    if name == "minimize_many":
        from .many import minimize_many

        return minimize_many
    raise AttributeError(f"module 'numba_rmsprop' has no attribute {name!r}")


__all__ = [
    "RMSprop",
    "schedules",
    "minimize",
    "rmsprop",
    "minimize_many",
    "OptimizeResult",
    "register_threadpoolctl",
    "__version__",
]
