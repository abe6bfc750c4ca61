"""Which device an array lives on, and the dtype/shape/layout checks.

Nothing here allocates or copies a variable; these are the checks that run
before any state changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_cuda_array(a: Any) -> bool:
    """True for numba device arrays (real or simulated) and ``__cuda_array_interface__`` objects.

    The CUDA simulator's ``FakeCUDAArray`` has no ``__cuda_array_interface__``,
    so numba's own device-array types are recognised by type as well. numba's
    CUDA module is only consulted when it is already imported.
    """
    if isinstance(a, np.ndarray):
        return False
    try:
        if hasattr(a, "__cuda_array_interface__"):
            return True
    except RuntimeError:
        # torch raises here for CUDA tensors that require grad
        raise TypeError(
            "a CUDA tensor that requires grad cannot be updated in place by the optimizer; "
            "pass tensor.detach() (it shares memory)."
        ) from None
    import sys

    if "numba.cuda" not in sys.modules:
        return False
    try:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        if isinstance(a, FakeCUDAArray):
            return True
    except Exception:  # pragma: no cover - depends on numba-cuda layout
        pass
    try:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray

        return isinstance(a, DeviceNDArray)
    except Exception:  # pragma: no cover
        return False


def device_of(a: Any) -> str:
    """``"cuda"`` for device arrays, ``"cpu"`` for NumPy arrays."""
    return "cuda" if is_cuda_array(a) else "cpu"


def check_float_dtype(dtype: Any, what: str) -> np.dtype:
    """Return ``dtype`` if it is float32 or float64, else raise ``TypeError``."""
    dt = np.dtype(dtype)
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{what} must have dtype float32 or float64; got {dt}.")
    return dt


#: ndarray subclasses whose arithmetic or meaning differs from a plain array's.
_NOT_PLAIN = (np.matrix, np.ma.MaskedArray)


def check_variable(x: Any, index: int) -> None:
    """A host variable must be a writeable float32/float64 ``numpy.ndarray`` (a plain one:
    ``np.matrix`` and masked arrays are refused, ``np.memmap`` is fine)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"variables[{index}] must be a numpy.ndarray (or a CUDA device array); "
            f"got {type(x).__name__}. Variables are updated in place, so they "
            "cannot be lists or scalars."
        )
    if isinstance(x, _NOT_PLAIN):
        why = (
            "its mask would be ignored"
            if isinstance(x, np.ma.MaskedArray)
            else ("it keeps two dimensions under every operation")
        )
        raise TypeError(
            f"variables[{index}] is a {type(x).__module__}.{type(x).__name__}, not a plain "
            f"numpy.ndarray ({why}). Pass `np.asarray(x)`: a view of the same memory, still "
            "updated in place."
        )
    check_float_dtype(x.dtype, f"variables[{index}]")
    if not x.flags.writeable:
        raise ValueError(
            f"variables[{index}] is read-only; the optimizer updates variables in place."
        )


def check_disjoint(variables) -> None:
    """No two host variables share memory (overlapping views would be updated twice).

    Only arrays over one buffer are compared, exactly (``np.shares_memory``), so
    interleaved views such as ``a[::2]`` and ``a[1::2]`` are fine.
    """
    by_buffer: dict = {}
    for i, x in enumerate(variables):
        root = x
        while isinstance(root, np.ndarray) and root.base is not None:
            root = root.base
        by_buffer.setdefault(id(root), []).append(i)
    for idx in by_buffer.values():
        for a, i in enumerate(idx):
            for j in idx[a + 1 :]:
                if np.shares_memory(variables[i], variables[j]):
                    raise ValueError(
                        f"variables[{i}] and variables[{j}] share memory (overlapping views of "
                        "one array): each would be updated as if the other did not exist. Pass "
                        "disjoint arrays (or one array for the whole buffer)."
                    )


def as_gradient(g: Any, x: Any, index: int) -> np.ndarray:
    """Return gradient ``g`` as an ndarray matching variable ``x`` in shape and dtype."""
    if not isinstance(g, np.ndarray):
        if is_cuda_array(g):
            raise TypeError(
                f"grads[{index}] is a CUDA device array but variables[{index}] is a host "
                "numpy array; host and device arrays cannot be mixed."
            )
        g = np.asarray(g)
    if g.dtype != x.dtype:
        raise TypeError(
            f"grads[{index}] has dtype {g.dtype} but variables[{index}] has dtype {x.dtype}; "
            "they must match."
        )
    if g.shape != x.shape:
        raise ValueError(
            f"grads[{index}] has shape {g.shape} but variables[{index}] has shape {x.shape}."
        )
    return g


def memory_order(x: np.ndarray) -> str | None:
    """``"C"`` or ``"F"`` for contiguous arrays, None for strided views."""
    if x.flags.c_contiguous:
        return "C"
    if x.flags.f_contiguous:
        return "F"
    return None
