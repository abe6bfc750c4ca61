"""Device arrays: wrapping, memory order, identity.

Variables and gradients may be numba device arrays or any object with
``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA tensors, ...). Those
are wrapped zero-copy with ``cuda.as_cuda_array``; the user's object stays the
variable and is updated in place. Optimizer state lives in numba device
arrays in the variable's memory order. Strided (non-contiguous) variables and
gradients whose layout differs from their variable's go through a contiguous
work copy made on the device (up to 4 dimensions).
"""

from __future__ import annotations

import numpy as np

from .driver import SIM as _SIM
from .driver import cuda


def _numba_array_types() -> tuple:
    types = []
    if _SIM:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        types.append(FakeCUDAArray)
    else:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray

        types.append(DeviceNDArray)
    return tuple(types)


_NUMBA_TYPES: tuple = _numba_array_types() if cuda is not None else ()


def as_device(a):
    """A numba device array viewing ``a`` (zero-copy; ``a`` itself when it already is one)."""
    if isinstance(a, _NUMBA_TYPES):
        return a
    if not _SIM and hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a)
    raise TypeError(f"expected a CUDA device array; got {type(a).__name__}.")


def _order_of(d) -> str | None:
    if d.is_c_contiguous():
        return "C"
    if d.is_f_contiguous():
        return "F"
    return None


def _contiguous_in(d, order: str) -> bool:
    if d.ndim <= 1 or d.size <= 1:
        return d.is_c_contiguous() or d.size <= 1
    return d.is_c_contiguous() if order == "C" else d.is_f_contiguous()


def _flat_view(d, order: str):
    """1-D view of a device array contiguous in ``order``."""
    if d.ndim == 1:
        return d
    return d.reshape(d.size, order=order)


def _pointer(a) -> int:
    if _SIM:
        return int(a.__array_interface__["data"][0])
    return int(a.__cuda_array_interface__["data"][0])


def _describe(a):
    """``(pointer, shape, strides, dtype)`` of a device array, for identity checks."""
    d = as_device(a)
    return (_pointer(d), tuple(d.shape), tuple(d.strides), np.dtype(d.dtype))


def device_id(a):
    """Ordinal of the GPU holding ``a``'s memory, or None when it cannot be told."""
    if _SIM:
        return 0
    try:
        ptr = int(a.__cuda_array_interface__["data"][0])
        if ptr:
            from numba.cuda.cudadrv import driver as drv

            attr = drv.binding.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
            return int(drv.driver.cuPointerGetAttribute(attr, drv.binding.CUdeviceptr(ptr)))
    except Exception:
        pass
    dev = getattr(a, "device", None)  # torch.device(.index), cupy.cuda.Device(.id)
    for name in ("index", "id"):
        v = getattr(dev, name, None)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return int(v)
    return None
