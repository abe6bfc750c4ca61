"""The per-call scalars: one layout, used by every kernel.

Every kernel reads the scalars of a call (the hyperparameters cast to the
variable's dtype, and this call's learning rate, EMA weights and bias
correction) from one 1-D array ``P`` in the variable's dtype, laid out as
named here: the CPU kernels (serial, parallel, grouped), the CUDA kernels
(which get the same values as a tuple argument) and the compiled minimize
loop. Kernels load ``P`` into a tuple once per launch (:func:`load`), so the
element rule (:mod:`numba_rmsprop.engine.rule`) indexes registers, not memory.

:func:`pack_constants` fills the slots fixed at build time, with Keras's
casts: each Python-float hyperparameter is cast to the dtype where it meets
an array (``1 - rho`` is formed in float64 first, then cast; the EMA's
``1 - momentum`` is formed in the dtype). :func:`pack_call` fills the slots
that change with every call; it is plain Python that the compiled minimize
loop compiles too, so both loops write the same values.
"""

from __future__ import annotations

import numpy as np
from numba.np.unsafe.ndarray import to_fixed_tuple

# Fixed at build time.
RHO = 0
ONE_MINUS_RHO = 1
EPSILON = 2
MOMENTUM = 3
WEIGHT_DECAY = 4
LOSS_SCALE = 5
N_ACCUMULATE = 6
CLIP_VALUE = 7
EMA_MOMENTUM = 8
EMA_ONE_MINUS = 9
# Set by every call.
LEARNING_RATE = 10
EMA_WEIGHT = 11  # weight of the old average: 0 on the first EMA step, else EMA_MOMENTUM
EMA_NEW_WEIGHT = 12  # weight of the new value: 1 on the first EMA step, else EMA_ONE_MINUS
CORRECTION = 13  # bias correction 1 - rho**t of the t-th update, in the dtype

N_SLOTS = 14


def pack_constants(spec, dtype, shape: tuple = ()) -> np.ndarray:
    """A new ``P`` for ``dtype`` (of ``shape + (N_SLOTS,)``) with the build-time slots
    filled from ``spec``.

    A numeric attribute of ``spec`` may be an array of ``shape`` (one value per
    run of ``minimize_many``); each value is cast exactly as a single one is.
    Slots of options that are off hold 0 (they are never read: the element
    rule's switches prune them).
    """
    t = np.dtype(dtype).type

    def cast(value, off=0.0):
        return t(off) if value is None else np.asarray(value, dtype=np.float64).astype(t)

    P = np.zeros(tuple(shape) + (N_SLOTS,), dtype=dtype)
    rho = np.asarray(spec.rho, dtype=np.float64)
    P[..., RHO] = cast(rho)
    P[..., ONE_MINUS_RHO] = cast(1.0 - rho)
    P[..., EPSILON] = cast(spec.epsilon)
    P[..., MOMENTUM] = cast(spec.momentum)
    P[..., WEIGHT_DECAY] = cast(spec.weight_decay)
    P[..., LOSS_SCALE] = cast(spec.loss_scale_factor, 1.0)
    P[..., N_ACCUMULATE] = cast(spec.accumulation_steps, 1.0)
    P[..., CLIP_VALUE] = cast(spec.clip if spec.clip_mode == "value" else None)
    ema = cast(spec.ema_momentum)
    P[..., EMA_MOMENTUM] = ema
    P[..., EMA_ONE_MINUS] = t(1) - ema
    P[..., CORRECTION] = 1
    return P


def pack_call(P, learning_rate, ema_first, update_count) -> None:
    """This call's slots: the learning rate, the EMA weights and the bias correction.

    The learning rate arrives in float64 and is cast by the store, as NumPy
    casts it. ``ema_first`` is None without EMA. With ``update_count`` ``t > 0`` the bias
    correction is
    ``1 - rho**t`` computed in the dtype, as optax computes it (``rho`` cast
    first; ``pow`` of the dtype, the same C function in Python and Numba).
    """
    P[LEARNING_RATE] = learning_rate
    if ema_first is None:  # no EMA (host calls only; the slots are never read)
        pass
    elif ema_first:
        P[EMA_WEIGHT] = 0
        P[EMA_NEW_WEIGHT] = 1
    else:
        P[EMA_WEIGHT] = P[EMA_MOMENTUM]
        P[EMA_NEW_WEIGHT] = P[EMA_ONE_MINUS]
    if update_count > 0:
        P[CORRECTION] = update_count  # t in the dtype, for a pow of the dtype
        P[CORRECTION] = 1 - P[RHO] ** P[CORRECTION]


def load(P):  # pragma: no cover - compiled only (numba's to_fixed_tuple)
    """``P`` as a tuple of ``N_SLOTS`` scalars, for a kernel to index."""
    return to_fixed_tuple(P, N_SLOTS)
