"""``serialize`` / ``deserialize``: schedules as ``{"class_name": ..., "config": ...}``
dicts, in this package's form and in Keras's own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .base import LearningRateSchedule
from .decays import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
)

_BUILTIN_SCHEDULES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        InverseTimeDecay,
        CosineDecay,
        CosineDecayRestarts,
    )
}


def serialize(schedule: LearningRateSchedule) -> dict[str, Any]:
    """Serialize a schedule to ``{"class_name": ..., "config": ...}``.

    Parameters
    ----------
    schedule : LearningRateSchedule
        The schedule to serialize.

    Returns
    -------
    dict
        JSON-compatible dict accepted by :func:`deserialize`.
    """
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(
            f"Argument `schedule` must be a LearningRateSchedule. Received: schedule={schedule!r}"
        )
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def _unwrap_keras_value(value: Any) -> Any:
    """Undo Keras's wrapping of tuples / NumPy arrays in serialized configs."""
    if isinstance(value, Mapping) and value.get("class_name") in ("__tuple__", "__numpy__"):
        inner = value.get("config")
        if isinstance(inner, Mapping) and "value" in inner:
            return _unwrap_keras_value(inner["value"])
    if isinstance(value, (list, tuple)):
        return [_unwrap_keras_value(v) for v in value]
    return value


def deserialize(
    config: Mapping[str, Any],
    custom_objects: Mapping[str, Callable[..., LearningRateSchedule]] | None = None,
) -> LearningRateSchedule:
    """Instantiate a schedule from its serialized form.

    Accepts the output of :func:`serialize` and Keras's own format (as
    produced by ``keras.optimizers.schedules.serialize``, i.e. also carrying
    ``"module"`` and ``"registered_name"`` keys).

    Parameters
    ----------
    config : dict
        ``{"class_name": str, "config": dict, ...}``.
    custom_objects : dict, optional
        Extra ``name -> class`` mapping for user-defined schedules.

    Returns
    -------
    LearningRateSchedule

    Raises
    ------
    ValueError
        If the class name is unknown or the dict is malformed.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"Argument `config` must be a dict. Received: config={config!r}")
    if "class_name" not in config:
        raise ValueError(f"Argument `config` has no 'class_name' key. Received: config={config!r}")
    if "config" not in config or not isinstance(config["config"], Mapping):
        raise ValueError(
            "Argument `config` must have a dict under the 'config' key. "
            f"Received: config={config!r}"
        )
    class_name = config["class_name"]
    registered_name = config.get("registered_name")
    lookup = dict(_BUILTIN_SCHEDULES)
    if custom_objects:
        lookup.update(custom_objects)
    cls = None
    for key in (registered_name, class_name):
        if isinstance(key, str) and key in lookup:
            cls = lookup[key]
            break
    if cls is None:
        raise ValueError(
            f"Unknown learning rate schedule: class_name={class_name!r}"
            + (f", registered_name={registered_name!r}" if registered_name else "")
            + f". Known schedules: {sorted(lookup)}"
        )
    kwargs = {str(k): _unwrap_keras_value(v) for k, v in config["config"].items()}
    if isinstance(cls, type) and hasattr(cls, "from_config"):
        return cls.from_config(kwargs)
    return cls(**kwargs)
