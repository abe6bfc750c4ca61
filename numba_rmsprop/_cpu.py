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

import math
import threading

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from . import _config
from . import _math

_OPTS = dict(error_model="numpy", cache=_config.CACHE)

# Inlined at Numba-IR level: a plain call keeps Numba's status-code return
# and blocks LLVM's loop vectoriser.
_inline = njit(inline="always", **_OPTS)
_clip_by_value = _inline(_math.clip_by_value)
_velocity = _inline(_math.velocity)
_average_gradient = _inline(_math.average_gradient)
_centered_denominator = _inline(_math.centered_denominator)
_increment = _inline(_math.increment)
_decay = _inline(_math.decay)
_moving_average = _inline(_math.moving_average)
_clipnorm_denominator = _inline(_math.clipnorm_denominator)
_global_clip_scale = _inline(_math.global_clip_scale)


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
def _update_element(j, o, x, g, v, mg, mom, acc, avg, ls, nacc, clip_num, clip_den,
                    clip_val, wd, decay_on, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite):
    """Update element ``j`` of variable ``x``; its gradient and state sit at ``o + j``."""
    i = o + j
    gi = _effective_gradient(i, g, acc, ls, nacc, clip_num, clip_den, clip_val)
    if acc is not None:
        acc[i] = 0  # stores cast to the array's dtype
    xi = x[j]
    if wd is not None:
        xd = _decay(xi, wd, lr)
        xi = xd if decay_on else xi
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
    x[j] = xi


@njit(inline="always", **_OPTS)
def _accumulate_element(j, o, x, g, acc, avg, ls, ema_m, ema_omm, overwrite):
    i = o + j
    gi = g[i]
    if ls is not None:
        gi = gi / ls
    acc[i] = gi + acc[i]
    if avg is not None:
        ai = _moving_average(avg[i], x[j], ema_m, ema_omm)
        avg[i] = ai
        if overwrite:
            x[j] = ai


@njit(inline="always", **_OPTS)
def _ema_element(j, o, x, avg, ema_m, ema_omm, overwrite):
    i = o + j
    ai = _moving_average(avg[i], x[j], ema_m, ema_omm)
    avg[i] = ai
    if overwrite:
        x[j] = ai


@njit(inline="always", **_OPTS)
def _sumsq_element(i, g, acc, ls, nacc):
    gi = _effective_gradient(i, g, acc, ls, nacc, None, None, None)
    gd = np.float64(gi)
    return gd * gd


# ---------------------------------------------------------------- segments
# Each segment loop is a separate (not inlined) function that
# slice their segment first and index it from 0. Indexing ``g[o + j]`` with a
# run-time offset left Numba's negative-index wraparound in the address
# computation, and LLVM then refused to vectorise the loop (measured 8x
# slower). ``is None`` tests on arguments are pruned before typing, so each
# configuration still compiles to one straight loop.

@njit(**_OPTS)
def _segment_update(x, o, g, v, mg, mom, acc, avg, ls, nacc, num, den, clip_val, wd,
                    decay_on, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite):
    n = x.size
    g_, v_ = g[o:o + n], v[o:o + n]
    if mg is None:
        mg_ = None
    else:
        mg_ = mg[o:o + n]
    if mom is None:
        mom_ = None
    else:
        mom_ = mom[o:o + n]
    if acc is None:
        acc_ = None
    else:
        acc_ = acc[o:o + n]
    if avg is None:
        avg_ = None
    else:
        avg_ = avg[o:o + n]
    for j in range(n):
        _update_element(j, 0, x, g_, v_, mg_, mom_, acc_, avg_, ls, nacc, num, den, clip_val,
                        wd, decay_on, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite)


@njit(**_OPTS)
def _segment_accumulate(x, o, g, acc, avg, ls, ema_m, ema_omm, overwrite):
    n = x.size
    g_, acc_ = g[o:o + n], acc[o:o + n]
    if avg is None:
        avg_ = None
    else:
        avg_ = avg[o:o + n]
    for j in range(n):
        _accumulate_element(j, 0, x, g_, acc_, avg_, ls, ema_m, ema_omm, overwrite)


@njit(**_OPTS)
def _segment_ema(x, o, avg, ema_m, ema_omm, overwrite):
    avg_ = avg[o:o + x.size]
    for j in range(x.size):
        _ema_element(j, 0, x, avg_, ema_m, ema_omm, overwrite)


@njit(**_OPTS)
def _segment_sumsq(x, o, g, acc, ls, nacc):
    n = x.size
    g_ = g[o:o + n]
    if acc is None:
        acc_ = None
    else:
        acc_ = acc[o:o + n]
    s = 0.0
    for j in range(n):
        s += _sumsq_element(j, g_, acc_, ls, nacc)
    return s


# ---------------------------------------------------------------- drivers
# Per-variable kernels, each twice: serial for small arrays, and a prange
# over per-thread chunks for large ones. A prange over elements did not
# vectorise (a chunk starts at a run-time index, so LLVM could not drop
# Numba's negative-index wraparound; measured 5x slower than serial at 1M),
# so each chunk hands a slice to the same vectorised segment loop. The
# caller passes ``nchunks`` (the thread count): calling
# numba.get_num_threads() inside would make the kernel uncacheable.

@njit(**_OPTS)
def _chunk(n, k, nchunks):
    """Bounds of chunk ``k`` of ``nchunks`` over ``n`` elements."""
    return (k * n) // nchunks, ((k + 1) * n) // nchunks


@njit(**_OPTS)
def update_serial(x, g, v, mg, mom, acc, avg, ls, nacc, clip_num, clip_den,
                  clip_val, wd, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite):
    """One fused RMSprop update of a flat variable (serial)."""
    _segment_update(x, 0, g, v, mg, mom, acc, avg, ls, nacc, clip_num, clip_den, clip_val,
                    wd, True, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite)


@njit(parallel=True, **_OPTS)
def update_parallel(x, g, v, mg, mom, acc, avg, ls, nacc, clip_num, clip_den,
                    clip_val, wd, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite, nchunks):
    """One fused RMSprop update of a flat variable (threads)."""
    for k in prange(nchunks):
        lo, hi = _chunk(x.size, k, nchunks)
        _segment_update(x[lo:hi], lo, g, v, mg, mom, acc, avg, ls, nacc, clip_num, clip_den,
                        clip_val, wd, True, lr, rho, omr, eps, mu, ema_m, ema_omm, overwrite)


@njit(**_OPTS)
def accumulate_serial(x, g, acc, avg, ls, ema_m, ema_omm, overwrite):
    """Accumulation-only call (plus the EMA), one pass (serial)."""
    _segment_accumulate(x, 0, g, acc, avg, ls, ema_m, ema_omm, overwrite)


@njit(parallel=True, **_OPTS)
def accumulate_parallel(x, g, acc, avg, ls, ema_m, ema_omm, overwrite, nchunks):
    """Accumulation-only call (plus the EMA), one pass (threads)."""
    for k in prange(nchunks):
        lo, hi = _chunk(x.size, k, nchunks)
        _segment_accumulate(x[lo:hi], lo, g, acc, avg, ls, ema_m, ema_omm, overwrite)


@njit(**_OPTS)
def ema_serial(x, avg, ema_m, ema_omm, overwrite):
    """EMA of a variable that got no gradient this call (serial)."""
    _segment_ema(x, 0, avg, ema_m, ema_omm, overwrite)


@njit(parallel=True, **_OPTS)
def ema_parallel(x, avg, ema_m, ema_omm, overwrite, nchunks):
    """EMA of a variable that got no gradient this call (threads)."""
    for k in prange(nchunks):
        lo, hi = _chunk(x.size, k, nchunks)
        _segment_ema(x[lo:hi], lo, avg, ema_m, ema_omm, overwrite)


@njit(**_OPTS)
def sumsq_serial(g, acc, ls, nacc):
    """Sum of squares (float64) of the effective gradient, read-only (serial)."""
    return _segment_sumsq(g, 0, g, acc, ls, nacc)


@njit(parallel=True, **_OPTS)
def sumsq_parallel(g, acc, ls, nacc, nchunks):
    """Sum of squares (float64) of the effective gradient, read-only (threads)."""
    s = 0.0
    for k in prange(nchunks):
        lo, hi = _chunk(g.size, k, nchunks)
        s += _segment_sumsq(g[lo:hi], lo, g, acc, ls, nacc)
    return s


# ---------------------------------------------------------------- groups
# Many small variables of one dtype form a group: their state lives in flat
# group buffers, their gradients are gathered into one buffer, and one
# compiled call updates them all, so a model with hundreds of small tensors
# pays one Python->Numba dispatch per call, not one per tensor. ``p`` holds
# the per-call scalars in the group's dtype (see ``P_*``); storing into it
# casts float64 values to that dtype exactly as NumPy would.

@intrinsic
def _as_voidptr(typingctx, address):
    """An integer address as a ``void*`` (for ``numba.carray``)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], ir.PointerType(ir.IntType(8)))

    return types.voidptr(address), codegen


@njit(inline="always", **_OPTS)
def _member(addresses, sizes, k, like):
    """Variable ``k`` of a group as a flat array (its owner keeps it alive)."""
    return numba.carray(_as_voidptr(addresses[k]), (sizes[k],), like.dtype)


P_LR, P_RHO, P_OMR, P_EPS, P_MU, P_EMA_M, P_EMA_OMM, P_SCALE, P_NUM, P_DEN, P_ONE = range(11)
N_PARAMS = 11


@njit(**_OPTS)
def group_sumsq(addresses, sizes, g, offsets, active, acc, ls, nacc):
    """Sum of squares (float64) of the active variables' effective gradients."""
    s = 0.0
    for k in range(addresses.size):
        if active[k] == 0:
            continue
        s += _segment_sumsq(_member(addresses, sizes, k, g), offsets[k], g, acc, ls, nacc)
    return s


@njit(**_OPTS)
def group_update(addresses, sizes, g, offsets, active, decay, v, mg, mom, acc, avg, p, ls,
                 nacc, clipnorm, global_clip, scale_given, clip_val, wd, overwrite):
    """Update every active variable of a group; EMA-only for the inactive ones.

    Clipping: ``clipnorm`` (per variable), ``global_clip`` (the global norm
    of this group, which then holds every gradient of the call), or
    ``scale_given`` (a global scale the host computed into ``p[P_SCALE]``).
    """
    if global_clip is not None:
        total = group_sumsq(addresses, sizes, g, offsets, active, acc, ls, nacc)
        p[P_SCALE] = _global_clip_scale(total, global_clip)
    lr, rho, omr, eps, mu = p[P_LR], p[P_RHO], p[P_OMR], p[P_EPS], p[P_MU]
    ema_m, ema_omm = p[P_EMA_M], p[P_EMA_OMM]
    for k in range(addresses.size):
        x = _member(addresses, sizes, k, g)
        o = offsets[k]
        if active[k] == 0:
            if avg is not None:
                _segment_ema(x, o, avg, ema_m, ema_omm, overwrite)
            continue
        decay_on = decay[k] != 0
        if clipnorm is not None:
            ss = _segment_sumsq(x, o, g, acc, ls, nacc)
            p[P_NUM] = clipnorm
            p[P_DEN] = _clipnorm_denominator(ss, clipnorm)
            _segment_update(x, o, g, v, mg, mom, acc, avg, ls, nacc, p[P_NUM], p[P_DEN],
                            clip_val, wd, decay_on, lr, rho, omr, eps, mu, ema_m, ema_omm,
                            overwrite)
        elif global_clip is not None or scale_given is not None:
            _segment_update(x, o, g, v, mg, mom, acc, avg, ls, nacc, p[P_SCALE], p[P_ONE],
                            clip_val, wd, decay_on, lr, rho, omr, eps, mu, ema_m, ema_omm,
                            overwrite)
        else:
            _segment_update(x, o, g, v, mg, mom, acc, avg, ls, nacc, None, None,
                            clip_val, wd, decay_on, lr, rho, omr, eps, mu, ema_m, ema_omm,
                            overwrite)


@njit(**_OPTS)
def group_accumulate(addresses, sizes, g, offsets, active, acc, avg, p, ls, overwrite):
    """Accumulation-only call over a group (EMA included), one pass per variable."""
    ema_m, ema_omm = p[P_EMA_M], p[P_EMA_OMM]
    for k in range(addresses.size):
        x = _member(addresses, sizes, k, g)
        o = offsets[k]
        if active[k] == 0:
            if avg is not None:
                _segment_ema(x, o, avg, ema_m, ema_omm, overwrite)
            continue
        _segment_accumulate(x, o, g, acc, avg, ls, ema_m, ema_omm, overwrite)


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


