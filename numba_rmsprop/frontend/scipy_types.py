"""``scipy.optimize``'s types, read without importing ``scipy.optimize``.

Importing it costs 0.3-0.6 s, more than the rest of a first call. An object can only
be a ``Bounds`` or a ``MemoizeJac`` if the module that defines it is loaded, so the
checks look in :data:`sys.modules`; the warning class is imported when a warning is
raised.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable


def is_bounds(obj) -> bool:
    """Whether ``obj`` is a :class:`scipy.optimize.Bounds`."""
    module = sys.modules.get("scipy.optimize._constraints")
    return module is not None and isinstance(obj, module.Bounds)


def scipy_wrapped_pair(fun, jac):
    """The ``(loss, grad)`` function inside ``fun``, or None.

    ``scipy.optimize.minimize(fun, jac=True, method=callable)`` hands the method
    ``MemoizeJac(fun)`` and its ``derivative`` as ``jac``: calling the pair directly
    evaluates ``fun`` once per step instead of caching between two calls.
    """
    module = sys.modules.get("scipy.optimize._optimize")
    if module is None or not isinstance(fun, module.MemoizeJac):
        return None
    derivative = (
        getattr(jac, "__self__", None) is fun
        and getattr(jac, "__func__", None) is module.MemoizeJac.derivative
    )
    return fun.fun if jac is True or derivative else None


def warn_unknown_options(options: Iterable, known: Iterable, stacklevel: int) -> None:
    """``OptimizeWarning`` naming the keys of ``options`` not in ``known``, as scipy's methods."""
    known = set(known)
    unknown = sorted(str(k) for k in options if k not in known)
    if unknown:
        from scipy.optimize import OptimizeWarning

        warnings.warn(
            f"Unknown solver options: {', '.join(unknown)}",
            OptimizeWarning,
            stacklevel=stacklevel + 1,
        )
