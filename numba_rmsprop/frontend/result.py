""":class:`OptimizeResult`: what every entry point returns, as scipy's methods do.

A dict whose keys are also attributes, printed as :class:`scipy.optimize.OptimizeResult`
prints. Its own class rather than scipy's: importing ``scipy.optimize`` (to build a
result or to read a type) costs 0.3-0.6 s, more than the rest of a first
:func:`~numba_rmsprop.minimize` with a warm cache.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["OptimizeResult"]

#: scipy's order of the fields it prints first (``scipy._lib._util._RichResult``).
_FIRST = (
    "message", "success", "status", "fun", "funl", "x", "xl", "col_ind", "nit", "lower",
    "upper", "eqlin", "ineqlin", "converged", "flag", "function_calls", "iterations", "root",
)  # fmt: skip
_OMITTED = frozenset({"slack", "con", "crossover_nit", "_order_keys"})


class OptimizeResult(dict):
    """The result of a run: a dict whose keys are also attributes.

    The fields, attribute access and printout of
    :class:`scipy.optimize.OptimizeResult` (``res.x``, ``res["x"]``,
    ``res.keys()``, ``print(res)``), without importing ``scipy.optimize``. It is
    not a subclass of scipy's class: check for :class:`dict` or for this class.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e

    __setattr__ = dict.__setitem__  # type: ignore[assignment]
    __delattr__ = dict.__delitem__  # type: ignore[assignment]

    def __dir__(self) -> list[str]:
        return list(self.keys())

    def __repr__(self) -> str:
        if not self:
            return f"{type(self).__name__}()"
        return _format(self, 0, 1)


def _order(item) -> float:
    try:
        return _FIRST.index(item[0].lower())
    except (ValueError, AttributeError):
        return math.inf


def _format(value, indent: int, pad: int) -> str:
    """scipy's layout: keys right-justified, nested results indented, short arrays."""
    if isinstance(value, dict):
        items = sorted(((k, v) for k, v in value.items() if k not in _OMITTED), key=_order)
        width = max(map(len, map(str, value.keys()))) + pad
        return "\n".join(
            str(k).rjust(width)
            + ": "
            + _format(v, width + indent + 2, 0).replace("\n", "\n" + " " * (width + 2))
            for k, v in items
        )
    with np.printoptions(
        linewidth=76 - indent, edgeitems=2, threshold=12, formatter={"float_kind": _float10}
    ):
        return str(value)


def _float10(x) -> str:
    """A float in exactly ten characters, as scipy prints result fields."""
    if np.isposinf(x):
        return "       inf"
    if np.isneginf(x):
        return "      -inf"
    if np.isnan(x):
        return "       nan"
    return np.format_float_scientific(x, precision=3, pad_left=2, unique=False)
