"""Fused CPU kernels: ``@njit(parallel=True)`` with serial twins.

One pass over memory per variable and call. The gradient transform (loss
scale, accumulation mean, clip), decoupled weight decay, the rho-averages,
momentum and the EMA are folded into one loop. Optional pieces are passed as
``None``; Numba prunes those branches at compile time, so each configuration
compiles into its own straight-line, vectorised loop.

The serial twins use ``error_model="numpy"``: with Python's error model every
division carries a zero check, which stops LLVM from vectorising the loop
(the parallel gufuncs already use the NumPy model).
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import njit, prange

from . import _config
from . import _math

_OPTS = dict(error_model="numpy", cache=_config.CACHE)

_clip_by_value = njit(**_OPTS)(_math.clip_by_value)
_velocity = njit(**_OPTS)(_math.velocity)
_average_gradient = njit(**_OPTS)(_math.average_gradient)
_centered_denominator = njit(**_OPTS)(_math.centered_denominator)
_increment = njit(**_OPTS)(_math.increment)
_decay = njit(**_OPTS)(_math.decay)
_moving_average = njit(**_OPTS)(_math.moving_average)


@njit(inline="always", **_OPTS)
def _effective_gradient(i, g, acc, ls, nacc, clip_num, clip_den, clip_val):
    """The gradient the update uses: scaled, averaged over accumulation, clipped."""
    gi = g[i]
    if ls is not None:
        gi = gi / ls
    if acc is not None:
        gi = (gi + acc[i]) / nacc
    if clip_num is not None:
        gi = (gi * clip_num) / clip_den
    if clip_val is not None:
        gi = _clip_by_value(gi, clip_val)
    return gi


@njit(inline="always", **_OPTS)
def _update_element(i, x, g, v, mg, mom, acc, avg, ls, nacc, clip_num, clip_den,
                    clip_val, wd, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite):
    gi = _effective_gradient(i, g, acc, ls, nacc, clip_num, clip_den, clip_val)
    if acc is not None:
        acc[i] = 0  # stores cast to the array's dtype
    xi = x[i]
    if wd is not None:
        xi = _decay(xi, wd, lr)
    vi = _velocity(v[i], gi, rho, omr)
    v[i] = vi
    if mg is not None:
        mgi = _average_gradient(mg[i], gi, rho, omr)
        mg[i] = mgi
        d = _centered_denominator(vi, mgi, eps)
    else:
        d = vi + eps
    inc = _increment(lr, gi, d)
    if mom is not None:
        mi = mu * mom[i] + inc
        mom[i] = mi
        xi = xi - mi
    else:
        xi = xi - inc
    if avg is not None:
        ai = _moving_average(avg[i], xi, ema_m, ema_omm)
        avg[i] = ai
        if overwrite:
            xi = ai
    x[i] = xi


@njit(inline="always", **_OPTS)
def _accumulate_element(i, x, g, acc, avg, ls, ema_m, ema_omm, overwrite):
    gi = g[i]
    if ls is not None:
        gi = gi / ls
    acc[i] = gi + acc[i]
    if avg is not None:
        ai = _moving_average(avg[i], x[i], ema_m, ema_omm)
        avg[i] = ai
        if overwrite:
            x[i] = ai


@njit(inline="always", **_OPTS)
def _sumsq_element(i, g, acc, ls, nacc):
    gi = _effective_gradient(i, g, acc, ls, nacc, None, None, None)
    gd = np.float64(gi)
    return gd * gd


# ---------------------------------------------------------------- drivers
# Each exists twice: a serial loop for small arrays and a prange loop for
# large ones. The bodies are the shared inline element functions above.

@njit(**_OPTS)
def update_serial(x, g, v, mg, mom, acc, avg, ls, nacc, clip_num, clip_den,
                  clip_val, wd, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite):
    """One fused RMSprop update of a flat variable (serial)."""
    for i in range(x.size):
        _update_element(i, x, g, v, mg, mom, acc, avg, ls, nacc, clip_num, clip_den,
                        clip_val, wd, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite)


@njit(parallel=True, **_OPTS)
def update_parallel(x, g, v, mg, mom, acc, avg, ls, nacc, clip_num, clip_den,
                    clip_val, wd, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite):
    """One fused RMSprop update of a flat variable (threads)."""
    for i in prange(x.size):
        _update_element(i, x, g, v, mg, mom, acc, avg, ls, nacc, clip_num, clip_den,
                        clip_val, wd, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite)


@njit(**_OPTS)
def accumulate_serial(x, g, acc, avg, ls, ema_m, ema_omm, overwrite):
    """Accumulation-only call (plus the EMA), one pass (serial)."""
    for i in range(x.size):
        _accumulate_element(i, x, g, acc, avg, ls, ema_m, ema_omm, overwrite)


@njit(parallel=True, **_OPTS)
def accumulate_parallel(x, g, acc, avg, ls, ema_m, ema_omm, overwrite):
    """Accumulation-only call (plus the EMA), one pass (threads)."""
    for i in prange(x.size):
        _accumulate_element(i, x, g, acc, avg, ls, ema_m, ema_omm, overwrite)


@njit(**_OPTS)
def ema_serial(x, avg, ema_m, ema_omm, overwrite):
    """EMA of a variable that got no gradient this call (serial)."""
    for i in range(x.size):
        ai = _moving_average(avg[i], x[i], ema_m, ema_omm)
        avg[i] = ai
        if overwrite:
            x[i] = ai


@njit(parallel=True, **_OPTS)
def ema_parallel(x, avg, ema_m, ema_omm, overwrite):
    """EMA of a variable that got no gradient this call (threads)."""
    for i in prange(x.size):
        ai = _moving_average(avg[i], x[i], ema_m, ema_omm)
        avg[i] = ai
        if overwrite:
            x[i] = ai


@njit(**_OPTS)
def sumsq_serial(g, acc, ls, nacc):
    """Sum of squares (float64) of the effective gradient, read-only (serial)."""
    s = 0.0
    for i in range(g.size):
        s += _sumsq_element(i, g, acc, ls, nacc)
    return s


@njit(parallel=True, **_OPTS)
def sumsq_parallel(g, acc, ls, nacc):
    """Sum of squares (float64) of the effective gradient, read-only (threads)."""
    s = 0.0
    for i in prange(g.size):
        s += _sumsq_element(i, g, acc, ls, nacc)
    return s


# ---------------------------------------------------------------- threading
# The workqueue layer aborts the process when two Python threads launch
# parallel kernels at once. Ask for a thread-safe layer (TBB or OpenMP) unless
# the user chose one; if only workqueue loads, serialise parallel launches.

_LAUNCH_LOCK = threading.Lock()
_launch_is_threadsafe = False


def _request_threadsafe_layer() -> None:
    import os

    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = _config.THREADING_LAYER


_request_threadsafe_layer()


def launch_parallel(kernel, *args):
    """Call a ``parallel=True`` kernel without ever aborting the process.

    Until a thread-safe layer (TBB or OpenMP) is known to be active, launches
    are serialised under a lock; if none can be loaded, fall back to
    workqueue and keep serialising.
    """
    global _launch_is_threadsafe
    if _launch_is_threadsafe:
        return kernel(*args)
    with _LAUNCH_LOCK:
        try:
            result = kernel(*args)
        except ValueError as exc:  # "No threading layer could be loaded"
            if "threading layer" not in str(exc):
                raise
            numba.config.THREADING_LAYER = "workqueue"
            result = kernel(*args)
        _launch_is_threadsafe = numba.threading_layer() in ("tbb", "omp")
        return result


# ---------------------------------------------------------------- executor
def _pick(slot, serial, parallel):
    return (lambda *a: launch_parallel(parallel, *a)) if slot.parallel else serial


class CPUBackend:
    """Runs a :class:`~numba_rmsprop._plan.StepPlan` over host NumPy arrays."""

    name = "cpu"

    @staticmethod
    def zeros_like(x: np.ndarray, order: str | None) -> np.ndarray:
        """A state array for variable ``x``: same shape and dtype, contiguous in ``order``."""
        return np.zeros(x.shape, dtype=x.dtype, order=order or "C")

    @staticmethod
    def to_host(a: np.ndarray) -> np.ndarray:
        return np.array(a, copy=True)

    @staticmethod
    def copy_into(dst: np.ndarray, src: np.ndarray) -> None:
        dst[...] = src

    @staticmethod
    def use_parallel(size: int) -> bool:
        return size >= _config.PARALLEL_THRESHOLD

    # -- one call ---------------------------------------------------------
    def execute(self, plan, spec, pairs, ema_slots) -> None:
        """Apply ``plan`` to ``pairs`` of (slot, gradient); EMA-only for ``ema_slots``."""
        work = [(slot, _flat_gradient(slot, g), _work_view(slot)) for slot, g in pairs]
        if plan.update:
            clips = self._clip_factors(plan, spec, work)
            for (slot, gf, xf), (num, den) in zip(work, clips):
                s = spec.scalars(slot.dtype)
                ema_m, ema_omm = s.ema(plan.ema_momentum)
                lr = s.dtype(plan.learning_rate)
                kernel = _pick(slot, update_serial, update_parallel)
                kernel(xf, gf, slot.vf, slot.mgf, slot.momf, slot.accf, slot.avgf,
                       s.ls, s.nacc if slot.accf is not None else None,
                       num, den, s.clip_value, s.wd if slot.decay else None, lr,
                       s.rho, s.one_minus_rho, s.eps, s.momentum,
                       ema_m, ema_omm, plan.ema_overwrite)
                _write_back(slot, xf)
        else:
            for slot, gf, xf in work:
                s = spec.scalars(slot.dtype)
                ema_m, ema_omm = s.ema(plan.ema_momentum)
                kernel = _pick(slot, accumulate_serial, accumulate_parallel)
                kernel(xf, gf, slot.accf, slot.avgf, s.ls, ema_m, ema_omm, plan.ema_overwrite)
                _write_back(slot, xf)
        for slot in ema_slots:
            s = spec.scalars(slot.dtype)
            ema_m, ema_omm = s.ema(plan.ema_momentum)
            xf = _work_view(slot)
            _pick(slot, ema_serial, ema_parallel)(xf, slot.avgf, ema_m, ema_omm, plan.ema_overwrite)
            _write_back(slot, xf)

    def _clip_factors(self, plan, spec, work):
        """Per-variable ``(numerator, denominator)`` of the norm clip, or ``(None, None)``."""
        if spec.clip_mode not in ("norm", "global"):
            return [(None, None)] * len(work)
        sumsq = []
        for slot, gf, _ in work:
            s = spec.scalars(slot.dtype)
            kernel = _pick(slot, sumsq_serial, sumsq_parallel)
            sumsq.append(kernel(gf, slot.accf, s.ls, s.nacc if slot.accf is not None else None))
        if spec.clip_mode == "norm":
            out = []
            for (slot, _, _), ss in zip(work, sumsq):
                num, den = spec.clipnorm_factors(ss)
                out.append((slot.dtype.type(num), slot.dtype.type(den)))
            return out
        scale = spec.global_clip_scale(sum(sumsq))
        return [(slot.dtype.type(scale), slot.dtype.type(1)) for slot, _, _ in work]


def _flat_gradient(slot, g: np.ndarray) -> np.ndarray:
    """``g`` as a flat array in the variable's memory order (a view when layouts agree)."""
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


def _cpu_backend_methods():
    """Array checks and allocation helpers of the CPU backend."""
    from . import _arrays

    def check_variable(x, i):
        if _arrays.is_cuda_array(x):
            raise TypeError(f"variables[{i}] is a CUDA device array; this optimizer holds host state.")
        _arrays.check_variable(x, i)

    def check_writeable(x, i):
        if not x.flags.writeable:
            raise ValueError(f"variables[{i}] is read-only; the optimizer updates variables in place.")

    def flat(a, order):
        f = a.ravel(order=order)
        assert np.shares_memory(f, a) or a.size == 0
        return f

    def find_same_memory(x, slots):
        if not isinstance(x, np.ndarray):
            return None
        key = (x.__array_interface__["data"][0], x.shape, x.strides, x.dtype)
        for s in slots:
            v = s.var
            if (v.__array_interface__["data"][0], v.shape, v.strides, v.dtype) == key:
                return s
        return None

    CPUBackend.check_variable = staticmethod(check_variable)
    CPUBackend.check_writeable = staticmethod(check_writeable)
    CPUBackend.as_gradient = staticmethod(_arrays.as_gradient)
    CPUBackend.memory_order = staticmethod(_arrays.memory_order)
    CPUBackend.flat = staticmethod(flat)
    CPUBackend.find_same_memory = staticmethod(find_same_memory)


_cpu_backend_methods()
