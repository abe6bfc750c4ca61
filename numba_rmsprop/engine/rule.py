"""The RMSprop element rule: one definition, compiled by every kernel.

:func:`update_element` updates one element of a variable and its state;
:func:`accumulate_element` is a call that only accumulates the gradient;
:func:`ema_element` is the EMA of a variable that got no gradient;
:func:`gradient_square` is one term of a clipping norm. They are plain
Python functions of arrays, an index and scalars. :func:`compile_with`
compiles them (and the formulas of :mod:`numba_rmsprop.engine.clipping` they call) for
a target: ``_cpu`` with ``numba.njit``, ``_cuda`` with
``numba.cuda.jit(device=True)``. The CPU serial, parallel and grouped
kernels, the CUDA kernels and the compiled minimize loop therefore perform
the same operations in the same order.

Arguments
---------
``x, g`` and the state arrays ``v`` (mean square), ``mg`` (mean gradient,
centered only), ``mom`` (momentum), ``acc`` (gradient accumulator), ``avg``
(EMA) are indexed at ``i``; an optional state array is ``None`` when its
option is off. ``s`` is the tuple of per-call scalars laid out by
:mod:`numba_rmsprop.engine.layout`. ``sw`` is the tuple of *switches*
(:data:`SWITCHES`): each entry is ``None`` (off) or ``True`` (on).
``num, den`` are the clip factors (``None`` without a norm clip).

``None`` is part of an argument's type, so Numba resolves every
``is None`` test at compile time: each configuration compiles into its own
straight, vectorisable loop, with nothing of the options that are off.

Variants
--------
The switches select the variants of RMSprop found in the frameworks
(``RMSprop.like_torch``, ``like_optax``, ``like_tf1``); with every switch off
this is Keras 3's RMSprop, operation by operation:

* ``COUPLED_DECAY``: L2 weight decay ``g + wd * x`` (torch) instead of
  Keras's decoupled ``x - x * wd * lr`` (``DECOUPLED_DECAY``).
* ``BIAS_CORRECTION``: the averages are divided by ``1 - rho**t`` (optax).
* ``EPSILON_OUTSIDE_SQRT``: ``sqrt(v) + eps`` (torch, optax's
  ``eps_in_sqrt=False``) instead of ``sqrt(v + eps)``.
* ``LEARNING_RATE_OUTSIDE``: the momentum buffer accumulates
  ``g / denominator`` and the step is ``lr * buffer`` (torch), instead of
  accumulating ``lr * g / denominator`` (Keras, TF1, optax).
* ``NESTEROV``: the step is ``direction + momentum * buffer`` (optax).
* ``MAXIMIZE``: ascend (torch): the gradient is negated first.

No float literal enters the arithmetic (``d - d`` is a zero of ``d``'s
dtype), so float32 stays float32.
"""

from __future__ import annotations

import math
import types

import numpy as np

from . import clipping
from .clipping import clip_by_value
from .layout import (
    CLIP_VALUE,
    CORRECTION,
    EMA_NEW_WEIGHT,
    EMA_WEIGHT,
    EPSILON,
    LEARNING_RATE,
    LOSS_SCALE,
    MOMENTUM,
    N_ACCUMULATE,
    ONE_MINUS_RHO,
    RHO,
    WEIGHT_DECAY,
)

# ------------------------------------------------------------------ switches
SCALE_LOSS = 0
CLIP_BY_VALUE = 1
DECOUPLED_DECAY = 2
COUPLED_DECAY = 3
BIAS_CORRECTION = 4
EPSILON_OUTSIDE_SQRT = 5
LEARNING_RATE_OUTSIDE = 6
NESTEROV = 7
MAXIMIZE = 8

#: What turns each switch on, from the optimizer's :class:`~numba_rmsprop.engine.spec.Spec`.
SWITCHES = {
    SCALE_LOSS: lambda spec: spec.loss_scale_factor is not None,
    CLIP_BY_VALUE: lambda spec: spec.clip_mode == "value",
    DECOUPLED_DECAY: lambda spec: spec.weight_decay is not None and spec.decoupled_weight_decay,
    COUPLED_DECAY: lambda spec: spec.weight_decay is not None and not spec.decoupled_weight_decay,
    BIAS_CORRECTION: lambda spec: spec.bias_correction,
    EPSILON_OUTSIDE_SQRT: lambda spec: not spec.epsilon_in_sqrt,
    LEARNING_RATE_OUTSIDE: lambda spec: not spec.learning_rate_in_momentum,
    NESTEROV: lambda spec: spec.nesterov,
    MAXIMIZE: lambda spec: spec.maximize,
}


def switches(spec) -> tuple:
    """The switch tuple for ``spec``: ``True`` where on, ``None`` where off."""
    return tuple(True if SWITCHES[k](spec) else None for k in range(len(SWITCHES)))


# ------------------------------------------------------------------ elements
def effective_gradient(i, g, acc, s, sw, num, den):
    """The gradient the update uses: unscaled, averaged over accumulation, clipped."""
    gi = g[i]
    if sw[SCALE_LOSS] is not None:
        gi = gi / s[LOSS_SCALE]
    if acc is not None:
        gi = (gi + acc[i]) / s[N_ACCUMULATE]
    if num is not None:
        gi = (gi * num) / den
    if sw[CLIP_BY_VALUE] is not None:
        gi = clip_by_value(gi, s[CLIP_VALUE])
    return gi


def update_element(i, x, g, v, mg, mom, acc, avg, s, sw, num, den, decay_on, overwrite):
    """One RMSprop update of element ``i`` (``decay_on``: this variable decays)."""
    gi = effective_gradient(i, g, acc, s, sw, num, den)
    if acc is not None:
        acc[i] = 0  # stores cast to the array's dtype
    if sw[MAXIMIZE] is not None:
        gi = -gi
    lr = s[LEARNING_RATE]
    xi = x[i]
    if sw[DECOUPLED_DECAY] is not None:
        xd = xi - xi * s[WEIGHT_DECAY] * lr
        xi = xd if decay_on else xi
    if sw[COUPLED_DECAY] is not None:
        gd = gi + s[WEIGHT_DECAY] * xi
        gi = gd if decay_on else gi
    rho = s[RHO]
    one_minus_rho = s[ONE_MINUS_RHO]
    vi = rho * v[i] + one_minus_rho * (gi * gi)
    v[i] = vi
    if sw[BIAS_CORRECTION] is not None:
        vi = vi / s[CORRECTION]
    if mg is not None:
        mgi = rho * mg[i] + one_minus_rho * gi
        mg[i] = mgi
        if sw[BIAS_CORRECTION] is not None:
            mgi = mgi / s[CORRECTION]
        vi = vi - mgi * mgi
        if vi < 0:
            vi = vi - vi  # rounding made it negative: clamp at 0
    if sw[EPSILON_OUTSIDE_SQRT] is not None:
        denominator = math.sqrt(vi) + s[EPSILON]
    else:
        denominator = math.sqrt(vi + s[EPSILON])
    if mom is None:
        xi = xi - (lr * gi) / denominator
    else:
        if sw[LEARNING_RATE_OUTSIDE] is not None:
            direction = gi / denominator
        else:
            direction = (lr * gi) / denominator
        mi = s[MOMENTUM] * mom[i] + direction
        mom[i] = mi
        if sw[NESTEROV] is not None:
            mi = direction + s[MOMENTUM] * mi
        if sw[LEARNING_RATE_OUTSIDE] is not None:
            mi = lr * mi
        xi = xi - mi
    if avg is not None:
        ai = s[EMA_WEIGHT] * avg[i] + s[EMA_NEW_WEIGHT] * xi
        avg[i] = ai
        if overwrite:
            xi = ai
    x[i] = xi


def accumulate_element(i, x, g, acc, avg, s, sw, overwrite):
    """A call that only accumulates: ``acc += g`` (unscaled), and the EMA."""
    gi = g[i]
    if sw[SCALE_LOSS] is not None:
        gi = gi / s[LOSS_SCALE]
    acc[i] = gi + acc[i]
    if avg is not None:
        ema_element(i, x, avg, s, overwrite)


def ema_element(i, x, avg, s, overwrite):
    """EMA of the weights: ``m * avg + (1 - m) * x``; optionally overwrite ``x``."""
    ai = s[EMA_WEIGHT] * avg[i] + s[EMA_NEW_WEIGHT] * x[i]
    avg[i] = ai
    if overwrite:
        x[i] = ai


def gradient_square(i, g, acc, s, sw):
    """Square, in float64, of element ``i`` of the effective gradient before clipping."""
    gd = np.float64(effective_gradient(i, g, acc, s, sw, None, None))
    return gd * gd


# ------------------------------------------------------------------ compiling
_MATH = ("clip_by_value", "clipnorm_denominator", "global_clip_scale", "clip_factors")
_RULE = (
    "effective_gradient",
    "update_element",
    "accumulate_element",
    "ema_element",
    "gradient_square",
)


def compile_with(jit) -> types.SimpleNamespace:
    """The rule and the formulas it uses, each compiled with ``jit``.

    Each function is rebuilt over one shared namespace in which the others'
    names are their compiled versions, so that compiled code calls compiled
    code; the plain functions in this module are left as they are.
    """
    shared = dict(vars(clipping))
    shared.update(globals())
    compiled = {}
    for module, names in ((clipping, _MATH), (None, _RULE)):
        for name in names:
            fn = getattr(module, name) if module is not None else globals()[name]
            rebuilt = types.FunctionType(
                fn.__code__, shared, fn.__name__, fn.__defaults__, fn.__closure__
            )
            rebuilt.__qualname__ = fn.__qualname__
            rebuilt.__module__ = fn.__module__
            rebuilt.__doc__ = fn.__doc__
            compiled[name] = jit(rebuilt)
    shared.update(compiled)
    return types.SimpleNamespace(**compiled)
