"""The CUDA kernels of the element rule, and their launches.

One fused grid-stride pass per variable and call, folded exactly as the CPU
kernels fold it: loss scale, accumulation mean (and reset), clip, decoupled
weight decay, the rho-averages, momentum and the EMA (with overwrite). The
arithmetic is the element rule of :mod:`numba_rmsprop.engine.rule`, compiled with
``cuda.jit(device=True, inline="always")``, so both backends perform the same
operations in the same order and dtype. Optional pieces are selected at
compile time: each configuration (the rule's switch tuple, whether a norm
clip applies, which state arrays exist) gets its own kernel from a factory
whose closure constants Numba folds; the kernel hands the rule ``None`` for
what is off, so disabled branches are pruned before typing, exactly as on
the CPU. A kernel launch cannot pass ``None`` (numba-cuda marshals no
``none`` arguments), so absent state arrives as a 2-element dummy array
that the kernel replaces by ``None``. The per-call scalars
(:mod:`numba_rmsprop.engine.layout`) are one tuple argument. No fastmath.

Norms (``clipnorm``, ``global_clipnorm``) are reduced on the device in float64:
each block reduces in shared memory and writes a partial sum; the last block
of a variable to finish (a ticket counter, reset by that block) sums the
partials in a fixed order, so the result is deterministic. A small kernel
(one thread per variable) then turns the sums into the clip factors with the
formulas the CPU uses (``clipping.clipnorm_denominator``,
``clipping.global_clip_scale``: NaN and zero norms included; the global sum
adds the variables in call order) and stores them cast to float32 and
float64 in small device arrays, which the update kernels read. Nothing is
copied back to the host: a call only launches kernels. The learning rate
and the EMA momentum are the only per-call host scalars.

Floating point
--------------
NVVM contracts ``a * b + c`` into fused multiply-adds and Numba-CUDA has no
switch to turn that off, so on a real GPU results may differ from the CPU
backend in the last bit of some operations (e.g. ``rho * v + (1 - rho) * g**2``).
Divisions and square roots are IEEE-rounded (no fastmath).

Launches
--------
A call costs one kernel launch per variable (two with a norm clip, plus one
for the clip factors). Launch configurations are computed once per size and
cached, so a launch is a single dispatch through Numba's fast path; for
models with hundreds of tiny tensors the launch overhead (some microseconds
each) dominates the arithmetic. ``benchmarks/bench_cuda.py`` measures it.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from .. import clipping, config, rule
from .driver import SIM as _SIM
from .driver import cuda

# ====================================================================== kernels
#: Threads per block: a power of two in [_MIN_THREADS, _TPB]. Under the
#: simulator (every thread is a Python thread) blocks are tiny and grids are
#: capped low, which also exercises the multi-block and grid-stride paths on
#: the small arrays tests use.
_SHARED = 1024  # shared-memory reduction buffer; >= any block size used
_TPB = 1 << (max(1, min(int(config.CUDA_THREADS_PER_BLOCK), _SHARED)).bit_length() - 1)
if _SIM:
    _TPB, _MIN_THREADS, _MAX_BLOCKS, _MAX_REDUCE_BLOCKS = 4, 2, 3, 2
else:
    _MIN_THREADS, _MAX_BLOCKS, _MAX_REDUCE_BLOCKS = 32, 1 << 20, 1024
    _MIN_THREADS = min(_MIN_THREADS, _TPB)

if cuda is not None:
    _R = rule.compile_with(cuda.jit(device=True, inline="always"))
    _clip_factors = _R.clip_factors
    _ema_element = _R.ema_element

    @cuda.jit(device=True)
    def _block_tree_sum(sh, t, nt):
        """In-place tree reduction of ``sh[:nt]`` (``nt`` a power of two) into ``sh[0]``."""
        step = nt // 2
        while step > 0:
            if t < step:
                sh[t] += sh[t + step]
            cuda.syncthreads()
            step //= 2

    @cuda.jit
    def _factor_kernel(sums, n, mode, c, fac32, fac64):
        """Clip factors ``(num, den)`` per variable from its float64 sum of squares.

        ``mode`` ``CLIP_NORM``: per-variable clipnorm; ``CLIP_GLOBAL``: the
        global scale over ``sums[0:n]`` summed in order
        (:func:`numba_rmsprop.engine.clipping.clip_factors`). Stores cast to each dtype.
        """
        k = cuda.grid(1)
        if k < n:
            if mode == clipping.CLIP_NORM:
                total = sums[k]
            else:
                total = 0.0
                for j in range(n):
                    total += sums[j]
            num, den = _clip_factors(mode, total, c)
            fac32[2 * k] = num
            fac32[2 * k + 1] = den
            fac64[2 * k] = num
            fac64[2 * k + 1] = den

    @cuda.jit
    def _fill_kernel(a, value):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            a[i] = value

    @cuda.jit
    def _copy_kernel(dst, src):
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            dst[i] = src[i]

    # Strided <-> flat copies; ``forder`` picks the flat order, ``to_flat`` the direction.
    @cuda.jit
    def _strided1(nd, flat, forder, to_flat):
        for i in range(cuda.grid(1), flat.size, cuda.gridsize(1)):
            if to_flat:
                flat[i] = nd[i]
            else:
                nd[i] = flat[i]

    @cuda.jit
    def _strided2(nd, flat, forder, to_flat):
        n0 = nd.shape[0]
        n1 = nd.shape[1]
        for i in range(cuda.grid(1), flat.size, cuda.gridsize(1)):
            if forder:
                i0 = i % n0
                i1 = i // n0
            else:
                i1 = i % n1
                i0 = i // n1
            if to_flat:
                flat[i] = nd[i0, i1]
            else:
                nd[i0, i1] = flat[i]

    @cuda.jit
    def _strided3(nd, flat, forder, to_flat):
        n0 = nd.shape[0]
        n1 = nd.shape[1]
        n2 = nd.shape[2]
        for i in range(cuda.grid(1), flat.size, cuda.gridsize(1)):
            if forder:
                i0 = i % n0
                r = i // n0
                i1 = r % n1
                i2 = r // n1
            else:
                i2 = i % n2
                r = i // n2
                i1 = r % n1
                i0 = r // n1
            if to_flat:
                flat[i] = nd[i0, i1, i2]
            else:
                nd[i0, i1, i2] = flat[i]

    @cuda.jit
    def _strided4(nd, flat, forder, to_flat):
        n0 = nd.shape[0]
        n1 = nd.shape[1]
        n2 = nd.shape[2]
        n3 = nd.shape[3]
        for i in range(cuda.grid(1), flat.size, cuda.gridsize(1)):
            if forder:
                i0 = i % n0
                r = i // n0
                i1 = r % n1
                r = r // n1
                i2 = r % n2
                i3 = r // n2
            else:
                i3 = i % n3
                r = i // n3
                i2 = r % n2
                r = r // n2
                i1 = r % n1
                i0 = r // n1
            if to_flat:
                flat[i] = nd[i0, i1, i2, i3]
            else:
                nd[i0, i1, i2, i3] = flat[i]

    _STRIDED = {1: _strided1, 2: _strided2, 3: _strided3, 4: _strided4}

    @cuda.jit
    def _ema_kernel(x, avg, s, overwrite):
        """EMA of a variable that got no gradient this call."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            _ema_element(i, x, avg, s, overwrite)


MAX_STRIDED_NDIM = 4


# ------------------------------------------------------------ kernel factories
# Each configuration is a tuple of bools; the factories close over them as
# constants, so Numba prunes the disabled branches before typing (types then
# match the CPU kernels, which prune ``None`` arguments the same way).
_FACTORY_LOCK = threading.Lock()
_UPDATE_KERNELS: dict = {}
_ACCUMULATE_KERNELS: dict = {}
_SUMSQ_KERNELS: dict = {}


def _cached_kernel(cache: dict, factory, cfg):
    """``factory(*cfg)``, built once per ``cfg`` even when threads race."""
    k = cache.get(cfg)
    if k is None:
        with _FACTORY_LOCK:
            k = cache.get(cfg)
            if k is None:
                k = cache[cfg] = factory(*cfg)
    return k


def _update_kernel(cfg):
    """Fused update kernel for ``cfg = (switches, norm clip, centered, momentum,
    accumulation, EMA)``."""
    return _cached_kernel(_UPDATE_KERNELS, _make_update_kernel, cfg)


def _make_update_kernel(SWITCHES, HAS_CLIP, HAS_MG, HAS_MOM, HAS_ACC, HAS_AVG):
    update_element = _R.update_element

    @cuda.jit
    def update(x, g, v, mg, mom, acc, avg, s, fac, k, decay_on, overwrite):
        mg_ = mg if HAS_MG else None
        mom_ = mom if HAS_MOM else None
        acc_ = acc if HAS_ACC else None
        avg_ = avg if HAS_AVG else None
        num = fac[2 * k] if HAS_CLIP else None
        den = fac[2 * k + 1] if HAS_CLIP else None
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            update_element(
                i, x, g, v, mg_, mom_, acc_, avg_, s, SWITCHES, num, den, decay_on, overwrite
            )

    return update


def _accumulate_kernel(cfg):
    """Accumulation-only kernel for ``cfg = (switches, EMA)``."""
    return _cached_kernel(_ACCUMULATE_KERNELS, _make_accumulate_kernel, cfg)


def _make_accumulate_kernel(SWITCHES, HAS_AVG):
    accumulate_element = _R.accumulate_element

    @cuda.jit
    def accumulate(x, g, acc, avg, s, overwrite):
        avg_ = avg if HAS_AVG else None
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            accumulate_element(i, x, g, acc, avg_, s, SWITCHES, overwrite)

    return accumulate


def _sumsq_kernel(cfg):
    """Sum-of-squares kernel for ``cfg = (switches, accumulation)``."""
    return _cached_kernel(_SUMSQ_KERNELS, _make_sumsq_kernel, cfg)


def _make_sumsq_kernel(SWITCHES, HAS_ACC):
    tree = _block_tree_sum
    gradient_square = _R.gradient_square
    float64 = np.float64
    int32 = np.int32

    @cuda.jit
    def sumsq(g, acc, p, partials, base, tickets, sums, k):
        """Float64 sum of squares of the effective gradient (no clip) into ``sums[k]``."""
        sh = cuda.shared.array(1024, dtype=float64)  # 1024 == _SHARED
        last = cuda.shared.array(1, dtype=int32)
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        acc_ = acc if HAS_ACC else None
        s = 0.0
        for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
            s += gradient_square(i, g, acc_, p, SWITCHES)
        sh[t] = s
        cuda.syncthreads()
        tree(sh, t, nt)
        if t == 0:
            partials[base + cuda.blockIdx.x] = sh[0]
            cuda.threadfence()
            ticket = cuda.atomic.add(tickets, k, 1)
            last[0] = 1 if ticket == cuda.gridDim.x - 1 else 0
        cuda.syncthreads()
        if last[0] == 1:
            # The last block of this variable: sum the partials in a fixed order.
            nb = cuda.gridDim.x
            s2 = 0.0
            for j in range(t, nb, nt):
                s2 += partials[base + j]
            sh[t] = s2
            cuda.syncthreads()
            tree(sh, t, nt)
            if t == 0:
                sums[k] = sh[0]
                tickets[k] = 0

    return sumsq


def _dims(size: int, cap: int):
    threads = _MIN_THREADS
    while threads < size and threads < _TPB:
        threads *= 2
    return min(-(-size // threads), cap), threads


_CONFIGURED: dict = {}


def _launch(kernel, blocks: int, threads: int, *args) -> None:
    """``kernel[blocks, threads](*args)``, reusing the configured launcher.

    Numba warns about grids under 128 blocks; small variables make such grids
    on purpose, so the warning is silenced where the launcher is configured.
    """
    if _SIM:  # the simulator's kernel[...] mutates the kernel: never cache
        kernel[blocks, threads](*args)
        return
    key = (kernel, blocks, threads)
    launcher = _CONFIGURED.get(key)
    if launcher is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            launcher = kernel[blocks, threads]
        _CONFIGURED[key] = launcher
    launcher(*args)


def _fill(flat, value) -> None:
    if flat.size:
        b, t = _dims(flat.size, _MAX_BLOCKS)
        _launch(_fill_kernel, b, t, flat, value)


def _strided_copy(nd, flat, order: str, to_flat: bool) -> None:
    """Copy between an N-d (strided) device array and a flat one in ``order``."""
    if flat.size == 0:
        return
    if nd.ndim == 0:
        nd = nd.reshape(1)
    b, t = _dims(flat.size, _MAX_BLOCKS)
    _launch(_STRIDED[nd.ndim], b, t, nd, flat, 1 if order == "F" else 0, 1 if to_flat else 0)
