"""numba-rmsprop: Keras 3's RMSprop, exact, on fused Numba kernels.

Public names
------------
RMSprop
    The optimizer (NumPy arrays on CPU threads; CUDA device arrays on GPUs).
schedules
    ``LearningRateSchedule`` and the six Keras schedules.
minimize, rmsprop
    The ``scipy.optimize.minimize``-compatible front end.
"""

from . import schedules
from .optimizer import RMSprop

__version__ = "0.1.0"


def __getattr__(name):
    # The front end imports SciPy; load it on first use only.
    if name in ("minimize", "rmsprop"):
        from . import optimize as _front

        return getattr(_front, name)
    raise AttributeError(f"module 'numba_rmsprop' has no attribute {name!r}")


__all__ = ["RMSprop", "schedules", "minimize", "rmsprop", "__version__"]
