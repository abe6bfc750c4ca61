"""The front end's options, checks and stop table (shared by ``minimize_many``).

* :data:`RMSPROP_OPTIONS` and :data:`LOOP_OPTIONS`: every option of
  ``options=`` and its validator (one message style, the hyperparameters');
* :data:`STOPS`: why a run stopped -> ``(status, message)``, as scipy's
  methods keep a table of status messages;
* the checks of ``x0``, ``bounds``, ``constraints`` and ``callback``, made
  before anything runs.
"""

from __future__ import annotations

import inspect
import math
import sys

import numpy as np

from ..engine import hyperparameters as H
from ..optimizer import RMSprop
from .scipy_types import is_bounds
from .state import FTOL, GTOL, NONFINITE_GRAD, NONFINITE_LOSS, NONFINITE_X0, OVERFLOW

#: The options that configure :class:`~numba_rmsprop.RMSprop` itself.
RMSPROP_OPTIONS = RMSprop.names(options=True)
#: The options of the loop around it: name -> (default, validator). The
#: validators are the hyperparameters' (one message style); None: checked
#: where it is used (``data_args`` against ``args``).
LOOP_OPTIONS = {
    "maxiter": (None, H.limit(0)),  # None: 1000
    "maxfev": (None, H.limit(1)),
    "batch_size": (None, H.integer(1, optional=True)),
    "shuffle": (True, H.boolean),
    "seed": (None, H.seed),
    "data_args": (None, None),
    "gtol": (None, H.real(0.0, optional=True)),
    "tol": (None, H.real(0.0, optional=True)),
    "ftol": (None, H.real(0.0, optional=True)),
    "patience": (10, H.integer(1)),
    "tol_momentum": (0.9, H.real(0.0, 1.0, open_hi=True)),
    "disp": (False, H.boolean),
    "return_history": (False, H.boolean),
    "compiled": ("auto", H.one_of("auto", True, False)),
    "finite_diff_rel_step": (None, None),
    "shuffle_buffer": (None, H.integer(1, optional=True)),  # dask arrays only
    "client": (None, H.dask_client),
    "resume": (None, None),  # an earlier result: frontend/checkpoint.py checks it
}
#: ``maxiter`` when it is None (scipy's methods each have their own default).
DEFAULT_MAXITER = 1000

STOP_CALLBACK = 99  # callback raised StopIteration
_TOL_NOT_MET = " before the requested tolerance was met."

#: Why a run stopped -> (status, message), as scipy's methods keep a table of
#: status messages. Keys: the codes of :mod:`.state`, or the
#: limit that ended the loop (with ", tol" when a tolerance was requested and
#: not met). Messages are formatted with :meth:`Run._message_fields`.
STOPS = {
    "maxiter": (0, "Completed maxiter={maxiter} iterations."),
    "maxiter, tol": (1, "Maximum number of iterations (maxiter={maxiter}) reached" + _TOL_NOT_MET),
    "maxfev": (1, "Maximum number of function evaluations (maxfev={maxfev}) reached."),
    "maxfev, tol": (
        1,
        "Maximum number of function evaluations (maxfev={maxfev}) reached" + _TOL_NOT_MET,
    ),
    GTOL: (
        0,
        "Optimization terminated successfully: gtol met (infinity norm of the "
        "gradient average {gnorm:.3g} <= {gtol:g}).",
    ),
    FTOL: (
        0,
        "Optimization terminated successfully: ftol met (the smoothed loss improved "
        "by less than ftol={ftol:g} relative over patience={patience} steps).",
    ),
    NONFINITE_LOSS: (
        2,
        "Non-finite loss ({f_last}) at {step}; x is the last finite "
        "iterate, where it was evaluated.",
    ),
    NONFINITE_GRAD: (
        2,
        "Non-finite gradient at {step}; x is the last finite iterate, where it was evaluated.",
    ),
    OVERFLOW: (
        2,
        "The update of {step} produced non-finite parameters; it was undone, "
        "and x is the last finite iterate.",
    ),
    NONFINITE_X0: (2, "x0 is not finite ({x0_entry}); nothing was evaluated."),
    STOP_CALLBACK: (99, "`callback` raised `StopIteration`."),  # scipy's words
}


def loop_options(options: dict, tol, callback) -> dict:
    """The loop's options, validated, defaults filled in."""
    o = {}
    for name, (default, check) in LOOP_OPTIONS.items():
        value = options.get(name, default)
        o[name] = check(name, value) if check is not None else value
    if o["gtol"] is None:  # scipy passes `tol` as options["tol"]; nr.minimize as `tol`
        o["gtol"] = o["tol"] if o["tol"] is not None else H.real(0.0, optional=True)("tol", tol)
    if o["maxiter"] is None:
        o["maxiter"] = DEFAULT_MAXITER
    if o["maxfev"] == math.inf:
        o["maxfev"] = None
    if (
        o["maxiter"] == math.inf
        and o["gtol"] is None
        and o["ftol"] is None
        and o["maxfev"] is None
        and callback is None
    ):
        raise ValueError(
            "`maxiter=inf` needs another stopping rule: `gtol` (or `tol`), "
            "`ftol`, a finite `maxfev`, or a callback that raises StopIteration."
        )
    return o


def check_x0(x0) -> np.ndarray:
    """``x0`` as a 1-D float32/float64 copy; a 0-d ``x0`` becomes 1-D, as in scipy.

    Entries that are not finite are kept: as every scipy method does, the run then
    returns a failed result (status 2) instead of raising (see :func:`x0_entry`).
    """
    try:
        a = np.asarray(x0)
    except Exception as exc:
        raise TypeError(f"`x0` must be a real number or an array of them: {exc}") from None
    if a.dtype.kind == "c":
        raise TypeError("`x0` must be real; got a complex array.")
    if a.ndim > 1:
        raise ValueError("'x0' must only have one dimension.")  # scipy.optimize.minimize's
    dt = np.float32 if a.dtype == np.float32 else np.float64
    try:
        x = np.array(a, dtype=dt).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`x0` must be a real number or an array of them: {exc}") from None
    if x.size == 0:
        raise ValueError("`x0` is empty.")
    return x


def x0_entry(x) -> str:
    """The first entry of ``x`` that is not finite, for the status-2 message of a run that
    starts there (``"x0[1] = nan (and 2 more)"``), or ``""`` when all are finite."""
    bad = np.flatnonzero(~np.isfinite(x))
    if not bad.size:
        return ""
    more = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
    return f"x0[{bad[0]}] = {x[bad[0]]}{more}"


def check_constraints(constraints) -> None:
    if constraints is None:
        return
    if isinstance(constraints, (list, tuple, dict)) and len(constraints) == 0:
        return
    raise ValueError(
        "numba_rmsprop.rmsprop does not support `constraints` (only `bounds`, by "
        "projection). Use method='SLSQP', 'trust-constr' or 'COBYQA' for constrained "
        "problems, or fold the constraints into the loss as penalties."
    )


def bounds_arrays(bounds, n: int):
    """``(lb, ub)`` float64 arrays of length ``n``, or None when every bound is infinite."""
    if bounds is None:
        return None
    if is_bounds(bounds):
        lb, ub = bounds.lb, bounds.ub
    else:
        try:
            pairs = list(bounds)
        except TypeError:
            raise TypeError(
                "`bounds` must be a scipy.optimize.Bounds or a sequence of "
                f"(min, max) pairs; got {bounds!r}."
            ) from None
        if len(pairs) != n:
            raise ValueError(f"`bounds` has {len(pairs)} (min, max) pairs; x0 has {n} elements.")
        lb, ub = [], []
        for i, p in enumerate(pairs):
            try:
                lo, hi = p
            except (TypeError, ValueError):
                raise ValueError(f"bounds[{i}] must be a (min, max) pair; got {p!r}.") from None
            lb.append(-np.inf if lo is None else lo)
            ub.append(np.inf if hi is None else hi)
    try:
        lb = np.broadcast_to(np.asarray(lb, dtype=np.float64), (n,)).copy()
        ub = np.broadcast_to(np.asarray(ub, dtype=np.float64), (n,)).copy()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`bounds` do not fit x0's {n} elements: {exc}") from None
    if np.isnan(lb).any() or np.isnan(ub).any():
        raise ValueError("`bounds` contain NaN.")
    if (lb > ub).any():
        i = int(np.flatnonzero(lb > ub)[0])
        raise ValueError(
            f"`bounds` are infeasible: lower bound {lb[i]} > upper bound {ub[i]} for x[{i}]."
        )
    if np.isneginf(lb).all() and np.isposinf(ub).all():
        return None
    return lb, ub


def bounds_in_dtype(lb: np.ndarray, ub: np.ndarray, dt) -> tuple:
    """Bounds cast to ``dt``, rounded inward so projected values stay feasible."""
    lo = lb.astype(dt)
    hi = ub.astype(dt)
    if dt != np.float64:
        up = lo.astype(np.float64) < lb
        lo[up] = np.nextafter(lo[up], dt(np.inf))
        down = hi.astype(np.float64) > ub
        hi[down] = np.nextafter(hi[down], dt(-np.inf))
        if (lo > hi).any():
            raise ValueError("`bounds` are too narrow to hold a float32 value; use float64 x0.")
    return lo, hi


def callback_kind(callback) -> str | None:
    """``"result"`` for ``callback(intermediate_result)``, else ``"x"`` (as scipy decides)."""
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"`callback` must be callable; got {callback!r}.")
    names = parameter_names(callback)
    return "result" if names is not None and set(names) == {"intermediate_result"} else "x"


def parameter_names(fn) -> tuple | None:
    """The names of ``fn``'s parameters, without evaluating its annotations.

    As scipy reads a callback's signature (``_lib._util.wrapped_inspect_signature``):
    from Python 3.14 on, annotations are evaluated lazily and the default
    ``inspect.signature`` raises ``NameError`` for one that names a type
    imported only under ``TYPE_CHECKING``; the ``FORWARDREF`` format leaves it
    unevaluated. Should the signature still fail, the names come from the
    code object. None when there is no signature at all (some builtins).
    """
    try:
        if sys.version_info >= (3, 14):
            import annotationlib

            sig = inspect.signature(fn, annotation_format=annotationlib.Format.FORWARDREF)
        else:
            sig = inspect.signature(fn)
        return tuple(sig.parameters)
    except (TypeError, ValueError):
        return None
    except Exception:  # an annotation (or a __signature__) that cannot be evaluated
        pass
    skip = 0
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)):
        fn, skip = (type(fn).__call__ if callable(fn) else None), 1  # a callable object
    if inspect.ismethod(fn):
        fn, skip = fn.__func__, 1
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    return code.co_varnames[: code.co_argcount + code.co_kwonlyargcount][skip:]


def is_numba_dispatcher(fun) -> bool:
    mod = sys.modules.get("numba.core.dispatcher")
    return mod is not None and isinstance(fun, mod.Dispatcher)
