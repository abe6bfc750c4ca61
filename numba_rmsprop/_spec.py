"""Static hyperparameters of an optimizer, cast once per variable dtype.

Keras casts each Python-float hyperparameter to the variable's dtype where it
meets an array (``1 - rho`` is formed in Python first; the EMA's
``1 - momentum`` is formed in the dtype). :class:`Spec` reproduces those casts
once, so the per-call work is only the learning rate and the clip factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _math


@dataclass(frozen=True)
class Scalars:
    """Hyperparameters cast to one dtype, ready to pass to a kernel."""

    dtype: type
    rho: np.floating
    one_minus_rho: np.floating
    eps: np.floating
    momentum: np.floating
    wd: Optional[np.floating]
    ls: Optional[np.floating]
    nacc: Optional[np.floating]
    clip_value: Optional[np.floating]
    ema_momentum: np.floating
    ema_one_minus: np.floating
    zero: np.floating

    def ema(self, momentum: Optional[float]):
        """``(m, 1 - m)`` in this dtype for the plan's EMA momentum (0 on the first step)."""
        if momentum is None:
            return self.zero, self.zero
        if momentum == 0.0:
            return self.zero, self.dtype(1)
        return self.ema_momentum, self.ema_one_minus


class Spec:
    """The optimizer's fixed configuration, in the form the backends consume."""

    def __init__(self, *, rho, momentum, epsilon, centered, weight_decay, clipnorm,
                 clipvalue, global_clipnorm, loss_scale_factor,
                 gradient_accumulation_steps, use_ema, ema_momentum):
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.centered = bool(centered)
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.loss_scale_factor = None if loss_scale_factor is None else float(loss_scale_factor)
        self.accumulation_steps = gradient_accumulation_steps or None
        self.use_ema = bool(use_ema)
        self.ema_momentum = float(ema_momentum)
        if clipnorm is not None:
            self.clip_mode, self.clip = "norm", float(clipnorm)
        elif global_clipnorm is not None:
            self.clip_mode, self.clip = "global", float(global_clipnorm)
        elif clipvalue is not None:
            self.clip_mode, self.clip = "value", float(clipvalue)
        else:
            self.clip_mode, self.clip = None, None
        self._scalars = {}

    def scalars(self, dtype) -> Scalars:
        """Hyperparameters cast to ``dtype`` (cached)."""
        key = np.dtype(dtype)
        s = self._scalars.get(key)
        if s is None:
            t = key.type
            em = t(self.ema_momentum)
            s = Scalars(
                dtype=t,
                rho=t(self.rho),
                one_minus_rho=t(1.0 - self.rho),
                eps=t(self.epsilon),
                momentum=t(self.momentum),
                wd=None if self.weight_decay is None else t(self.weight_decay),
                ls=None if self.loss_scale_factor is None else t(self.loss_scale_factor),
                nacc=None if self.accumulation_steps is None else t(self.accumulation_steps),
                clip_value=t(self.clip) if self.clip_mode == "value" else None,
                ema_momentum=em,
                ema_one_minus=t(1) - em,
                zero=t(0),
            )
            self._scalars[key] = s
        return s

    def clipnorm_factors(self, sumsq: float):
        """Keras's ``g * c / max(norm, c)`` as ``(c, max(norm, c))``; NaN propagates."""
        return self.clip, _math.clipnorm_denominator(sumsq, self.clip)

    def global_clip_scale(self, sumsq: float) -> float:
        """Keras's ``c * min(1/n, 1/c) + (n - n)`` for the global norm ``n``."""
        return _math.global_clip_scale(sumsq, self.clip)
