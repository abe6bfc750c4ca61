"""The six Keras schedules, each evaluated in float64 and vectorised over steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import (
    LearningRateSchedule,
    Number,
    _check_bool,
    _check_name,
    _check_number,
    _check_number_list,
)


class ExponentialDecay(LearningRateSchedule):
    """Exponential decay: ``lr * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``.

    Parameters
    ----------
    initial_learning_rate : float
        Learning rate at step 0 (finite).
    decay_steps : int or float
        Positive number of steps per decay period.
    decay_rate : float
        Non-negative, finite multiplicative decay per period.
    staircase : bool, default False
        Decay at discrete intervals.
    name : str, default "ExponentialDecay"
        Name (kept for config compatibility only).
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: Number,
        decay_rate: float,
        staircase: bool = False,
        name: str | None = "ExponentialDecay",
    ) -> None:
        self.initial_learning_rate = _check_number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _check_number(decay_steps, "decay_steps", positive=True)
        self.decay_rate = _check_number(decay_rate, "decay_rate", nonnegative=True)
        self.staircase = _check_bool(staircase, "staircase")
        self.name = _check_name(name)

    def _evaluate(self, step: np.ndarray, integer_step: bool) -> np.ndarray:
        p = step / float(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return float(self.initial_learning_rate) * np.power(float(self.decay_rate), p)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """Piecewise-constant schedule.

    The value is ``values[0]`` for ``step <= boundaries[0]``, ``values[i]``
    for ``boundaries[i-1] < step <= boundaries[i]`` and ``values[-1]`` for
    ``step > boundaries[-1]``.

    As in Keras, boundaries are cast to the dtype of ``step``: for integer
    steps a float boundary is truncated toward zero (this only matters for a
    boundary in ``(-1, 0)``).

    Parameters
    ----------
    boundaries : sequence of int or float
        Non-empty, strictly increasing, finite.
    values : sequence of float
        Finite; ``len(values) == len(boundaries) + 1``.
    name : str, default "PiecewiseConstant"
        Name (kept for config compatibility only).
    """

    def __init__(
        self,
        boundaries: Sequence[Number],
        values: Sequence[Number],
        name: str | None = "PiecewiseConstant",
    ) -> None:
        boundaries = _check_number_list(boundaries, "boundaries")
        values = _check_number_list(values, "values")
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of "
                f"values. Received: boundaries={boundaries} of length "
                f"{len(boundaries)}, and values={values} of length {len(values)}."
            )
        if len(boundaries) == 0:
            raise ValueError("Argument `boundaries` must contain at least one boundary.")
        for i in range(1, len(boundaries)):
            if not boundaries[i] > boundaries[i - 1]:
                raise ValueError(
                    "Argument `boundaries` must be strictly increasing. "
                    f"Received: boundaries={boundaries}"
                )
        self.boundaries = boundaries
        self.values = values
        self.name = _check_name(name)
        self._b = np.asarray(boundaries, dtype=np.float64)
        self._b_trunc = np.trunc(self._b)
        self._v = np.asarray(values, dtype=np.float64)

    def _evaluate(self, step: np.ndarray, integer_step: bool) -> np.ndarray:
        bounds = self._b_trunc if integer_step else self._b
        # index = number of boundaries strictly below step -> (low, high] bins
        idx = np.searchsorted(bounds, step, side="left")
        return self._v[idx]

    def get_config(self) -> dict[str, Any]:
        return {
            "boundaries": list(self.boundaries),
            "values": list(self.values),
            "name": self.name,
        }


class PolynomialDecay(LearningRateSchedule):
    """Polynomial decay from ``initial_learning_rate`` to ``end_learning_rate``.

    ``(lr0 - lr_end) * (1 - min(step, decay_steps) / decay_steps) ** power
    + lr_end``. With ``cycle=True`` the denominator is
    ``decay_steps * ceil(step / decay_steps)`` (multiplier 1 at step 0).

    Parameters
    ----------
    initial_learning_rate : float
        Learning rate at step 0 (finite).
    decay_steps : int or float
        Positive length of the decay.
    end_learning_rate : float, default 0.0001
        Final learning rate (finite).
    power : float, default 1.0
        Non-negative, finite exponent of the polynomial.
    cycle : bool, default False
        Restart the decay every ``decay_steps``.
    name : str, default "PolynomialDecay"
        Name (kept for config compatibility only).
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: Number,
        end_learning_rate: float = 0.0001,
        power: float = 1.0,
        cycle: bool = False,
        name: str | None = "PolynomialDecay",
    ) -> None:
        self.initial_learning_rate = _check_number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _check_number(decay_steps, "decay_steps", positive=True)
        self.end_learning_rate = _check_number(end_learning_rate, "end_learning_rate")
        self.power = _check_number(power, "power", nonnegative=True)
        self.cycle = _check_bool(cycle, "cycle")
        self.name = _check_name(name)

    def _evaluate(self, step: np.ndarray, integer_step: bool) -> np.ndarray:
        lr0 = float(self.initial_learning_rate)
        lr_end = float(self.end_learning_rate)
        decay_steps = float(self.decay_steps)
        if self.cycle:
            multiplier = np.where(step == 0, 1.0, np.ceil(step / decay_steps))
            decay_steps = decay_steps * multiplier
        else:
            step = np.minimum(step, decay_steps)
        p = step / decay_steps
        return (lr0 - lr_end) * np.power(1.0 - p, float(self.power)) + lr_end

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate,
            "power": self.power,
            "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(LearningRateSchedule):
    """Inverse-time decay: ``lr / (1 + decay_rate * step / decay_steps)``.

    With ``staircase=True`` ``step / decay_steps`` is floored.

    Parameters
    ----------
    initial_learning_rate : float
        Learning rate at step 0 (finite).
    decay_steps : int or float
        Positive number of steps per decay unit.
    decay_rate : float
        Non-negative, finite decay rate.
    staircase : bool, default False
        Decay at discrete intervals.
    name : str, default "InverseTimeDecay"
        Name (kept for config compatibility only).
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: Number,
        decay_rate: float,
        staircase: bool = False,
        name: str | None = "InverseTimeDecay",
    ) -> None:
        self.initial_learning_rate = _check_number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _check_number(decay_steps, "decay_steps", positive=True)
        self.decay_rate = _check_number(decay_rate, "decay_rate", nonnegative=True)
        self.staircase = _check_bool(staircase, "staircase")
        self.name = _check_name(name)

    def _evaluate(self, step: np.ndarray, integer_step: bool) -> np.ndarray:
        p = step / float(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return float(self.initial_learning_rate) / (1.0 + float(self.decay_rate) * p)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


class CosineDecay(LearningRateSchedule):
    """Cosine decay with optional linear warmup.

    Without ``warmup_target``: ``lr0 * ((1 - alpha) * c + alpha)`` with
    ``c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))``.
    With ``warmup_target``: for ``step < warmup_steps`` the rate rises
    linearly from ``initial_learning_rate`` to ``warmup_target``; afterwards
    the cosine decay above runs from ``warmup_target`` over ``decay_steps``
    (``step`` is clipped at ``warmup_steps + decay_steps``). Note that with a
    ``warmup_target`` and ``warmup_steps=0`` the ``initial_learning_rate`` is
    never used (as in Keras).

    Parameters
    ----------
    initial_learning_rate : float
        Learning rate at step 0 (finite).
    decay_steps : int or float
        Positive length of the cosine decay.
    alpha : float, default 0.0
        Final rate as a fraction of the decay's starting rate (finite).
    name : str, default "CosineDecay"
        Name (kept for config compatibility only).
    warmup_target : float or None, default None
        Target of the linear warmup; ``None`` disables warmup.
    warmup_steps : int or float, default 0
        Non-negative length of the warmup.
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: Number,
        alpha: float = 0.0,
        name: str | None = "CosineDecay",
        warmup_target: float | None = None,
        warmup_steps: Number = 0,
    ) -> None:
        self.initial_learning_rate = _check_number(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = _check_number(decay_steps, "decay_steps", positive=True)
        self.alpha = _check_number(alpha, "alpha")
        self.name = _check_name(name)
        self.warmup_target = _check_number(warmup_target, "warmup_target", allow_none=True)
        self.warmup_steps = _check_number(warmup_steps, "warmup_steps", nonnegative=True)

    def _decay_function(
        self, step: np.ndarray, decay_steps: float, decay_from_lr: float
    ) -> np.ndarray:
        completed_fraction = step / decay_steps
        cosine_decayed = 0.5 * (1.0 + np.cos(np.pi * completed_fraction))
        alpha = float(self.alpha)
        decayed = (1.0 - alpha) * cosine_decayed + alpha
        return decay_from_lr * decayed

    def _evaluate(self, step: np.ndarray, integer_step: bool) -> np.ndarray:
        lr0 = float(self.initial_learning_rate)
        decay_steps = float(self.decay_steps)
        if self.warmup_target is None:
            step = np.minimum(step, decay_steps)
            return self._decay_function(step, decay_steps, lr0)
        target = float(self.warmup_target)
        warmup_steps = float(self.warmup_steps)
        step = np.minimum(step, decay_steps + warmup_steps)
        decayed = self._decay_function(step - warmup_steps, decay_steps, target)
        # Keras's branch, also with warmup_steps == 0: a negative step is then
        # "in the warmup" and gets (target - lr0) * (step / 0) + lr0 (+-inf, or
        # NaN when target == lr0).
        warm = (target - lr0) * (step / warmup_steps) + lr0
        return np.where(step < warmup_steps, warm, decayed)

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
            "name": self.name,
            "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR).

    The first period lasts ``first_decay_steps``; period ``i`` lasts
    ``t_mul ** i`` times as long and starts at ``m_mul ** i`` times the
    initial rate. The restart index is Keras's closed form
    ``floor(log(1 - f * (1 - t_mul)) / log(t_mul))`` with
    ``f = step / first_decay_steps`` (``floor(f)`` when ``t_mul == 1``), and
    the rate is ``lr0 * ((1 - alpha) * 0.5 * m_mul**i * (1 + cos(pi * g)) +
    alpha)`` with ``g`` the fraction of the current period. Note ``alpha`` is
    *not* scaled by ``m_mul ** i``.

    Unlike Keras, the restart index is corrected when rounding of the
    logarithm puts a step that lies exactly on a restart into the previous
    period (Keras in float64 returns the period's end value ``lr0 * alpha``
    there, e.g. ``t_mul=3`` at ``step / first_decay_steps = 121``); the result
    is then the new period's peak, as Keras's formula gives in exact
    arithmetic. Everywhere else the value is Keras's float64 value.

    Parameters
    ----------
    initial_learning_rate : float
        Learning rate at step 0 (finite).
    first_decay_steps : int or float
        Positive length of the first period.
    t_mul : float, default 2.0
        Positive, finite period-length multiplier. With ``t_mul < 1`` the
        periods sum to ``first_decay_steps / (1 - t_mul)`` steps; calling the
        schedule at or beyond that step raises ``ValueError`` (Keras returns
        NaN there). Likewise, with ``t_mul > 1`` the periods before step 0
        (negative steps) shrink and sum to ``first_decay_steps / (t_mul - 1)``
        steps; steps at or before ``-first_decay_steps / (t_mul - 1)`` raise.
    m_mul : float, default 1.0
        Non-negative, finite per-restart multiplier of the peak rate.
    alpha : float, default 0.0
        Minimum rate as a fraction of ``initial_learning_rate`` (finite).
    name : str, default "SGDRDecay"
        Name (kept for config compatibility only).
    """

    def __init__(
        self,
        initial_learning_rate: float,
        first_decay_steps: Number,
        t_mul: float = 2.0,
        m_mul: float = 1.0,
        alpha: float = 0.0,
        name: str | None = "SGDRDecay",
    ) -> None:
        self.initial_learning_rate = _check_number(initial_learning_rate, "initial_learning_rate")
        self.first_decay_steps = _check_number(
            first_decay_steps, "first_decay_steps", positive=True
        )
        self._t_mul = _check_number(t_mul, "t_mul", positive=True)
        self._m_mul = _check_number(m_mul, "m_mul", nonnegative=True)
        self.alpha = _check_number(alpha, "alpha")
        self.name = _check_name(name)

    @property
    def t_mul(self) -> Number:
        """Period-length multiplier."""
        return self._t_mul

    @property
    def m_mul(self) -> Number:
        """Peak-rate multiplier per restart."""
        return self._m_mul

    def _evaluate(self, step: np.ndarray, integer_step: bool) -> np.ndarray:
        lr0 = float(self.initial_learning_rate)
        t_mul = float(self._t_mul)
        m_mul = float(self._m_mul)
        alpha = float(self.alpha)
        completed_fraction = step / float(self.first_decay_steps)
        if t_mul == 1.0:
            i_restart = np.floor(completed_fraction)
            completed_fraction = completed_fraction - i_restart
        else:
            arg = 1.0 - completed_fraction * (1.0 - t_mul)
            if np.any(arg <= 0.0):
                horizon = float(self.first_decay_steps) / (1.0 - t_mul)
                if t_mul < 1.0:
                    raise ValueError(
                        f"Argument `step` is beyond the end of this schedule: with "
                        f"t_mul={self._t_mul} < 1 all periods together last "
                        f"{horizon} steps. Received: step={step.max()}"
                    )
                raise ValueError(
                    f"Argument `step` is before the start of this schedule: with "
                    f"t_mul={self._t_mul} > 1 the periods before step 0 together last "
                    f"{-horizon} steps. Received: step={step.min()}"
                )
            i_restart = np.floor(np.log(arg) / np.log(t_mul))
            # Exactly at a restart, log(arg) / log(t_mul) is an integer in exact
            # arithmetic but may round to just below it (e.g. t_mul=3 at
            # step / first_decay_steps = 121); Keras then floors to the previous
            # period and returns its end value (alpha) instead of the new peak.
            # Restore the invariant sum_r(i) <= fraction < sum_r(i + 1) so the
            # result is the exact-arithmetic value of Keras's formula.
            sum_next = (1.0 - np.power(t_mul, i_restart + 1.0)) / (1.0 - t_mul)
            i_restart = np.where(completed_fraction >= sum_next, i_restart + 1.0, i_restart)
            sum_this = (1.0 - np.power(t_mul, i_restart)) / (1.0 - t_mul)
            i_restart = np.where(completed_fraction < sum_this, i_restart - 1.0, i_restart)
            t_pow = np.power(t_mul, i_restart)
            sum_r = (1.0 - t_pow) / (1.0 - t_mul)
            completed_fraction = (completed_fraction - sum_r) / t_pow
        m_fac = np.power(m_mul, i_restart)
        cosine_decayed = 0.5 * m_fac * (1.0 + np.cos(np.pi * completed_fraction))
        decayed = (1.0 - alpha) * cosine_decayed + alpha
        return lr0 * decayed

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps,
            "t_mul": self._t_mul,
            "m_mul": self._m_mul,
            "alpha": self.alpha,
            "name": self.name,
        }
