"""numba-cuda, when it can be imported: the ``cuda`` module, the simulator, and the check
that CUDA can be used (:func:`require_cuda`)."""

from __future__ import annotations

import sys
import threading

import numpy as np

#: How to get numba-cuda (the package is installed from a checkout, not from an index;
#: the version bounds are those of the ``cuda`` extra in pyproject.toml).
INSTALL_HINT = (
    '`pip install "numba-cuda>=0.30.4,<0.31"` (from a checkout of numba-rmsprop: '
    '`pip install -e ".[cuda]"`)'
)

try:
    from numba import cuda
except Exception as exc:  # numba-cuda (or its CUDA bindings) is not installed
    cuda = None
    _IMPORT_ERROR: Exception | None = exc
else:
    _IMPORT_ERROR = None


def _simulator_enabled() -> bool:
    try:
        from numba.cuda.core import config as cfg
    except ImportError:  # pragma: no cover - older layouts
        from numba.core import config as cfg
    return bool(getattr(cfg, "ENABLE_CUDASIM", 0))


SIM = cuda is not None and _simulator_enabled()


def _lock_simulator_shared_arrays() -> None:
    """Make the CUDA simulator hand every thread of a block the same shared array.

    The simulator runs each simulated GPU thread as a Python thread and
    creates a static ``cuda.shared.array`` lazily, per launch, keyed by the
    calling line: ``res = allocations.get(line)``; if None,
    ``res = np.empty(...)``; ``allocations[line] = res``. That
    check-then-store is not locked (numba-cuda 0.30.4). A GIL hand-off between
    the lookup and the store (Python switches threads after C calls such as
    ``dict.get`` and ``np.empty``) lets a second thread of the launch's first
    block also find nothing and allocate its own array; one of the two is
    then private to its thread. In ``sumsq`` that thread's partial sum never
    reaches the block's tree reduction, or it reads ``last`` from an
    uninitialised private array, so a variable's norm, and its clip factor,
    comes out wrong while the other variables are right. Here the same lookup
    (same key: the caller's file and line) runs under a lock.
    """
    from numba.cuda.simulator import kernelapi

    cls = kernelapi.FakeCUDAShared
    if getattr(cls, "_numba_rmsprop_locked", False):
        return
    if not isinstance(getattr(cls(0), "_allocations", None), dict):  # pragma: no cover
        return  # another simulator layout: leave it alone
    original = cls.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory / unsupported
            return original(self, shape, dtype, alignment)
        allocations = self._allocations
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        with lock:
            res = allocations.get(key)
            if res is None:
                res = allocations[key] = np.empty(shape, dtype)
        return res

    cls.array = array
    cls._numba_rmsprop_locked = True


if SIM:
    _lock_simulator_shared_arrays()


def require_cuda() -> None:
    """Raise a clear error unless CUDA can be used (the simulator counts)."""
    if cuda is None:
        raise ImportError(
            "device='cuda' needs numba-cuda, which could not be imported "
            f"({type(_IMPORT_ERROR).__name__}: {_IMPORT_ERROR}). Install it with "
            f"{INSTALL_HINT}."
        )
    if SIM:
        return
    try:
        available = cuda.is_available()
    except Exception:  # pragma: no cover - is_available already catches
        available = False
    if available:
        return
    try:
        reason = cuda.cuda_error()
    except Exception:  # pragma: no cover
        reason = None
    if reason:
        what = "the CUDA driver could not be initialised: " + " ".join(str(reason).split()).rstrip(
            ":. "
        )
    else:
        what = "no CUDA-capable GPU is visible (the driver loaded but reports no device)"
    raise RuntimeError(
        f"device='cuda' cannot be used: {what}. An NVIDIA GPU with its driver is needed "
        f"(check `nvidia-smi`); numba-cuda itself is installed with {INSTALL_HINT}."
    )
