"""The CUDA backend: runs a :class:`~numba_rmsprop.engine.plan.StepPlan` over device arrays.

:class:`CUDABackend` implements :class:`numba_rmsprop.engine.backend.Backend`
with the kernels of :mod:`.kernels` over the arrays of :mod:`.arrays`: one
fused pass per variable and call; norms reduced on the device; nothing
copied back to the host.
"""

from __future__ import annotations

import numpy as np

from .. import clipping, layout
from . import arrays as device_arrays
from .driver import cuda, require_cuda
from .kernels import (
    _MAX_BLOCKS,
    _MAX_REDUCE_BLOCKS,
    _accumulate_kernel,
    _dims,
    _ema_kernel,
    _factor_kernel,
    _fill,
    _launch,
    _sumsq_kernel,
    _update_kernel,
)
from .variables import DeviceVariables


# ====================================================================== layouts
class _NormLayout:
    """Device scratch for the norms of one set of variables (cached per set)."""

    def __init__(self, slots):
        n = len(slots)
        self.dims = [_dims(s.size, _MAX_REDUCE_BLOCKS) for s in slots]
        self.base = []
        total = 0
        for s, (b, _) in zip(slots, self.dims, strict=False):
            self.base.append(total)
            total += b if s.size else 0
        self.partials = cuda.device_array(max(total, 1), np.float64)
        self.tickets = cuda.device_array(max(n, 1), np.int32)
        _fill(self.tickets, np.int32(0))
        self.sums = cuda.device_array(max(n, 1), np.float64)
        _fill(self.sums, np.float64(0))  # empty variables contribute 0
        self.fac = {
            np.dtype(np.float32): cuda.device_array(2 * max(n, 1), np.float32),
            np.dtype(np.float64): cuda.device_array(2 * max(n, 1), np.float64),
        }
        self.n = n


# ====================================================================== backend
class CUDABackend(DeviceVariables):
    """Executes plans on CUDA device arrays (see the module docstring).

    It implements :class:`numba_rmsprop.engine.backend.Backend`.
    """

    name = "cuda"

    def __init__(self):
        require_cuda()
        self._P = {}  # dtype -> per-call scalars (host), passed to kernels as a tuple
        self._dummies = {}
        self._records = {}
        self._layouts = {}
        self._views = {}
        self._work = {}
        self._gwork = {}
        self._devices = {}

    @staticmethod
    def use_parallel(nbytes: int) -> bool:
        return False

    def prepare(self, slots, spec) -> None:
        """Record each variable's device (used to check gradients)."""
        for s in slots:
            self._devices[id(s.var)] = device_arrays.device_id(s.var)
            if s.dtype not in self._P:
                self._P[s.dtype] = spec.constants(s.dtype).copy()

    @staticmethod
    def full_gradients(grads, slots):
        """Device gradients always take the checked path."""
        return None

    def execute_full(self, plan, spec, grads) -> None:  # pragma: no cover - never offered
        raise AssertionError("CUDABackend.full_gradients accepts no fast path")

    # -- per-call helpers ----------------------------------------------------
    def _scalars(self, plan) -> dict:
        """This call's per-call scalars per dtype, as the tuples kernels take."""
        out = {}
        for dtype, P in self._P.items():
            layout.pack_call(
                P,
                plan.learning_rate,
                None if plan.ema_momentum is None else plan.ema_momentum == 0.0,
                plan.update_count,
            )
            out[dtype] = tuple(P)
        return out

    def _dummy(self, dtype):
        d = self._dummies.get(dtype)
        if d is None:
            d = self._dummies[dtype] = cuda.device_array(2, dtype=dtype)
            _fill(d, dtype.type(0))
        return d

    def _layout(self, work):
        key = tuple(slot.index for slot, _, _ in work)
        lay = self._layouts.get(key)
        if lay is None:
            if len(self._layouts) >= 16:
                self._layouts.pop(next(iter(self._layouts)))
            lay = self._layouts[key] = _NormLayout([slot for slot, _, _ in work])
        return lay

    # -- one call --------------------------------------------------------------
    def _record(self, slot, spec) -> _SlotRecord:
        rec = self._records.get(slot.index)
        if rec is None:
            rec = self._records[slot.index] = _SlotRecord(self, slot, spec)
        return rec

    def execute(self, plan, spec, pairs, ema_slots) -> None:
        """Apply ``plan`` to ``pairs`` of (slot, gradient); EMA-only for ``ema_slots``."""
        work = [(slot, self._flat_gradient(slot, g), self._work_view(slot)) for slot, g in pairs]
        scalars = self._scalars(plan)
        ow = 1 if plan.ema_overwrite else 0
        if plan.update:
            lay = self._clip_factors(spec, work, scalars)
            for k, (slot, gf, xf) in enumerate(work):
                if slot.size:
                    r = self._record(slot, spec)
                    fac, kf = (r.dummy, 0) if lay is None else (lay.fac[slot.dtype], k)
                    _launch(
                        r.update,
                        r.blocks,
                        r.threads,
                        xf,
                        gf,
                        r.v,
                        r.mg,
                        r.mom,
                        r.acc,
                        r.avg,
                        scalars[slot.dtype],
                        fac,
                        kf,
                        r.decay,
                        ow,
                    )
                self._write_back(slot, xf)
        else:
            for slot, gf, xf in work:
                if slot.size:
                    r = self._record(slot, spec)
                    _launch(
                        r.accumulate,
                        r.blocks,
                        r.threads,
                        xf,
                        gf,
                        r.acc,
                        r.avg,
                        scalars[slot.dtype],
                        ow,
                    )
                self._write_back(slot, xf)
        for slot in ema_slots:
            if slot.size:
                r = self._record(slot, spec)
                xf = self._work_view(slot)
                _launch(_ema_kernel, r.blocks, r.threads, xf, r.avg, scalars[slot.dtype], ow)
                self._write_back(slot, xf)

    def _clip_factors(self, spec, work, scalars):
        """Launch the norm reductions and the factor kernel; the layout holding the factors."""
        if not spec.clips_by_norm:
            return None
        lay = self._layout(work)
        for k, (slot, gf, _) in enumerate(work):
            if slot.size:
                r = self._record(slot, spec)
                b, t = lay.dims[k]
                _launch(
                    r.sumsq,
                    b,
                    t,
                    gf,
                    r.acc,
                    scalars[slot.dtype],
                    lay.partials,
                    lay.base[k],
                    lay.tickets,
                    lay.sums,
                    k,
                )
        b, t = _dims(lay.n, _MAX_BLOCKS)
        mode = clipping.CLIP_NORM if spec.clip_mode == "norm" else clipping.CLIP_GLOBAL
        _launch(
            _factor_kernel,
            b,
            t,
            lay.sums,
            lay.n,
            mode,
            np.float64(spec.clip),
            lay.fac[np.dtype(np.float32)],
            lay.fac[np.dtype(np.float64)],
        )
        return lay


class _SlotRecord:
    """What launching a variable's kernels needs, worked out once (the per-call
    work is then the per-call scalars and the launch itself)."""

    __slots__ = (
        "blocks",
        "threads",
        "update",
        "accumulate",
        "sumsq",
        "v",
        "mg",
        "mom",
        "acc",
        "avg",
        "decay",
        "dummy",
    )

    def __init__(self, backend, slot, spec):
        self.blocks, self.threads = _dims(slot.size, _MAX_BLOCKS)
        sw = spec.switches
        self.update = _update_kernel(
            (
                sw,
                spec.clips_by_norm,
                slot.mgf is not None,
                slot.momf is not None,
                slot.accf is not None,
                slot.avgf is not None,
            )
        )
        self.accumulate = _accumulate_kernel((sw, slot.avgf is not None))
        self.sumsq = _sumsq_kernel((sw, slot.accf is not None))
        d = self.dummy = backend._dummy(slot.dtype)
        self.v = slot.vf
        self.mg = d if slot.mgf is None else slot.mgf
        self.mom = d if slot.momf is None else slot.momf
        self.acc = d if slot.accf is None else slot.accf
        self.avg = d if slot.avgf is None else slot.avgf
        self.decay = 1 if slot.decay else 0
