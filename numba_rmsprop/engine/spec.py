"""The optimizer's fixed configuration, in the form the backends consume.

A :class:`Spec` is made once from the validated hyperparameters. It holds
the values the kernels need (as plain attributes), the switch tuple of the
element rule (:func:`numba_rmsprop.engine.rule.switches`) and, per dtype, the
build-time slots of the per-call scalars (:mod:`numba_rmsprop.engine.layout`).
"""

from __future__ import annotations

import numpy as np

from . import clipping, layout, rule

_CLIP_OPTIONS = (("clipnorm", "norm"), ("global_clipnorm", "global"), ("clipvalue", "value"))


class Spec:
    """Hyperparameters as the backends read them.

    Every validated hyperparameter is an attribute under its own name
    (``spec.rho``, ``spec.centered``, ...; ``gradient_accumulation_steps`` is
    also ``accumulation_steps``), plus the clip option as ``clip_mode``
    (``"norm"``, ``"global"``, ``"value"`` or None) and its value ``clip``.
    """

    def __init__(self, values: dict):
        vars(self).update({k: v for k, v in values.items() if k != "learning_rate"})
        self.accumulation_steps: int | None = values["gradient_accumulation_steps"]
        self.clip_mode: str | None = None
        self.clip: float | None = None
        for option, mode in _CLIP_OPTIONS:
            if values[option] is not None:
                self.clip_mode, self.clip = mode, values[option]
        self.switches: tuple = rule.switches(self)
        self._constants: dict = {}

    def constants(self, dtype) -> np.ndarray:
        """The build-time slots of ``P`` for ``dtype`` (cached; copy before writing)."""
        key = np.dtype(dtype)
        P = self._constants.get(key)
        if P is None:
            P = self._constants[key] = layout.pack_constants(self, key)
        return P

    def clip_factors(self, sumsq: float) -> tuple:
        """``(num, den)`` in float64 for a norm clip (see :func:`clipping.clip_factors`)."""
        mode = clipping.CLIP_NORM if self.clip_mode == "norm" else clipping.CLIP_GLOBAL
        return clipping.clip_factors(mode, sumsq, self.clip)

    @property
    def clips_by_norm(self) -> bool:
        """True for ``clipnorm`` and ``global_clipnorm`` (clip factors from a norm)."""
        return self.clip_mode in ("norm", "global")
