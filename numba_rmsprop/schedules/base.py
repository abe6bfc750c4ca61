"""The base class of the schedules and their argument checks.

:class:`LearningRateSchedule` is Keras's base class: a schedule maps an
optimizer step (or an array of steps, evaluated at once) to a learning
rate. The helpers validate constructor arguments and steps with Keras's
error messages.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

Number = int | float
StepLike = int | float | np.integer | np.floating | npt.ArrayLike
ScheduleValue = float | np.ndarray


# --------------------------------------------------------------------------
# argument validation helpers
# --------------------------------------------------------------------------
def _check_number(
    value: Any,
    name: str,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    allow_none: bool = False,
) -> Number | None:
    """Validate a finite real scalar and return it as a Python int/float."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a real number"
            + (" or None" if allow_none else "")
            + f". Received: {name}={value!r} (of type {type(value).__name__})"
        )
    try:
        as_float = float(value)
    except OverflowError:
        as_float = math.inf
    if isinstance(value, numbers.Integral):
        value = int(value)
        if not math.isfinite(as_float):
            raise ValueError(
                f"Argument `{name}` is too large for float64. Received: {name}={value!r}"
            )
    else:
        value = as_float
        if not math.isfinite(value):
            raise ValueError(f"Argument `{name}` must be finite. Received: {name}={value!r}")
    if positive and not value > 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")
    if nonnegative and not value >= 0:
        raise ValueError(f"Argument `{name}` must be >= 0. Received: {name}={value!r}")
    return value


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"Argument `{name}` must be a bool. Received: {name}={value!r} "
            f"(of type {type(value).__name__})"
        )
    return bool(value)


def _check_name(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"Argument `name` must be a string or None. Received: name={value!r}")
    return value


def _check_number_list(value: Any, name: str) -> list[Number]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"Argument `{name}` must be a list of numbers. Received: {name}={value!r}")
    if isinstance(value, np.ndarray) and value.ndim != 1:
        raise ValueError(f"Argument `{name}` must be one-dimensional. Received: {name}={value!r}")
    return [_check_number(v, f"{name}[{i}]") for i, v in enumerate(value)]


def _prepare_step(step: StepLike) -> tuple[np.ndarray, bool, bool]:
    """Return ``(steps as float64 array, is_scalar, is_integer_dtype)``."""
    if isinstance(step, (bool, np.bool_)):
        raise TypeError(f"Argument `step` must be an integer, not a bool. Received: step={step!r}")
    is_scalar = not isinstance(step, np.ndarray) and np.ndim(step) == 0
    try:
        arr = np.asarray(step)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"Argument `step` could not be converted to an array: {exc}") from exc
    kind = arr.dtype.kind
    if kind in "iu":
        integer = True
    elif kind == "f":
        integer = False
    else:
        raise TypeError(
            "Argument `step` must be an integer (or real) number or an array of "
            f"them. Received: step={step!r} with dtype {arr.dtype}"
        )
    x = arr.astype(np.float64)
    if not integer and not np.all(np.isfinite(x)):
        raise ValueError(f"Argument `step` must be finite. Received: step={step!r}")
    return x, is_scalar, integer


# --------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------
def _freeze(obj: Any) -> Any:
    if isinstance(obj, (list, tuple)):
        return tuple(_freeze(o) for o in obj)
    if isinstance(obj, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in obj.items()))
    return obj


class LearningRateSchedule:
    """Base class of learning-rate schedules (Keras-compatible API).

    Subclasses implement :meth:`_evaluate` (vectorised, float64) and
    :meth:`get_config`; :meth:`__call__` validates and converts ``step``.
    A Keras-style subclass may instead override ``__call__`` directly.
    """

    def __call__(self, step: StepLike) -> ScheduleValue:
        """Learning rate at ``step``.

        Parameters
        ----------
        step : int, float or array_like of them
            Optimizer step(s). As in Keras, real (float) and negative steps
            are accepted; steps must be finite.

        Returns
        -------
        float or numpy.ndarray
            A Python ``float`` for a scalar ``step``; a float64 array of the
            same shape for an array ``step``.
        """
        x, is_scalar, integer = _prepare_step(step)
        # Always evaluate on a 1-d array: NumPy's 0-d (scalar) ufunc path may use
        # a different pow/cos/log implementation than its array (SIMD) path, and
        # scalar calls must equal the vectorised ones bit for bit.
        flat = x.reshape(-1)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            out = np.asarray(self._evaluate(flat, integer), dtype=np.float64)
        out = np.broadcast_to(out, flat.shape).reshape(x.shape)
        if is_scalar:
            return float(out)
        return np.array(out, dtype=np.float64)

    def _evaluate(self, step: np.ndarray, integer_step: bool) -> np.ndarray:
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override "
            "`__call__(self, step)` (or `_evaluate`)."
        )

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments as a JSON-compatible dict."""
        raise NotImplementedError(
            f"Learning rate schedule '{type(self).__name__}' must override "
            "`get_config()` in order to be serializable."
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LearningRateSchedule:
        """Instantiate a schedule from the output of :meth:`get_config`."""
        if not isinstance(config, Mapping):
            raise TypeError(f"Argument `config` must be a dict. Received: config={config!r}")
        return cls(**config)

    def __repr__(self) -> str:
        try:
            cfg = self.get_config()
        except NotImplementedError:
            return f"{type(self).__name__}()"
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return self.get_config() == other.get_config()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash((type(self).__name__, _freeze(self.get_config())))
