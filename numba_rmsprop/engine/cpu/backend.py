"""The CPU backend: runs a :class:`~numba_rmsprop.engine.plan.StepPlan` over NumPy arrays.

It implements :class:`numba_rmsprop.engine.backend.Backend`.

At build time, :meth:`CPUBackend.prepare` sorts the variables:

* **large** ones (``>= config.PARALLEL_THRESHOLD_BYTES``) each get the
  ``prange`` kernels of :mod:`numba_rmsprop.engine.cpu.kernels`;
* **small** ones are grouped by dtype. A group's state lives in flat buffers,
  its variables are passed by address (a table built once), and each call gathers the
  group's gradients into one buffer and updates the whole group in one
  compiled call.

Strided (non-contiguous) variables are updated through a contiguous work
copy that is written back after each call.
"""

from __future__ import annotations

import numpy as np

from .. import arrays as _arrays
from .. import clipping, config, layout
from .. import threads as _threads
from ..entries import entry_point
from . import kernels as K


class _Group:
    """Small variables of one dtype, updated by one compiled call."""

    def __init__(self, slots, spec, dtype):
        self.slots = slots
        self.dtype = dtype
        sizes = [s.size for s in slots]
        self.offsets = np.zeros(len(slots), np.int64)
        self.offsets[1:] = np.cumsum(sizes)[:-1]
        total = int(sum(sizes))
        self.ones = np.ones(len(slots), np.int8)
        self.decay = np.array([s.decay for s in slots], np.int8)
        self.gbuf = np.empty(total, dtype)
        self.work = [None if s.order is not None else np.empty(s.size, dtype) for s in slots]
        self.strided = [i for i, w in enumerate(self.work) if w is not None]
        # The kernels see the variables through their addresses: a typed list
        # would cost ~0.3 s of uncached compilation in every process. The
        # slots (and self.work) keep every addressed array alive.
        views = [w if w is not None else s.xf for s, w in zip(slots, self.work, strict=False)]
        self.addresses = np.array([v.ctypes.data for v in views], np.int64)
        self.sizes = np.array([v.size for v in views], np.int64)
        # Re-home each slot's state (with its initial values) into flat group
        # buffers; the slots keep views of the variable's shape.
        for attr in ("v", "mg", "mom", "acc", "avg"):
            if getattr(slots[0], attr) is None:
                setattr(self, attr, None)
                continue
            buf = np.empty(total, dtype)
            setattr(self, attr, buf)
            for s, o in zip(slots, self.offsets, strict=False):
                flat = buf[o : o + s.size]
                flat[:] = getattr(s, attr + "f")
                setattr(s, attr, flat.reshape(s.shape, order=s.order or "C"))
                setattr(s, attr + "f", flat)
        self.P = spec.constants(dtype).copy()
        self.switches = spec.switches
        self.single = len(slots) == 1 and slots[0].order is not None
        self.any_f = any(s.order == "F" for s in slots)
        self.indices = [s.index for s in slots]
        for i, s in enumerate(slots):
            s.group, s.member = self, i
        # The kernels, called through their compiled entry points once the
        # argument types are known: Numba's per-call type dispatch costs
        # ~0.1 us per argument, a third of a small call. Every argument keeps
        # its type from call to call (the gradient buffer is checked by
        # CPUBackend.full_gradients or as_gradient to have the group's dtype).
        self._update = K.group_update
        self._accumulate = K.group_accumulate

    def gather_full(self, grads):
        """Every member's gradient, taken from the call's full list, as one flat buffer."""
        if self.single:
            s = self.slots[0]
            return grads[s.index].ravel(order=s.order)
        parts = [grads[i] for i in self.indices]
        if self.any_f:
            parts = [g.T if s.order == "F" else g for s, g in zip(self.slots, parts, strict=False)]
        np.concatenate(parts, axis=None, out=self.gbuf)
        return self.gbuf

    def gather(self, grads) -> tuple:
        """Gradients (in member order, None where absent) into one flat buffer."""
        if all(g is not None for g in grads):
            if self.single:
                s = self.slots[0]
                return grads[0].ravel(order=s.order), self.ones
            if self.any_f:
                grads = [
                    g.T if s.order == "F" else g for s, g in zip(self.slots, grads, strict=False)
                ]
            np.concatenate(grads, axis=None, out=self.gbuf)
            return self.gbuf, self.ones
        active = np.zeros(len(self.slots), np.int8)
        for i, (s, g, o) in enumerate(zip(self.slots, grads, self.offsets, strict=False)):
            if g is not None:
                active[i] = 1
                self.gbuf[o : o + s.size] = g.ravel(order=s.order or "C")
        return self.gbuf, active

    def update(self, gbuf, active, clip, overwrite) -> None:
        """One update call of the group's kernel (``clip``: see ``_cpu.group_update``)."""
        if self.strided:
            self.copy_in()
        args = (
            self.addresses,
            self.sizes,
            gbuf,
            self.offsets,
            active,
            self.decay,
            self.v,
            self.mg,
            self.mom,
            self.acc,
            self.avg,
            self.P,
            self.switches,
            clip,
            overwrite,
        )
        self._update(*args)
        if self._update is K.group_update:
            self._update = entry_point(K.group_update, args, g=self.gbuf)
        if self.strided:
            self.copy_out()

    def accumulate(self, gbuf, active, overwrite) -> None:
        """One accumulation-only call of the group's kernel."""
        if self.strided:
            self.copy_in()
        args = (
            self.addresses,
            self.sizes,
            gbuf,
            self.offsets,
            active,
            self.acc,
            self.avg,
            self.P,
            self.switches,
            overwrite,
        )
        self._accumulate(*args)
        if self._accumulate is K.group_accumulate:
            self._accumulate = entry_point(K.group_accumulate, args, g=self.gbuf)
        if self.strided:
            self.copy_out()

    def copy_in(self) -> None:
        for i in self.strided:
            self.work[i][...] = self.slots[i].var.reshape(-1)

    def copy_out(self) -> None:
        for i in self.strided:
            s = self.slots[i]
            s.var[...] = self.work[i].reshape(s.shape)


class CPUBackend:
    """Executes plans on host NumPy arrays."""

    name = "cpu"

    def __init__(self):
        self.groups: list[_Group] = []
        self.large = []
        self.P: dict = {}  # dtype -> per-call scalars of the large variables

    # -- interface used by RMSprop ------------------------------------------
    @staticmethod
    def check_variable(x, i: int) -> None:
        if _arrays.is_cuda_array(x):
            raise TypeError(
                f"variables[{i}] is a CUDA device array; host (NumPy) and "
                "device arrays cannot be mixed."
            )
        _arrays.check_variable(x, i)

    @staticmethod
    def check_writeable(x, i: int) -> None:
        if not x.flags.writeable:
            raise ValueError(
                f"variables[{i}] is read-only; the optimizer updates variables in place."
            )

    as_gradient = staticmethod(_arrays.as_gradient)
    memory_order = staticmethod(_arrays.memory_order)

    @staticmethod
    def flat(a: np.ndarray, order: str) -> np.ndarray:
        """Flat view of a contiguous array in its memory order."""
        f = a.ravel(order=order)
        if a.size and not np.shares_memory(f, a):  # pragma: no cover - guarded by memory_order
            raise AssertionError("flat() would copy")
        return f

    @staticmethod
    def full_like(x: np.ndarray, order, value: float) -> np.ndarray:
        return np.full(x.shape, value, dtype=x.dtype, order=order or "C")

    @staticmethod
    def use_parallel(nbytes: int) -> bool:
        return nbytes >= config.PARALLEL_THRESHOLD_BYTES

    @staticmethod
    def to_host(a: np.ndarray) -> np.ndarray:
        return np.array(a, copy=True)

    @staticmethod
    def copy_into(dst: np.ndarray, src) -> None:
        dst[...] = src

    @staticmethod
    def check_disjoint(variables) -> None:
        _arrays.check_disjoint(variables)

    @staticmethod
    def find_same_memory(x, slots):
        """The slot whose variable is ``x``'s memory, viewed the same way (or None)."""
        if not isinstance(x, np.ndarray):
            return None
        key = (x.__array_interface__["data"][0], x.shape, x.strides, x.dtype)
        for s in slots:
            v = s.var
            if (v.__array_interface__["data"][0], v.shape, v.strides, v.dtype) == key:
                return s
        return None

    def prepare(self, slots, spec) -> None:
        """Sort variables into parallel singles and per-dtype serial groups."""
        small = {}
        for s in slots:
            s.group = None
            if s.parallel:
                self.large.append(s)
                if s.dtype not in self.P:
                    self.P[s.dtype] = spec.constants(s.dtype).copy()
            else:
                small.setdefault(s.dtype, []).append(s)
        self.groups = [_Group(members, spec, dt) for dt, members in small.items()]
        self._all_P = [gr.P for gr in self.groups] + list(self.P.values())
        self._clip = None
        if spec.clip_mode == "norm":
            self._clip = (clipping.CLIP_NORM, spec.clip, 1.0)
        elif spec.clip_mode == "global":
            self._clip = (clipping.CLIP_GLOBAL, spec.clip, 1.0)

    @staticmethod
    def full_gradients(grads, slots):
        """``grads`` if each is an ndarray of exactly its variable's shape and dtype."""
        if type(grads) is not list and type(grads) is not tuple:
            return None
        if len(grads) != len(slots):
            return None
        for g, s in zip(grads, slots, strict=False):
            if (
                type(g) is not np.ndarray
                or g.dtype is not s.dtype
                or g.shape != s.shape
                or not s.var.flags.writeable
            ):
                return None
        return grads

    # -- one call -------------------------------------------------------------
    def execute_full(self, plan, spec, grads) -> None:
        """Fast path: one valid gradient per variable, in build order."""
        work = [(gr, gr.gather_full(grads), gr.ones) for gr in self.groups]
        large = [(s, _flat_gradient(s, grads[s.index]), _work_view(s)) for s in self.large]
        self._run_update_or_accumulate(plan, spec, work, large)

    def execute(self, plan, spec, pairs, ema_slots) -> None:
        """Apply ``plan`` to ``pairs`` of (slot, gradient); EMA-only for ``ema_slots``."""
        per_group = {id(gr): [None] * len(gr.slots) for gr in self.groups}
        large = []
        for slot, g in pairs:
            if slot.group is None:
                large.append((slot, g))
            else:
                per_group[id(slot.group)][slot.member] = g
        work = []
        for gr in self.groups:
            grads = per_group[id(gr)]
            if any(g is not None for g in grads) or spec.use_ema:
                gbuf, active = gr.gather(grads)
                work.append((gr, gbuf, active))
        large = [(s, _flat_gradient(s, g), _work_view(s)) for s, g in large]
        self._run_update_or_accumulate(plan, spec, work, large)
        for slot in ema_slots:
            if slot.group is not None:
                continue  # handled as an inactive group member
            xf = _work_view(slot)
            _run(
                slot,
                K.ema_serial,
                K.ema_parallel,
                xf,
                slot.avgf,
                self.P[slot.dtype],
                plan.ema_overwrite,
            )
            _write_back(slot, xf)

    def _run_update_or_accumulate(self, plan, spec, work, large) -> None:
        lr, t = plan.learning_rate, plan.update_count
        first = None if plan.ema_momentum is None else plan.ema_momentum == 0.0
        for P in self._all_P:
            layout.pack_call(P, lr, first, t)
        sw = spec.switches
        if plan.update:
            scale = self._global_scale(spec, work, large)
            clip = self._clip if scale is None else (K.CLIP_GIVEN, spec.clip, scale)
            for gr, gbuf, active in work:
                gr.update(gbuf, active, clip, plan.ema_overwrite)
            for slot, gf, xf in large:
                self._update_large(plan, spec, slot, gf, xf, scale)
        else:
            for gr, gbuf, active in work:
                gr.accumulate(gbuf, active, plan.ema_overwrite)
            for slot, gf, xf in large:
                _run(
                    slot,
                    K.accumulate_serial,
                    K.accumulate_parallel,
                    xf,
                    gf,
                    slot.accf,
                    slot.avgf,
                    self.P[slot.dtype],
                    sw,
                    plan.ema_overwrite,
                )
                _write_back(slot, xf)

    # -- pieces -----------------------------------------------------------------
    def _global_scale(self, spec, work, large):
        """The global-norm clip scale, or None when the group kernel computes it itself.

        The variables' sums of squares are added in build order, as the
        kernel of a single group adds them, so the scale does not depend on
        which variables are grouped and which are large.
        """
        if spec.clip_mode != "global" or (len(work) == 1 and not large):
            return None
        sums = {}
        for gr, gbuf, active in work:
            out = np.zeros(len(gr.slots))
            K.group_sumsq(gr.sizes, gbuf, gr.offsets, active, gr.acc, gr.P, spec.switches, out)
            sums.update(zip(gr.indices, out.tolist(), strict=False))
        for slot, gf, _ in large:
            sums[slot.index] = _run(
                slot,
                K.sumsq_serial,
                K.sumsq_parallel,
                gf,
                slot.accf,
                self.P[slot.dtype],
                spec.switches,
            )
        total = 0.0
        for i in sorted(sums):
            total += sums[i]
        return float(spec.clip_factors(total)[0])

    def _update_large(self, plan, spec, slot, gf, xf, scale) -> None:
        P = self.P[slot.dtype]
        t = slot.dtype.type
        num = den = None
        if spec.clip_mode == "norm":
            ss = _run(slot, K.sumsq_serial, K.sumsq_parallel, gf, slot.accf, P, spec.switches)
            num, den = spec.clip_factors(ss)
            num, den = t(num), t(den)
        elif spec.clip_mode == "global":
            num, den = t(scale), t(1)
        _run(
            slot,
            K.update_serial,
            K.update_parallel,
            xf,
            gf,
            slot.vf,
            slot.mgf,
            slot.momf,
            slot.accf,
            slot.avgf,
            P,
            spec.switches,
            num,
            den,
            slot.decay,
            plan.ema_overwrite,
        )
        _write_back(slot, xf)


def _run(slot, serial, parallel, *args):
    if slot.parallel:
        return _threads.launch_parallel(parallel, *args)
    return serial(*args)


def _flat_gradient(slot, g: np.ndarray) -> np.ndarray:
    """``g`` flat in the variable's memory order (a view when layouts agree)."""
    if slot.order is None:
        return np.ascontiguousarray(g).reshape(-1)
    return g.ravel(order=slot.order)


def _work_view(slot) -> np.ndarray:
    """Flat view of the variable, or a contiguous copy for strided views."""
    if slot.xf is not None:
        return slot.xf
    return np.ascontiguousarray(slot.var).reshape(-1)


def _write_back(slot, xf: np.ndarray) -> None:
    if slot.xf is None:
        slot.var[...] = xf.reshape(slot.var.shape)
