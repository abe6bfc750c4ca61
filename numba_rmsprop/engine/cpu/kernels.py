"""Fused CPU kernels: ``@njit(parallel=True)`` with serial twins.

One pass over memory per variable and call: the element rule of
:mod:`numba_rmsprop.engine.rule` (gradient transform, weight decay, the averages,
momentum, EMA), compiled here with ``numba.njit``. Optional state arrays are
passed as ``None`` and the rule's switches are a tuple of ``None``/``True``;
Numba prunes the branches of what is off at compile time, so each
configuration compiles into its own straight-line, vectorised loop. Every
kernel reads the per-call scalars from one array ``P``
(:mod:`numba_rmsprop.engine.layout`), loaded into a tuple once per launch.

The kernels use ``error_model="numpy"``: with Python's error model every
division carries a zero check, which stops LLVM from vectorising the loop
(the parallel gufuncs already use the NumPy model).
"""

from __future__ import annotations

import numpy as np
from numba import prange, types
from numba.extending import intrinsic, overload

from .. import clipping, config, layout, plan, rule
from ..jit import njit

_OPTS = dict(error_model="numpy", cache=config.CACHE)

# Inlined at Numba-IR level: a plain call keeps Numba's status-code return
# and blocks LLVM's loop vectoriser.
_inline = njit(inline="always", **_OPTS)
_R = rule.compile_with(_inline)
# The element rule, the clip formulas and the host's plain-Python helpers of
# the layout and the plan, compiled for CPU code (the compiled minimize loop
# and the many-runs kernels use them too).
update_element = _R.update_element
accumulate_element = _R.accumulate_element
ema_element = _R.ema_element
gradient_square = _R.gradient_square
clip_factors = _R.clip_factors
load = _inline(layout.load)
pack_call = _inline(layout.pack_call)
step_counters = _inline(plan.counters)
update_count = _inline(plan.update_count)

#: Clip mode of a group whose global clip scale the host computed (the
#: gradients of the call span several groups or large variables).
CLIP_GIVEN = 3


def cast(ref, value):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


@overload(cast, inline="always")
def _cast_ov(ref, value):
    """``value`` in ``ref``'s float type (float32 or float64), as NumPy casts it."""
    if ref == types.float32:
        return lambda ref, value: np.float32(value)
    return lambda ref, value: np.float64(value)


# ---------------------------------------------------------------- segments
# Each segment loop is a separate (not inlined) function that slices its
# segment first and indexes it from 0. Indexing ``g[o + j]`` with a
# run-time offset left Numba's negative-index wraparound in the address
# computation, and LLVM then refused to vectorise the loop (measured 8x
# slower). ``is None`` tests on arguments are pruned before typing, so each
# configuration still compiles to one straight loop.

# Optional state is sliced as ``a_ = None if a is None else a[o:o + n]`` written
# out: a helper function returning None would hide the None from the branch
# pruning of the element rule, which then fails to type.


@njit(**_OPTS)
def segment_update(x, o, g, v, mg, mom, acc, avg, s, sw, num, den, decay_on, overwrite):
    """Update flat variable ``x`` whose gradient and state start at ``o`` of their buffers."""
    n = x.size
    g_, v_ = g[o : o + n], v[o : o + n]
    if mg is None:
        mg_ = None
    else:
        mg_ = mg[o : o + n]
    if mom is None:
        mom_ = None
    else:
        mom_ = mom[o : o + n]
    if acc is None:
        acc_ = None
    else:
        acc_ = acc[o : o + n]
    if avg is None:
        avg_ = None
    else:
        avg_ = avg[o : o + n]
    for j in range(n):
        update_element(j, x, g_, v_, mg_, mom_, acc_, avg_, s, sw, num, den, decay_on, overwrite)


@njit(**_OPTS)
def segment_accumulate(x, o, g, acc, avg, s, sw, overwrite):
    n = x.size
    g_, acc_ = g[o : o + n], acc[o : o + n]
    if avg is None:
        avg_ = None
    else:
        avg_ = avg[o : o + n]
    for j in range(n):
        accumulate_element(j, x, g_, acc_, avg_, s, sw, overwrite)


@njit(**_OPTS)
def segment_ema(x, o, avg, s, overwrite):
    avg_ = avg[o : o + x.size]
    for j in range(x.size):
        ema_element(j, x, avg_, s, overwrite)


#: Norms are summed in blocks of this many elements: each block in order, then
#: the block sums in order. The serial and the parallel kernels (any thread
#: count) and the compiled minimize loop therefore add in the same order and
#: give the same clip factors to the last bit.
SUM_BLOCK = 1 << 16


@njit(**_OPTS)
def segment_sumsq(n, o, g, acc, s, sw):
    g_ = g[o : o + n]
    if acc is None:
        acc_ = None
    else:
        acc_ = acc[o : o + n]
    total = 0.0
    for j in range(n):
        total += gradient_square(j, g_, acc_, s, sw)
    return total


@njit(**_OPTS)
def blocked_sumsq(n, o, g, acc, s, sw):
    """``segment_sumsq`` in blocks of ``SUM_BLOCK``, summed in order (one thread)."""
    total = 0.0
    for lo in range(0, n, SUM_BLOCK):
        total += segment_sumsq(min(SUM_BLOCK, n - lo), o + lo, g, acc, s, sw)
    return total


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
def update_serial(x, g, v, mg, mom, acc, avg, P, sw, num, den, decay_on, overwrite):
    """One fused RMSprop update of a flat variable (serial)."""
    segment_update(x, 0, g, v, mg, mom, acc, avg, load(P), sw, num, den, decay_on, overwrite)


@njit(parallel=True, **_OPTS)
def update_parallel(x, g, v, mg, mom, acc, avg, P, sw, num, den, decay_on, overwrite, nchunks):
    """One fused RMSprop update of a flat variable (threads)."""
    s = load(P)
    for k in prange(nchunks):
        lo, hi = _chunk(x.size, k, nchunks)
        segment_update(x[lo:hi], lo, g, v, mg, mom, acc, avg, s, sw, num, den, decay_on, overwrite)


@njit(**_OPTS)
def accumulate_serial(x, g, acc, avg, P, sw, overwrite):
    """Accumulation-only call (plus the EMA), one pass (serial)."""
    segment_accumulate(x, 0, g, acc, avg, load(P), sw, overwrite)


@njit(parallel=True, **_OPTS)
def accumulate_parallel(x, g, acc, avg, P, sw, overwrite, nchunks):
    """Accumulation-only call (plus the EMA), one pass (threads)."""
    s = load(P)
    for k in prange(nchunks):
        lo, hi = _chunk(x.size, k, nchunks)
        segment_accumulate(x[lo:hi], lo, g, acc, avg, s, sw, overwrite)


@njit(**_OPTS)
def ema_serial(x, avg, P, overwrite):
    """EMA of a variable that got no gradient this call (serial)."""
    segment_ema(x, 0, avg, load(P), overwrite)


@njit(parallel=True, **_OPTS)
def ema_parallel(x, avg, P, overwrite, nchunks):
    """EMA of a variable that got no gradient this call (threads)."""
    s = load(P)
    for k in prange(nchunks):
        lo, hi = _chunk(x.size, k, nchunks)
        segment_ema(x[lo:hi], lo, avg, s, overwrite)


@njit(**_OPTS)
def sumsq_serial(g, acc, P, sw):
    """Sum of squares (float64) of the effective gradient, read-only (serial)."""
    return blocked_sumsq(g.size, 0, g, acc, load(P), sw)


@njit(parallel=True, **_OPTS)
def sumsq_parallel(g, acc, P, sw, nchunks):
    """Sum of squares (float64) of the effective gradient, read-only (threads).

    The blocks are summed in parallel and their sums in order: the result is
    ``sumsq_serial``'s, whatever the thread count.
    """
    s = load(P)
    n = g.size
    nblocks = (n + SUM_BLOCK - 1) // SUM_BLOCK
    partial = np.empty(nblocks)
    for b in prange(nblocks):
        lo = b * SUM_BLOCK
        partial[b] = segment_sumsq(min(SUM_BLOCK, n - lo), lo, g, acc, s, sw)
    total = 0.0
    for b in range(nblocks):
        total += partial[b]
    return total


# ---------------------------------------------------------------- groups
# Many small variables of one dtype form a group: their state lives in flat
# group buffers, their gradients are gathered into one buffer, and one
# compiled call updates them all, so a model with hundreds of small tensors
# pays one Python->Numba dispatch per call, not one per tensor.


@intrinsic
def _array_at(typingctx, address, size, like):
    """A 1-D C-contiguous array of ``size`` elements of ``like``'s dtype at the integer
    ``address``, owned elsewhere (no reference count), as ``numba.carray`` makes it.

    Built here rather than with ``numba.carray``: its implementation's environment
    lives in ``numba.np.arrayobj``, which a process then imports to load this kernel
    from the cache (50 ms of a first ``apply``); this code needs nothing at run time.
    """
    if not (
        isinstance(address, types.Integer)
        and isinstance(size, types.Integer)
        and isinstance(like, types.Array)
    ):
        return None
    array_type = types.Array(like.dtype, 1, "C")

    def codegen(context, builder, sig, args):
        from numba.core import cgutils
        from numba.np.arrayobj import make_array, populate_array  # compile time only

        address, size, _ = args
        element = context.get_data_type(like.dtype)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(element))
        size = context.cast(builder, size, sig.args[1], types.intp)
        array = make_array(array_type)(context, builder)
        populate_array(
            array,
            data=builder.inttoptr(address, element.as_pointer()),
            shape=cgutils.pack_array(builder, [size]),
            strides=cgutils.pack_array(builder, [itemsize]),
            itemsize=itemsize,
            meminfo=None,
        )
        return array._getvalue()

    return array_type(address, size, like), codegen


@njit(inline="always", **_OPTS)
def _member(addresses, sizes, k, like):
    """Variable ``k`` of a group as a flat array (its owner keeps it alive)."""
    return _array_at(addresses[k], sizes[k], like)


@njit(**_OPTS)
def group_sumsq(sizes, g, offsets, active, acc, P, sw, out):
    """Each active variable's sum of squares (float64) of its effective gradient into
    ``out`` (0 for inactive ones); returns their sum, added in member order."""
    s = load(P)
    total = 0.0
    for k in range(sizes.size):
        out[k] = 0.0
        if active[k] != 0:
            out[k] = blocked_sumsq(sizes[k], offsets[k], g, acc, s, sw)
        total += out[k]
    return total


@njit(**_OPTS)
def group_update(
    addresses, sizes, g, offsets, active, decay, v, mg, mom, acc, avg, P, sw, clip, overwrite
):
    """Update every active variable of a group; EMA-only for the inactive ones.

    ``clip`` is None, or ``(mode, c, scale)``: ``mode`` ``CLIP_NORM`` (per
    variable, by ``c``), ``CLIP_GLOBAL`` (by ``c`` over this group's
    gradients, which are then all the call's) or ``CLIP_GIVEN`` (``scale``,
    the global scale the host computed).
    """
    s = load(P)
    if clip is not None:
        mode, c, scale = clip
        if mode == clipping.CLIP_GLOBAL:
            sums = np.empty(sizes.size)
            total = group_sumsq(sizes, g, offsets, active, acc, P, sw, sums)
            scale = clip_factors(mode, total, c)[0]
    for k in range(addresses.size):
        x = _member(addresses, sizes, k, g)
        o = offsets[k]
        if active[k] == 0:
            if avg is not None:
                segment_ema(x, o, avg, s, overwrite)
            continue
        decay_on = decay[k] != 0
        # num/den are None or floats, never an Optional: that would stop the vectoriser.
        if clip is None:
            segment_update(x, o, g, v, mg, mom, acc, avg, s, sw, None, None, decay_on, overwrite)
        else:
            num, den = scale, 1.0
            if mode == clipping.CLIP_NORM:
                num, den = clip_factors(mode, blocked_sumsq(x.size, o, g, acc, s, sw), c)
            segment_update(
                x,
                o,
                g,
                v,
                mg,
                mom,
                acc,
                avg,
                s,
                sw,
                cast(P[0], num),
                cast(P[0], den),
                decay_on,
                overwrite,
            )


@njit(**_OPTS)
def group_accumulate(addresses, sizes, g, offsets, active, acc, avg, P, sw, overwrite):
    """Accumulation-only call over a group (EMA included), one pass per variable."""
    s = load(P)
    for k in range(addresses.size):
        x = _member(addresses, sizes, k, g)
        o = offsets[k]
        if active[k] == 0:
            if avg is not None:
                segment_ema(x, o, avg, s, overwrite)
            continue
        segment_accumulate(x, o, g, acc, avg, s, sw, overwrite)
