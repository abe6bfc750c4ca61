"""The variables and gradients of the CUDA backend: checks, views, copies.

A mixin of :class:`~.backend.CUDABackend`: the array half of the
:class:`~numba_rmsprop.engine.backend.Backend` interface (checks of
variables and gradients, flat views in a variable's memory order, work
copies of strided arrays, copies to and from the host).
"""

from __future__ import annotations

import numpy as np

from .. import arrays as _arrays
from . import arrays as device_arrays
from .arrays import _NUMBA_TYPES, _contiguous_in, _describe, _flat_view, _order_of, as_device
from .driver import SIM as _SIM
from .driver import cuda
from .kernels import (
    _MAX_BLOCKS,
    MAX_STRIDED_NDIM,
    _copy_kernel,
    _dims,
    _fill,
    _launch,
    _strided_copy,
)


class DeviceVariables:
    """Array methods of :class:`~.backend.CUDABackend`."""

    # -- checks -----------------------------------------------------------
    @staticmethod
    def check_variable(x, i: int) -> None:
        if isinstance(x, np.ndarray):
            raise TypeError(
                f"variables[{i}] is a host numpy array but this optimizer holds CUDA device "
                "state; host and device arrays cannot be mixed."
            )
        if not _arrays.is_cuda_array(x):
            raise TypeError(
                f"variables[{i}] must be a CUDA device array (numba, CuPy, PyTorch, ...); got "
                f"{type(x).__name__}. Variables are updated in place."
            )
        try:
            d = as_device(x)
        except TypeError:
            raise TypeError(
                f"variables[{i}] ({type(x).__name__}) cannot be used as a CUDA device array here."
            ) from None
        _arrays.check_float_dtype(d.dtype, f"variables[{i}]")
        if _order_of(d) is None and d.ndim > MAX_STRIDED_NDIM:
            raise ValueError(
                f"variables[{i}] is a non-contiguous device array with {d.ndim} dimensions; "
                f"only contiguous ones or views of up to {MAX_STRIDED_NDIM} dimensions are "
                "supported."
            )
        DeviceVariables.check_writeable(x, i)

    @staticmethod
    def check_writeable(x, i: int) -> None:
        if _SIM:
            ro = not as_device(x).flags.writeable
        else:
            cai = getattr(x, "__cuda_array_interface__", None)
            ro = bool(cai["data"][1]) if cai is not None else False
        if ro:
            raise ValueError(
                f"variables[{i}] is read-only; the optimizer updates variables in place."
            )

    def as_gradient(self, g, x, i: int):
        """``g`` as a numba device array matching variable ``x``; errors name ``grads[i]``."""
        if isinstance(g, _NUMBA_TYPES):
            gd = g
        elif isinstance(g, np.ndarray) or not _arrays.is_cuda_array(g):
            kind = "a host numpy array" if isinstance(g, np.ndarray) else f"a {type(g).__name__}"
            raise TypeError(
                f"grads[{i}] is {kind} but variables[{i}] is a CUDA device array; mixed host "
                "and device arrays are not supported: pass device gradients."
            )
        else:
            gd = as_device(g)
        xd = self._view_of(x)
        if np.dtype(gd.dtype) != np.dtype(xd.dtype):
            raise TypeError(
                f"grads[{i}] has dtype {np.dtype(gd.dtype)} but variables[{i}] has dtype "
                f"{np.dtype(xd.dtype)}; they must match."
            )
        if tuple(gd.shape) != tuple(xd.shape):
            raise ValueError(
                f"grads[{i}] has shape {tuple(gd.shape)} but variables[{i}] has shape "
                f"{tuple(xd.shape)}."
            )
        order = _order_of(xd) or "C"
        if not _contiguous_in(gd, order) and gd.ndim > MAX_STRIDED_NDIM:
            raise ValueError(
                f"grads[{i}] is not contiguous in variables[{i}]'s memory order and has "
                f"{gd.ndim} dimensions; only up to {MAX_STRIDED_NDIM} can be re-laid out."
            )
        gdev = device_arrays.device_id(g)
        xdev = self._devices[id(x)] if id(x) in self._devices else device_arrays.device_id(x)
        if gdev is not None and xdev is not None and gdev != xdev:
            raise ValueError(
                f"grads[{i}] is on GPU {gdev} but variables[{i}] is on GPU {xdev}; a gradient "
                "must live on its variable's device."
            )
        return gd

    # -- allocation and views ----------------------------------------------
    @staticmethod
    def memory_order(x):
        return _order_of(as_device(x))

    @staticmethod
    def flat(a, order: str):
        d = as_device(a)
        if not _contiguous_in(d, order):  # pragma: no cover - guarded by memory_order
            raise AssertionError("flat() would copy")
        return _flat_view(d, order)

    @staticmethod
    def full_like(x, order, value):
        d = as_device(x)
        a = cuda.device_array(tuple(d.shape), dtype=np.dtype(d.dtype), order=order or "C")
        _fill(_flat_view(a, order or "C"), np.dtype(d.dtype).type(value))
        return a

    @staticmethod
    def to_host(a) -> np.ndarray:
        return as_device(a).copy_to_host()

    def copy_into(self, dst, src) -> None:
        """``dst[...] = src`` for a device ``dst``; ``src`` is a host or device array."""
        dd = as_device(dst)
        if dd.size == 0:
            return
        order = _order_of(dd)
        if isinstance(src, np.ndarray) or not _arrays.is_cuda_array(src):
            host = np.asarray(src, dtype=dd.dtype)
            if host.shape != tuple(dd.shape):
                host = np.broadcast_to(host, tuple(dd.shape))
            flat_host = np.ascontiguousarray(host.ravel(order=order or "C"))
            if order is not None:
                _flat_view(dd, order).copy_to_device(flat_host)
            else:
                tmp = cuda.to_device(flat_host)
                _strided_copy(dd, tmp, "C", to_flat=False)
            return
        sd = as_device(src)
        flat_order = order or "C"
        if _contiguous_in(sd, flat_order):
            sflat = _flat_view(sd, flat_order)
        else:
            sflat = cuda.device_array(sd.size, dtype=sd.dtype)
            _strided_copy(sd, sflat, flat_order, to_flat=True)
        if order is not None:
            b, t = _dims(dd.size, _MAX_BLOCKS)
            _launch(_copy_kernel, b, t, _flat_view(dd, order), sflat)
        else:
            _strided_copy(dd, sflat, "C", to_flat=False)

    @staticmethod
    def check_disjoint(variables) -> None:
        """No two device variables overlap: their byte extents are compared (conservative:
        interleaved views of one buffer are refused too)."""
        extents = []
        for i, x in enumerate(variables):
            ptr, shape, strides, dtype = _describe(x)
            if not np.prod(shape, dtype=np.int64):
                continue
            lo = ptr + sum(min(0, (n - 1) * s) for n, s in zip(shape, strides, strict=True))
            hi = ptr + sum(max(0, (n - 1) * s) for n, s in zip(shape, strides, strict=True))
            extents.append((lo, hi + dtype.itemsize, i))
        extents.sort()
        for (_, end, i), (start, _, j) in zip(extents, extents[1:], strict=False):
            if start < end:
                raise ValueError(
                    f"variables[{min(i, j)}] and variables[{max(i, j)}] share device memory "
                    "(overlapping views): each would be updated as if the other did not "
                    "exist. Pass disjoint arrays."
                )

    @staticmethod
    def find_same_memory(x, slots):
        """The slot whose variable is ``x``'s memory, viewed the same way (or None)."""
        if isinstance(x, np.ndarray):
            raise TypeError(
                "a host numpy array was passed to an optimizer that holds CUDA "
                "device state; host and device arrays cannot be mixed."
            )
        if not _arrays.is_cuda_array(x):
            return None
        try:
            key = _describe(x)
        except TypeError:
            return None
        for s in slots:
            if _describe(s.var) == key:
                return s
        return None

    def _view_of(self, x):
        """The numba view of variable ``x``, made once (wrapping a foreign array syncs
        its stream)."""
        hit = self._views.get(id(x))
        if hit is not None and hit[0] is x:
            return hit[1]
        d = as_device(x)
        if len(self._views) < 4096:
            self._views[id(x)] = (x, d)
        return d

    def _var_view(self, slot):
        return self._view_of(slot.var)

    def _work_view(self, slot):
        """Flat view of the variable, or a contiguous (C-order) work copy for strided ones."""
        if slot.xf is not None:
            return slot.xf
        w = self._work.get(slot.index)
        if w is None:
            w = self._work[slot.index] = cuda.device_array(slot.size, dtype=slot.dtype)
        _strided_copy(self._var_view(slot), w, "C", to_flat=True)
        return w

    def _write_back(self, slot, xf) -> None:
        if slot.xf is None:
            _strided_copy(self._var_view(slot), xf, "C", to_flat=False)

    def _flat_gradient(self, slot, gd):
        """The gradient flat in the variable's memory order (a view when layouts agree)."""
        order = slot.order or "C"
        if _contiguous_in(gd, order):
            try:
                return _flat_view(gd, order)
            except NotImplementedError:  # pragma: no cover - numba refused the view
                pass
        w = self._gwork.get(slot.index)
        if w is None:
            w = self._gwork[slot.index] = cuda.device_array(slot.size, dtype=slot.dtype)
        _strided_copy(gd, w, order, to_flat=True)
        return w
