"""Device-neutral scalar arithmetic shared by the CPU and CUDA kernels.

These are plain Python functions of scalars. ``_cpu`` compiles them with
``numba.njit`` and ``_cuda`` with ``numba.cuda.jit(device=True)``, so both
backends perform the same operations in the same order: Keras's order,
operation by operation. All arguments arrive already cast to the variable's
dtype; no float literal appears here, so float32 stays float32.
"""

import math


def clip_by_value(g, c):
    """``clip(g, -c, c)``; NaN stays NaN."""
    if g > c:
        return c
    if g < -c:
        return -c
    return g


def velocity(v, g, rho, one_minus_rho):
    """``rho * v + (1 - rho) * g**2``."""
    return rho * v + one_minus_rho * (g * g)


def average_gradient(mg, g, rho, one_minus_rho):
    """``rho * mg + (1 - rho) * g`` (centered RMSprop)."""
    return rho * mg + one_minus_rho * g


def centered_denominator(v, mg, eps):
    """``max(v - mg**2, 0) + eps``; the clamp only acts where rounding made it negative."""
    d = v - mg * mg
    if d < 0:
        d = d - d  # 0 in d's own dtype (a literal 0 would promote float32 to float64)
    return d + eps


def increment(lr, g, denominator):
    """``lr * g / sqrt(denominator)``."""
    return (lr * g) / math.sqrt(denominator)


def decay(x, wd, lr):
    """Decoupled weight decay, Keras's ``x - x * wd * lr``."""
    return x - x * wd * lr


def moving_average(avg, x, momentum, one_minus_momentum):
    """EMA of the weights: ``momentum * avg + (1 - momentum) * x``."""
    return momentum * avg + one_minus_momentum * x


def clipnorm_denominator(sumsq, c):
    """Keras's ``max(norm, c)`` for ``g * c / max(norm, c)``; a zero norm stays 0, NaN propagates."""
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
