"""The variables of an optimizer: their slots (state arrays), building and checks."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import arrays as _arrays
from .checkpoints import STATE_KINDS


def shape_dtype(x) -> tuple:
    """Shape and NumPy dtype of a variable.

    Objects exposing ``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA
    tensors) are read through it: a tensor's ``dtype`` is not a NumPy dtype.
    """
    if not isinstance(x, np.ndarray):
        cai = getattr(x, "__cuda_array_interface__", None)
        if cai is not None:
            return tuple(int(n) for n in cai["shape"]), np.dtype(cai["typestr"])
    return tuple(x.shape), np.dtype(x.dtype)


@dataclass
class Slot:
    """One variable and its optimizer state.

    State arrays have the variable's shape; ``*f`` attributes are flat views
    of them in the variable's memory order, which is what kernels see.
    """

    index: int
    var: Any
    shape: tuple
    dtype: np.dtype
    order: str | None
    size: int
    parallel: bool
    decay: bool
    xf: Any = None
    v: Any = None
    mg: Any = None
    mom: Any = None
    acc: Any = None
    avg: Any = None
    vf: Any = None
    mgf: Any = None
    momf: Any = None
    accf: Any = None
    avgf: Any = None
    group: Any = None
    member: int = -1


class Variables:
    """Building on variables and finding their slots, for :class:`~numba_rmsprop.RMSprop`."""

    @property
    def variables(self) -> list:
        """The variables the optimizer was built with."""
        return [s.var for s in self._slots]

    def exclude_from_weight_decay(
        self, var_list: Iterable | None = None, var_names: Iterable[str] | None = None
    ) -> None:
        """Exclude variables (by identity) from weight decay; call before :meth:`build`."""
        if self.built:
            raise ValueError(
                "`exclude_from_weight_decay()` can only be configured before "
                "the optimizer is built."
            )
        if var_names:
            raise TypeError(
                "`var_names` is not supported: arrays have no names. "
                "Pass the arrays themselves as `var_list`."
            )
        self._exclude_vars = list(var_list or ())
        self._exclude_ids = {id(v) for v in self._exclude_vars}

    def build(self, variables: Sequence) -> None:
        """Create the optimizer state for ``variables`` (no-op when already built)."""
        if self.built:
            return
        variables = list(variables)
        backend = self._backend_for(variables)
        for i, x in enumerate(variables):
            backend.check_variable(x, i)
        if len({id(x) for x in variables}) != len(variables):
            raise ValueError("`variables` contains the same array more than once.")
        backend.check_disjoint(variables)
        slots = [self._make_slot(i, x, backend) for i, x in enumerate(variables)]
        pending = self._pending_state
        if pending is not None:
            self._check_state(pending, slots)
        backend.prepare(slots, self._spec)
        self._slots = slots
        self._by_id = {id(s.var): s for s in slots}
        self._backend = backend
        if pending is not None:
            self._pending_state = None
            self._restore_arrays(pending)

    def _backend_for(self, variables: Sequence):
        if not variables:
            raise ValueError("`variables` is empty.")
        devices = {_arrays.device_of(x) for x in variables}
        if len(devices) > 1:
            raise ValueError("`variables` mixes host (NumPy) and CUDA device arrays.")
        device = devices.pop()
        if self._device != "auto" and device != self._device:
            raise ValueError(
                f"This optimizer was created with device={self._device!r} but "
                f"the variables are {device} arrays."
            )
        if device == "cuda":
            from ..engine.cuda import backend as _cuda

            return _cuda.CUDABackend()
        from ..engine.cpu.backend import CPUBackend

        return CPUBackend()

    def _make_slot(self, i: int, x, backend) -> Slot:
        order = backend.memory_order(x)
        shape, dtype = shape_dtype(x)
        size = int(np.prod(shape, dtype=np.int64))
        slot = Slot(
            index=i,
            var=x,
            shape=shape,
            dtype=dtype,
            order=order,
            size=size,
            parallel=backend.use_parallel(size * dtype.itemsize),
            decay=self._weight_decay is not None and id(x) not in self._exclude_ids,
        )
        slot.xf = backend.flat(x, order) if order is not None else None
        for _, attr in STATE_KINDS:
            if self._needs(attr):
                a = backend.full_like(x, order, self._initial_value(attr))
                setattr(slot, attr, a)
                setattr(slot, attr + "f", backend.flat(a, order or "C"))
        return slot

    def _initial_value(self, attr: str) -> float:
        return self._initial_velocity if attr == "v" else 0.0

    def _needs(self, attr: str) -> bool:
        return {
            "v": True,
            "mom": self._momentum > 0,
            "mg": self._centered,
            "avg": self._use_ema,
            "acc": self._gradient_accumulation_steps is not None,
        }[attr]

    def _validate(self, grads, variables):
        """Check everything and build if needed; returns (pairs, ema_slots)."""
        if isinstance(grads, (np.ndarray,)) or not isinstance(grads, (list, tuple)):
            if _arrays.is_cuda_array(grads) or isinstance(grads, np.ndarray):
                raise TypeError("`grads` must be a list of arrays, one per variable.")
            grads = list(grads)
        if len(grads) == 0:
            return None, None
        if variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be "
                    "built on a list of variables. Call `optimizer.build(variables)` first."
                )
            if len(grads) != len(self._slots):
                raise ValueError(
                    f"Received {len(grads)} gradients, but the optimizer tracks "
                    f"{len(self._slots)} variables."
                )
            slots = self._slots
        else:
            if isinstance(variables, np.ndarray) or _arrays.is_cuda_array(variables):
                raise TypeError("`variables` must be a list of arrays.")
            variables = list(variables)
            if len(variables) != len(grads):
                raise ValueError(f"Got {len(grads)} gradients for {len(variables)} variables.")
            if not self.built:
                # Check the gradients against the variables before building,
                # so that a failed first call leaves the optimizer unbuilt.
                backend = self._backend_for(variables)
                for i, (x, g) in enumerate(zip(variables, grads, strict=False)):
                    backend.check_variable(x, i)
                    if g is not None:
                        backend.as_gradient(g, x, i)
                if all(g is None for g in grads):
                    raise ValueError("No gradients provided for any variable.")
                self.build(variables)
            slots = [self._slot_of(x, i) for i, x in enumerate(variables)]
            if len({id(s) for s in slots}) != len(slots):
                raise ValueError("`variables` contains the same variable more than once.")
        backend = self._backend
        pairs, skipped = [], []
        for i, (slot, g) in enumerate(zip(slots, grads, strict=False)):
            if g is None:
                skipped.append(slot.index)
                continue
            backend.check_writeable(slot.var, i)
            pairs.append((slot, backend.as_gradient(g, slot.var, i)))
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        if skipped:
            warnings.warn(
                f"Gradients do not exist for variables {skipped} (by build index).", stacklevel=3
            )
        ema_slots = []
        if self._use_ema:
            given = {id(s) for s, _ in pairs}
            ema_slots = [s for s in self._slots if id(s) not in given]
        return pairs, ema_slots

    def _slot_of(self, x, i: int) -> Slot:
        slot = self._by_id.get(id(x))
        if slot is None:
            slot = self._backend.find_same_memory(x, self._slots)
        if slot is None:
            raise ValueError(
                f"Unknown variable: variables[{i}] (shape {getattr(x, 'shape', None)}). This "
                "optimizer can only be called for the variables it was built with. When "
                "working with new variables, create a new optimizer."
            )
        return slot

    def finalize_variable_values(self, variables: Sequence | None = None) -> None:
        """With ``use_ema``, copy each variable's moving average into it, in place."""
        if not self._use_ema or not self.built:
            return
        variables = self.variables if variables is None else list(variables)
        slots = [self._slot_of(x, i) for i, x in enumerate(variables)]
        for slot in slots:
            self._backend.copy_into(slot.var, slot.avg)

    def moving_averages(self, variables: Sequence | None = None) -> list:
        """With ``use_ema``, copies of the moving averages, one per variable.

        In the order of ``variables`` (default: the order they were built
        with), as host NumPy arrays of each variable's shape and dtype; the
        variables and the state are left as they are. This is the way to
        evaluate the EMA weights and keep training the raw ones;
        :meth:`finalize_variable_values` writes the same values into the
        variables. (``state_dict()["average/<i>"]`` holds them by build index.)
        """
        if not self.built:
            raise ValueError("The optimizer is not built yet; it has no moving averages.")
        if not self._use_ema:
            raise ValueError(
                "This optimizer keeps no moving averages: create it with use_ema=True."
            )
        variables = self.variables if variables is None else list(variables)
        slots = [self._slot_of(x, i) for i, x in enumerate(variables)]
        with self._lock:
            return [self._backend.to_host(slot.avg) for slot in slots]
