"""The CPU backend: runs a :class:`~numba_rmsprop._plan.StepPlan` over NumPy arrays.

It implements :class:`numba_rmsprop._backend.Backend`.

At build time, :meth:`CPUBackend.prepare` sorts the variables:

* **large** ones (``>= _config.PARALLEL_THRESHOLD_BYTES``) each get the
  ``prange`` kernels of :mod:`numba_rmsprop._cpu`;
* **small** ones are grouped by dtype. A group's state lives in flat buffers,
  its variables are passed by address (a table built once), and each call gathers the
  group's gradients into one buffer and updates the whole group in one
  compiled call.

Strided (non-contiguous) variables are updated through a contiguous work
copy that is written back after each call.
"""

from __future__ import annotations

import numba
import numpy as np

from . import _arrays, _config, _layout, _math
from . import _cpu as K


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
        views = [w if w is not None else s.xf for s, w in zip(slots, self.work)]
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
            for s, o in zip(slots, self.offsets):
                flat = buf[o:o + s.size]
                flat[:] = getattr(s, attr + "f")
                setattr(s, attr, flat.reshape(s.shape, order=s.order or "C"))
                setattr(s, attr + "f", flat)
        self.P = spec.constants(dtype).copy()
        self.single = len(slots) == 1 and slots[0].order is not None
        self.any_f = any(s.order == "F" for s in slots)
        for i, s in enumerate(slots):
            s.group, s.member = self, i

    def gather(self, grads) -> tuple:
        """Gradients (in member order, None where absent) into one flat buffer."""
        if all(g is not None for g in grads):
            if self.single:
                s = self.slots[0]
                return grads[0].ravel(order=s.order), self.ones
            if self.any_f:
                grads = [g.T if s.order == "F" else g for s, g in zip(self.slots, grads)]
            np.concatenate(grads, axis=None, out=self.gbuf)
            return self.gbuf, self.ones
        active = np.zeros(len(self.slots), np.int8)
        for i, (s, g, o) in enumerate(zip(self.slots, grads, self.offsets)):
            if g is not None:
                active[i] = 1
                self.gbuf[o:o + s.size] = g.ravel(order=s.order or "C")
        return self.gbuf, active

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
            raise TypeError(f"variables[{i}] is a CUDA device array; host (NumPy) and "
                            "device arrays cannot be mixed.")
        _arrays.check_variable(x, i)

    @staticmethod
    def check_writeable(x, i: int) -> None:
        if not x.flags.writeable:
            raise ValueError(f"variables[{i}] is read-only; the optimizer updates variables in place.")

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
        return nbytes >= _config.PARALLEL_THRESHOLD_BYTES

    @staticmethod
    def to_host(a: np.ndarray) -> np.ndarray:
        return np.array(a, copy=True)

    @staticmethod
    def copy_into(dst: np.ndarray, src) -> None:
        dst[...] = src

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

    @staticmethod
    def full_gradients(grads, slots):
        """``grads`` if each is an ndarray of exactly its variable's shape and dtype."""
        if type(grads) is not list and type(grads) is not tuple:
            return None
        if len(grads) != len(slots):
            return None
        for g, s in zip(grads, slots):
            if type(g) is not np.ndarray or g.dtype is not s.dtype or g.shape != s.shape \
                    or not s.var.flags.writeable:
                return None
        return grads

    # -- one call -------------------------------------------------------------
    def execute_full(self, plan, spec, grads) -> None:
        """Fast path: one valid gradient per variable, in build order."""
        work = [(gr, *gr.gather([grads[s.index] for s in gr.slots])) for gr in self.groups]
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
            _run(slot, K.ema_serial, K.ema_parallel, xf, slot.avgf, self.P[slot.dtype],
                 plan.ema_overwrite)
            _write_back(slot, xf)

    def _run_update_or_accumulate(self, plan, spec, work, large) -> None:
        for P in self.P.values():
            _pack_call(P, plan)
        for gr, _, _ in work:
            _pack_call(gr.P, plan)
        sw = spec.switches
        if plan.update:
            scale = self._global_scale(spec, work, large)
            for gr, gbuf, active in work:
                self._update_group(plan, spec, gr, gbuf, active, scale)
            for slot, gf, xf in large:
                self._update_large(plan, spec, slot, gf, xf, scale)
        else:
            for gr, gbuf, active in work:
                gr.copy_in()
                K.group_accumulate(gr.addresses, gr.sizes, gbuf, gr.offsets, active, gr.acc,
                                   gr.avg, gr.P, sw, plan.ema_overwrite)
                gr.copy_out()
            for slot, gf, xf in large:
                _run(slot, K.accumulate_serial, K.accumulate_parallel,
                     xf, gf, slot.accf, slot.avgf, self.P[slot.dtype], sw, plan.ema_overwrite)
                _write_back(slot, xf)

    # -- pieces -----------------------------------------------------------------
    def _global_scale(self, spec, work, large):
        """The global-norm clip scale, or None when the group kernel computes it itself."""
        if spec.clip_mode != "global" or (len(work) == 1 and not large):
            return None
        total = 0.0
        for gr, gbuf, active in work:
            total += K.group_sumsq(gr.sizes, gbuf, gr.offsets, active, gr.acc, gr.P,
                                   spec.switches)
        for slot, gf, _ in large:
            total += _run(slot, K.sumsq_serial, K.sumsq_parallel, gf, slot.accf,
                          self.P[slot.dtype], spec.switches)
        return spec.clip_factors(total)[0]

    @staticmethod
    def _update_group(plan, spec, gr, gbuf, active, scale) -> None:
        clip = None
        if scale is not None:
            clip = (K.CLIP_GIVEN, spec.clip, scale)
        elif spec.clip_mode == "norm":
            clip = (_math.CLIP_NORM, spec.clip, 1.0)
        elif spec.clip_mode == "global":
            clip = (_math.CLIP_GLOBAL, spec.clip, 1.0)
        gr.copy_in()
        K.group_update(gr.addresses, gr.sizes, gbuf, gr.offsets, active, gr.decay, gr.v, gr.mg,
                       gr.mom, gr.acc, gr.avg, gr.P, spec.switches, clip, plan.ema_overwrite)
        gr.copy_out()

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
        _run(slot, K.update_serial, K.update_parallel,
             xf, gf, slot.vf, slot.mgf, slot.momf, slot.accf, slot.avgf, P, spec.switches,
             num, den, slot.decay, plan.ema_overwrite)
        _write_back(slot, xf)


def _pack_call(P, plan) -> None:
    _layout.pack_call(P, plan.learning_rate, plan.ema_momentum == 0.0, plan.update_count)


def _run(slot, serial, parallel, *args):
    if slot.parallel:
        return K.launch_parallel(parallel, *args, numba.get_num_threads())
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
