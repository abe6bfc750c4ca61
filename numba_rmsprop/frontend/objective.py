"""The objective of a ``minimize`` run, as the loops call it.

:class:`Objective` turns the ways scipy lets a user give the loss and its
gradient -- ``jac=True`` (``fun`` returns both), a callable ``jac``, finite
differences (``None``, ``"2-point"``, ``"3-point"``, ``"cs"``), and scipy's
``MemoizeJac`` wrapper around a ``jac=True`` function -- into one call,
``ev(x, *args) -> (loss, gradient)``, with its cost in ``fun`` calls, and
checks what comes back: the loss by scipy's rule (:func:`as_loss`), the
gradient by shape and dtype (:meth:`Objective.coerce_grad`).

Every call gets its own copy of ``x`` from the loop; ``jac`` and the
finite-difference base point get further copies, so nothing a user function
does to its argument reaches another call or the run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .scipy_types import scipy_wrapped_pair

FD_METHODS = ("2-point", "3-point", "cs")
LOSS_RULE = "`fun` must return a scalar loss (a number or an array with one element)"


def as_loss(f, complex_step: bool = False) -> float:
    """The loss ``fun`` returned, as a float.

    As scipy's methods (``np.asarray(f).item()``): numbers, 0-d arrays and
    arrays with one element of any shape; anything else raises. With
    ``complex_step`` (the evaluations of ``jac='cs'``) complex values pass
    as complex numbers.
    """
    if f.__class__ is float:
        return f
    if isinstance(f, (str, bytes)):
        raise TypeError(f"`fun` must return a real scalar loss; got {f!r}.")
    try:
        a = np.asarray(f)
    except Exception:
        raise TypeError(f"`fun` must return a real scalar loss; got {f!r}.") from None
    if a.size != 1:
        raise ValueError(f"{LOSS_RULE}; got shape {a.shape}.")
    if a.dtype.kind == "c":
        if complex_step:
            return a.item()
        raise TypeError("`fun` must return a real loss; got a complex number.")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"`fun` must return a real scalar loss; got {f!r}.")
    return float(a.item())


class Objective:
    """``ev(x, *args) -> (loss, gradient)`` for one run, and its checks.

    Attributes
    ----------
    ev : callable
        One evaluation. Its loss is what ``fun`` returned (see :meth:`check`
        and :func:`as_loss`), except under finite differences, where it is
        already a float.
    cost : int
        ``fun`` calls per evaluation (``n + 1`` or ``2n + 1`` with finite
        differences over ``n`` free variables).
    mode : str
        ``"pair"`` (``jac=True``), ``"callable"`` or a finite-difference
        scheme.
    pair_fun : callable or None
        The function returning ``(loss, gradient)`` in ``"pair"`` mode (the
        compiled loop calls it directly).
    """

    def __init__(self, fun: Callable, jac, *, n: int, dtype, bounds=None, rel_step=None):
        if isinstance(jac, str):
            if jac not in FD_METHODS:
                raise ValueError(
                    f"`jac` must be True, a callable, None or one of {FD_METHODS}; got {jac!r}."
                )
        elif not (jac is None or isinstance(jac, (bool, np.bool_)) or callable(jac)):
            raise TypeError(
                f"`jac` must be True, a callable, None or one of {FD_METHODS}; got {jac!r}."
            )
        self.n = n
        self.dtype = np.dtype(dtype)
        self.pair_fun: Callable | None = None
        wrapped = scipy_wrapped_pair(fun, jac)
        if wrapped is not None:  # scipy's dispatcher wrapped a (loss, grad) function
            self.pair_fun, self.mode = wrapped, "pair"
        elif jac is True or (isinstance(jac, np.bool_) and bool(jac)):
            self.pair_fun, self.mode = fun, "pair"
        elif callable(jac):
            self.mode = "callable"
        else:
            self.mode = jac if isinstance(jac, str) else "2-point"

        if self.mode == "pair":
            self.ev, self.cost = self.pair_fun, 1
        elif self.mode == "callable":

            def ev(x, *a):
                xj = x.copy()  # fun and jac each get their own copy
                return fun(x, *a), jac(xj, *a)

            self.ev, self.cost = ev, 1
        else:
            self.ev, n_free = finite_differences(fun, self.mode, rel_step, bounds, n)
            self.cost = (2 * n_free if self.mode == "3-point" else n_free) + 1

    def coerce_grad(self, g) -> np.ndarray:
        """``g`` as a C-contiguous 1-D array of ``x``'s dtype, or a clear error."""
        n = self.n
        try:
            arr = np.asarray(g)
        except Exception as exc:
            raise TypeError(f"The gradient must be an array of {n} numbers: {exc}") from None
        shape = arr.shape
        if not (shape == (n,) or (n == 1 and shape == ())):
            raise ValueError(
                f"The gradient has shape {shape}; expected ({n},) to match x0's {n} "
                "elements" + (" (from `jac`)" if self.mode == "callable" else "") + "."
            )
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"The gradient must be real; got dtype {arr.dtype}.")
        return np.ascontiguousarray(arr.reshape(n), dtype=self.dtype)

    def check(self, out) -> tuple:
        """Validate an evaluation thoroughly; returns ``(loss as float, gradient)``."""
        if self.mode == "pair":
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise ValueError(
                    "With jac=True, `fun` must return a pair (loss, gradient); got "
                    f"{type(out).__name__}"
                    + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
                    + "."
                )
        f, g = out
        return as_loss(f), self.coerce_grad(g)


def finite_differences(fun, method, rel_step, bounds, n):
    """``(ev, n_free)``: ``ev(x, *args) -> (f, g)`` with ``g`` estimated by
    :func:`scipy.optimize._numdiff.approx_derivative` over the ``n_free``
    variables that the bounds do not fix.

    Every step stays inside the bounds, as ``approx_derivative(bounds=...)``
    keeps it. A variable fixed by ``lb == ub`` leaves no room for a step (its
    difference quotient would be 0/0, scipy gh-12502); as scipy's
    ``minimize`` does for L-BFGS-B, such variables are taken out of the
    differentiation: their gradient is 0, which is also their projected
    gradient, and they cost no evaluations.
    """
    from scipy.optimize._numdiff import approx_derivative

    user_fun = fun
    cs = method == "cs"

    def fun(x, *a):  # approx_derivative differentiates a scalar: one-element losses too
        return as_loss(user_fun(x, *a), cs)

    if bounds is None:
        lb, ub = np.full(n, -np.inf), np.full(n, np.inf)
    else:
        lb, ub = bounds
    free = np.flatnonzero(lb != ub)
    if free.size == n:

        def ev(x, *a):
            x0 = x.copy()  # fun may modify x
            f = fun(x, *a)
            return f, approx_derivative(
                fun, x0, method=method, rel_step=rel_step, f0=f, bounds=(lb, ub), args=a
            )

        return ev, n

    sub_bounds = (lb[free], ub[free])
    sub_step = (
        rel_step
        if rel_step is None or np.ndim(rel_step) == 0
        else np.broadcast_to(np.asarray(rel_step), (n,))[free]
    )

    def ev(x, *a):
        x0 = x.copy()
        f = fun(x, *a)
        g = np.zeros_like(x0)
        if free.size:

            def on_free(z, *a):
                full = x0.copy()  # a fresh array per evaluation
                full[free] = z
                return fun(full, *a)

            g[free] = approx_derivative(
                on_free, x0[free], method=method, rel_step=sub_step, f0=f, bounds=sub_bounds, args=a
            )
        return f, g

    return ev, int(free.size)
