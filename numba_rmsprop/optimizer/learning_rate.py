"""The learning rate of an optimizer: a number, a schedule or a callable.

The checks and the setter of the ``learning_rate`` hyperparameter, its form
in ``get_config``, and one-argument functions ``f(step)`` (torch's and
optax's convention) wrapped as schedules.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import schedules as _schedules
from ..engine.hyperparameters import real
from ..schedules import LearningRateSchedule, deserialize, serialize

if TYPE_CHECKING:  # the class these build; imported for annotations only
    from .rmsprop import RMSprop

#: What ``RMSprop(learning_rate=...)`` takes.
LearningRate = float | LearningRateSchedule | Callable[[], float]
#: What the flavors take: also a function of the step (torch's and optax's schedules).
StepLearningRate = float | LearningRateSchedule | Callable[[int], float] | Callable[[], float]

#: Built-in schedules, whose __call__ is vectorised over step arrays.
VECTORISED_SCHEDULES = frozenset(
    getattr(_schedules, name)
    for name in _schedules.__all__
    if isinstance(getattr(_schedules, name), type)
    and issubclass(getattr(_schedules, name), LearningRateSchedule)
    and getattr(_schedules, name) is not LearningRateSchedule
)


def check_learning_rate(name: str, value: Any) -> LearningRate:
    """A real number >= 0, a schedule (or its serialized dict), or a zero-argument callable."""
    if isinstance(value, LearningRateSchedule):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return real(0.0)(name, value)
    if isinstance(value, Mapping):
        return deserialize(dict(value))
    if callable(value):
        try:
            inspect.signature(value).bind()
        except TypeError:
            raise TypeError(
                f"`{name}` must be a zero-argument callable; for step-dependent rates use a "
                "numba_rmsprop.schedules.LearningRateSchedule."
            ) from None
        except ValueError:  # builtins without a signature: accept
            pass
        return value
    raise TypeError(
        f"`{name}` must be a real number >= 0, a LearningRateSchedule or a "
        f"zero-argument callable; got {value!r}."
    )


def set_learning_rate(opt: RMSprop, value: LearningRate) -> None:
    if (
        isinstance(opt._learning_rate, LearningRateSchedule)
        and not isinstance(value, LearningRateSchedule)
        and not callable(value)
    ):
        raise TypeError(
            "This optimizer was created with a `LearningRateSchedule` as its "
            "`learning_rate`, hence its learning rate is not settable. Create it with "
            "a float `learning_rate` if you need to set it."
        )
    opt._learning_rate = check_learning_rate("learning_rate", value)


def learning_rate_config(value):
    return serialize(value) if isinstance(value, LearningRateSchedule) else value


class StepSchedule(LearningRateSchedule):
    """A one-argument callable ``f(step)`` as a schedule (optax's and torch's convention)."""

    def __init__(self, fn: Callable[[int], float]):
        self.fn = fn

    def __call__(self, step):
        return self.fn(step)

    def get_config(self):
        raise TypeError(
            f"the learning-rate function {self.fn!r} cannot be serialized; "
            "use a numba_rmsprop.schedules schedule for get_config()."
        )


def step_schedule(learning_rate: StepLearningRate) -> LearningRate:
    """``learning_rate``, with a one-argument callable wrapped as a schedule."""
    if callable(learning_rate) and not isinstance(learning_rate, LearningRateSchedule):
        try:
            inspect.signature(learning_rate).bind(0)
        except (TypeError, ValueError):
            return learning_rate
        return StepSchedule(learning_rate)
    return learning_rate
