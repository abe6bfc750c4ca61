"""Device-neutral scalar formulas: clipping factors from a norm, and the clip by value.

Plain Python functions of scalars, used as they are on the host and compiled
into the kernels by :mod:`numba_rmsprop.engine.rule` (with ``numba.njit`` for the
CPU, ``numba.cuda.jit(device=True)`` for CUDA), so every backend performs the
same operations in the same order: Keras's order, operation by operation.
No float literal appears in a formula of the variable's dtype, so float32
stays float32.
"""

import math


def clip_by_value(g, c):
    """``clip(g, -c, c)``; NaN stays NaN."""
    if g > c:
        return c
    if g < -c:
        return -c
    return g


def clipnorm_denominator(sumsq, c):
    """Keras's ``max(norm, c)`` for ``g * c / max(norm, c)``; a zero norm stays 0, NaN
    propagates."""
    norm = math.sqrt(sumsq) if sumsq > 0 else sumsq
    if norm != norm or norm > c:
        return norm
    return c


def global_clip_scale(sumsq, c):
    """Keras's ``c * min(1/n, 1/c) + (n - n)`` for the global norm ``n = sqrt(sumsq)``.

    Written without a division by zero so that it runs the same in Python,
    Numba and CUDA: ``1/0`` is ``inf``, and a NaN or infinite norm makes the
    scale NaN, as in Keras.
    """
    n = math.sqrt(sumsq) if sumsq >= 0 else math.nan
    inv_c = 1.0 / c
    if n > 0:
        inv_n = 1.0 / n
    elif n == 0:
        inv_n = math.inf
    else:
        inv_n = n  # NaN
    m = inv_n if (inv_n != inv_n or inv_n < inv_c) else inv_c
    return c * m + (n - n)


#: Clip modes of :func:`clip_factors`.
CLIP_NORM = 1
CLIP_GLOBAL = 2


def clip_factors(mode, sumsq, c):
    """``(num, den)`` of the clipped gradient ``g * num / den``, in float64.

    ``CLIP_NORM`` (per variable, Keras's ``clipnorm``): ``(c, max(norm, c))``;
    ``CLIP_GLOBAL`` (``global_clipnorm``, ``sumsq`` summed over every
    gradient of the call): ``(scale, 1)``. The one place the factors are
    formed: the host, the CPU kernels, the compiled loop and the CUDA factor
    kernel all call it.
    """
    if mode == CLIP_NORM:
        return c, clipnorm_denominator(sumsq, c)
    return global_clip_scale(sumsq, c), 1.0
