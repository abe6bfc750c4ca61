"""Fused CPU kernels: ``@njit(parallel=True)`` with serial twins.

One pass over memory per variable and call: the element rule of
:mod:`numba_rmsprop._rule` (gradient transform, weight decay, the averages,
momentum, EMA), compiled here with ``numba.njit``. Optional state arrays are
passed as ``None`` and the rule's switches are a tuple of ``None``/``True``;
Numba prunes the branches of what is off at compile time, so each
configuration compiles into its own straight-line, vectorised loop. Every
kernel reads the per-call scalars from one array ``P``
(:mod:`numba_rmsprop._layout`), loaded into a tuple once per launch.

The kernels use ``error_model="numpy"``: with Python's error model every
division carries a zero check, which stops LLVM from vectorising the loop
(the parallel gufuncs already use the NumPy model).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from . import _config, _layout, _math, _rule

_OPTS = dict(error_model="numpy", cache=_config.CACHE)

# Inlined at Numba-IR level: a plain call keeps Numba's status-code return
# and blocks LLVM's loop vectoriser.
_inline = njit(inline="always", **_OPTS)
_R = _rule.compile_with(_inline)
_update_element = _R.update_element
_accumulate_element = _R.accumulate_element
_ema_element = _R.ema_element
_gradient_square = _R.gradient_square
_clip_factors = _R.clip_factors
_load = _inline(_layout.load)

#: Clip mode of a group whose global clip scale the host computed (the
#: gradients of the call span several groups or large variables).
CLIP_GIVEN = 3


def type_key(value):
    """A hashable key that equals for values Numba types alike, or None when unsure.

    Much cheaper than ``numba.typeof`` (about 1 us against 20-50 us for a
    tuple of arrays): arrays by dtype, dimension, layout, writeability and
    alignment (the fields of ``numba.types.Array``), Python and NumPy scalars by
    type (integers also by whether they fit int64), tuples element by element.
    Anything else gives None: the caller then types it with Numba.
    """
    if value is None or isinstance(value, (bool, float, complex, str)):
        return value.__class__
    if isinstance(value, np.ndarray):
        f = value.flags
        layout = "C" if f.c_contiguous else "F" if f.f_contiguous else "A"
        return (value.dtype.str, value.dtype.isnative, value.ndim, layout, f.writeable,
                f.aligned, type(value) is np.ndarray)
    if isinstance(value, int):
        return (int, -(1 << 63) <= value < (1 << 63))
    if isinstance(value, np.generic):
        return (value.__class__, value.dtype.str)
    if isinstance(value, tuple) and value.__class__ is tuple:
        keys = tuple(type_key(v) for v in value)
        return None if any(k is None for k in keys) else ("tuple",) + keys
    return None


class EntryCache:
    """A small bounded map from a key to a compiled entry point (oldest out first)."""

    def __init__(self, size: int = 256):
        self.size = size
        self.entries: dict = {}

    @staticmethod
    def key(owner, args):
        """``(owner, type_key(args))``, or None when the arguments' key is unsure."""
        key = type_key(args)
        return None if key is None else (owner, key)

    def get(self, key):
        return None if key is None else self.entries.get(key)

    def put(self, key, entry) -> None:
        if key is None:
            return
        if len(self.entries) >= self.size:
            self.entries.pop(next(iter(self.entries)), None)
        self.entries[key] = entry


_ENTRIES = EntryCache()


def entry_point(dispatcher, args, **replace):
    """The compiled entry of ``dispatcher`` for the types of ``args``, or the dispatcher.

    Calling the entry skips Numba's type dispatch: the caller guarantees that
    later calls pass arguments of the same types. ``replace`` names
    arguments (by the kernel's parameter names) whose type is read from
    another array of the same dtype, dimension and layout (e.g. the group's
    own gradient buffer for a user's, possibly read-only, gradient). Entries
    are remembered by :func:`type_key` of the arguments.
    """
    import inspect

    if replace:
        names = list(inspect.signature(dispatcher.py_func).parameters)
        args = tuple(replace.get(n, a) for n, a in zip(names, args))
    key = EntryCache.key(dispatcher, args)
    entry = _ENTRIES.get(key)
    if entry is not None:
        return entry
    try:
        entry = dispatcher.compile(tuple(numba.typeof(a) for a in args))
    except Exception:  # pragma: no cover - numba internals changed
        return dispatcher
    _ENTRIES.put(key, entry)
    return entry


def _cast(ref, value):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


@overload(_cast, inline="always")
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
        _update_element(j, x, g_, v_, mg_, mom_, acc_, avg_, s, sw, num, den, decay_on,
                        overwrite)


@njit(**_OPTS)
def segment_accumulate(x, o, g, acc, avg, s, sw, overwrite):
    n = x.size
    g_, acc_ = g[o:o + n], acc[o:o + n]
    if avg is None:
        avg_ = None
    else:
        avg_ = avg[o:o + n]
    for j in range(n):
        _accumulate_element(j, x, g_, acc_, avg_, s, sw, overwrite)


@njit(**_OPTS)
def segment_ema(x, o, avg, s, overwrite):
    avg_ = avg[o:o + x.size]
    for j in range(x.size):
        _ema_element(j, x, avg_, s, overwrite)


#: Norms are summed in blocks of this many elements: each block in order, then
#: the block sums in order. The serial and the parallel kernels (any thread
#: count) and the compiled minimize loop therefore add in the same order and
#: give the same clip factors to the last bit.
SUM_BLOCK = 1 << 16


@njit(**_OPTS)
def segment_sumsq(n, o, g, acc, s, sw):
    g_ = g[o:o + n]
    if acc is None:
        acc_ = None
    else:
        acc_ = acc[o:o + n]
    total = 0.0
    for j in range(n):
        total += _gradient_square(j, g_, acc_, s, sw)
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
    segment_update(x, 0, g, v, mg, mom, acc, avg, _load(P), sw, num, den, decay_on, overwrite)


@njit(parallel=True, **_OPTS)
def update_parallel(x, g, v, mg, mom, acc, avg, P, sw, num, den, decay_on, overwrite, nchunks):
    """One fused RMSprop update of a flat variable (threads)."""
    s = _load(P)
    for k in prange(nchunks):
        lo, hi = _chunk(x.size, k, nchunks)
        segment_update(x[lo:hi], lo, g, v, mg, mom, acc, avg, s, sw, num, den, decay_on,
                       overwrite)


@njit(**_OPTS)
def accumulate_serial(x, g, acc, avg, P, sw, overwrite):
    """Accumulation-only call (plus the EMA), one pass (serial)."""
    segment_accumulate(x, 0, g, acc, avg, _load(P), sw, overwrite)


@njit(parallel=True, **_OPTS)
def accumulate_parallel(x, g, acc, avg, P, sw, overwrite, nchunks):
    """Accumulation-only call (plus the EMA), one pass (threads)."""
    s = _load(P)
    for k in prange(nchunks):
        lo, hi = _chunk(x.size, k, nchunks)
        segment_accumulate(x[lo:hi], lo, g, acc, avg, s, sw, overwrite)


@njit(**_OPTS)
def ema_serial(x, avg, P, overwrite):
    """EMA of a variable that got no gradient this call (serial)."""
    segment_ema(x, 0, avg, _load(P), overwrite)


@njit(parallel=True, **_OPTS)
def ema_parallel(x, avg, P, overwrite, nchunks):
    """EMA of a variable that got no gradient this call (threads)."""
    s = _load(P)
    for k in prange(nchunks):
        lo, hi = _chunk(x.size, k, nchunks)
        segment_ema(x[lo:hi], lo, avg, s, overwrite)


@njit(**_OPTS)
def sumsq_serial(g, acc, P, sw):
    """Sum of squares (float64) of the effective gradient, read-only (serial)."""
    return blocked_sumsq(g.size, 0, g, acc, _load(P), sw)


@njit(parallel=True, **_OPTS)
def sumsq_parallel(g, acc, P, sw, nchunks):
    """Sum of squares (float64) of the effective gradient, read-only (threads).

    The blocks are summed in parallel and their sums in order: the result is
    ``sumsq_serial``'s, whatever the thread count.
    """
    s = _load(P)
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


@njit(**_OPTS)
def group_sumsq(sizes, g, offsets, active, acc, P, sw, out):
    """Each active variable's sum of squares (float64) of its effective gradient into
    ``out`` (0 for inactive ones); returns their sum, added in member order."""
    s = _load(P)
    total = 0.0
    for k in range(sizes.size):
        out[k] = 0.0
        if active[k] != 0:
            out[k] = blocked_sumsq(sizes[k], offsets[k], g, acc, s, sw)
        total += out[k]
    return total


@njit(**_OPTS)
def group_update(addresses, sizes, g, offsets, active, decay, v, mg, mom, acc, avg, P, sw,
                 clip, overwrite):
    """Update every active variable of a group; EMA-only for the inactive ones.

    ``clip`` is None, or ``(mode, c, scale)``: ``mode`` ``CLIP_NORM`` (per
    variable, by ``c``), ``CLIP_GLOBAL`` (by ``c`` over this group's
    gradients, which are then all the call's) or ``CLIP_GIVEN`` (``scale``,
    the global scale the host computed).
    """
    s = _load(P)
    if clip is not None:
        mode, c, scale = clip
        if mode == _math.CLIP_GLOBAL:
            sums = np.empty(sizes.size)
            total = group_sumsq(sizes, g, offsets, active, acc, P, sw, sums)
            scale = _clip_factors(mode, total, c)[0]
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
            if mode == _math.CLIP_NORM:
                num, den = _clip_factors(mode, blocked_sumsq(x.size, o, g, acc, s, sw), c)
            segment_update(x, o, g, v, mg, mom, acc, avg, s, sw, _cast(P[0], num),
                           _cast(P[0], den), decay_on, overwrite)


@njit(**_OPTS)
def group_accumulate(addresses, sizes, g, offsets, active, acc, avg, P, sw, overwrite):
    """Accumulation-only call over a group (EMA included), one pass per variable."""
    s = _load(P)
    for k in range(addresses.size):
        x = _member(addresses, sizes, k, g)
        o = offsets[k]
        if active[k] == 0:
            if avg is not None:
                segment_ema(x, o, avg, s, overwrite)
            continue
        segment_accumulate(x, o, g, acc, avg, s, sw, overwrite)
