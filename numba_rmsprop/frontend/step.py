"""The compiled step of a ``minimize`` run: one whole optimizer call.

:func:`step_arrays` makes one optimizer call for the single flat variable of a ``minimize``
run: the finiteness checks of the loss and gradient, the stopping tests
(``ftol`` on a smoothed loss, ``gtol`` on a moving average of the
gradient), then the RMSprop call itself through the same element rule
:class:`~numba_rmsprop.RMSprop` uses (:mod:`numba_rmsprop.engine.rule`, with
the same per-call scalars, :mod:`numba_rmsprop.engine.layout`, and the same
counter rules, :mod:`numba_rmsprop.engine.plan`), the projection onto the
bounds and a rollback when the update overflowed, on the row views of the
run's state (:func:`rows`; :func:`row_views` on the host). The Python loop
calls it once per step; the compiled loop (:mod:`.segment`) and the many-runs
kernels call it from compiled code. All therefore run the same machine code
on the same numbers, which is what makes the loops bit-identical.

The state's layout is :mod:`.state`'s.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from ..engine import config, layout, rule
from ..engine.cpu.kernels import (
    accumulate_element,
    blocked_sumsq,
    cast,
    clip_factors,
    load,
    pack_call,
    step_counters,
    update_count,
    update_element,
)
from ..engine.jit import njit
from .state import (
    C_ACC,
    C_AVG,
    C_BAK,
    C_FREQ,
    C_FTOL,
    C_GTOL,
    C_LB,
    C_MG,
    C_MOM,
    C_N,
    C_SWITCHES,
    C_V,
    FTOL,
    GTOL,
    NONFINITE_GRAD,
    NONFINITE_LOSS,
    OK,
    OVERFLOW,
    T_CLIP,
    T_FAVG,
    T_FBEST,
    T_FBETA,
    T_FCOUNT,
    T_FPOW,
    T_FSIGN,
    T_FSINCE,
    T_FTOL,
    T_GBETA,
    T_GNORM,
    T_GPOW,
    T_GTOL,
    T_HEAD,
    T_PATIENCE,
)

OPTS = dict(error_model="numpy", cache=config.CACHE)


def is_none(t) -> bool:
    return t is None or isinstance(t, (types.NoneType, types.Omitted))


# ---------------------------------------------------------------- helpers
# Each is a compile-time switch on whether a cfg entry is None.


def _row(S, r):
    """Row ``r`` of ``S``, or None when ``r`` is None (the overload below in compiled code)."""
    return None if r is None else S[r]


@overload(_row, inline="always")
def _row_ov(S, r):
    if is_none(r):
        return lambda S, r: None
    return lambda S, r: S[r]


@njit(inline="always", **OPTS)
def clamp_to_bounds(v, lb, ub, i):
    """``v`` projected onto ``[lb[i], ub[i]]``; ``v`` itself without bounds."""
    if lb is None:
        return v
    if v < lb[i]:
        return lb[i]
    if v > ub[i]:
        return ub[i]
    return v


@njit(inline="always", **OPTS)
def projected_gradient(gi, xi, lb, ub, i):
    """The projected gradient: 0 where ``x`` sits on a bound and ``g`` pushes past it."""
    if lb is None:
        return gi
    if (xi <= lb[i] and gi > 0) or (xi >= ub[i] and gi < 0):
        return 0.0
    return gi


@njit(inline="always", **OPTS)
def _grad_average(x, g, T, lb, ub):
    """Update the gradient average; return its bias-corrected inf-norm.

    With bounds, the projected gradient is averaged: a component pushing
    ``x`` further past the bound it sits on counts as 0.
    """
    beta = T[T_GBETA]
    omb = 1.0 - beta
    T[T_GPOW] = T[T_GPOW] * beta
    corr = 1.0 - T[T_GPOW]
    m = 0.0
    for i in range(x.size):
        gi = projected_gradient(np.float64(g[i]), x[i], lb, ub, i)
        a = beta * T[T_HEAD + i] + omb * gi
        T[T_HEAD + i] = a
        a = abs(a)
        if a > m:
            m = a
    m = m / corr
    T[T_GNORM] = m
    return m


@njit(inline="always", **OPTS)
def loss_plateau(T, f):
    """Track the smoothed loss; True once it stopped improving for ``patience`` steps
    (improving: falling; rising with ``maximize``, where ``T[T_FSIGN]`` is -1)."""
    beta = T[T_FBETA]
    T[T_FAVG] = beta * T[T_FAVG] + (1.0 - beta) * (T[T_FSIGN] * f)
    T[T_FPOW] = T[T_FPOW] * beta
    T[T_FCOUNT] = T[T_FCOUNT] + 1.0
    smooth = T[T_FAVG] / (1.0 - T[T_FPOW])
    best = T[T_FBEST]
    if T[T_FCOUNT] == 1.0 or smooth < best - T[T_FTOL] * abs(best):
        T[T_FBEST] = smooth
        T[T_FSINCE] = 0.0
        return False
    T[T_FSINCE] = T[T_FSINCE] + 1.0
    return T[T_FSINCE] >= T[T_PATIENCE]


@njit(inline="always", **OPTS)
def _finish_avg(avg, lb, ub, i):
    """Project ``avg[i]``; False if it is not finite. True without EMA."""
    if avg is None:
        return True
    ai = avg[i]
    avg[i] = clamp_to_bounds(ai, lb, ub, i)
    return abs(ai) < np.inf


@njit(inline="always", **OPTS)
def copy_elements(dst, src):
    """``dst[:] = src`` elementwise; nothing when either is None."""
    if src is None or dst is None:
        return
    for i in range(src.size):
        dst[i] = src[i]


@njit(inline="always", **OPTS)
def copy_element(dst, src, i):
    """``dst[i] = src[i]``; nothing when either is None."""
    if src is None or dst is None:
        return
    dst[i] = src[i]


@njit(inline="always", **OPTS)
def finish_element(x, avg, lb, ub, i):
    """Project element ``i`` (and its EMA) onto the bounds; False if either is not finite."""
    xi = x[i]
    x[i] = clamp_to_bounds(xi, lb, ub, i)
    return (abs(xi) < np.inf) & _finish_avg(avg, lb, ub, i)


# ---------------------------------------------------------------- one step
def _after(q):
    """``q + 1``, or None when ``q`` is None."""
    return None if q is None else q + 1


@overload(_after, inline="always")
def _after_ov(q):
    """``q + 1``, or None when ``q`` is None."""
    if is_none(q):
        return lambda q: None
    return lambda q: q + 1


def _ema_bak(r_avg, r_bak):
    """Row of the EMA's backup (after ``x``'s), or None without EMA."""
    return None if r_avg is None else r_bak + 1


@overload(_ema_bak, inline="always")
def _ema_bak_ov(r_avg, r_bak):
    """Row of the EMA's backup (after ``x``'s), or None without EMA."""
    if is_none(r_avg):
        return lambda r_avg, r_bak: None
    return lambda r_avg, r_bak: r_bak + 1


@njit(inline="always", **OPTS)
def rows(S, cfg):
    """The row views ``(x, v, mg, mom, acc, avg, bak, abak, lb, ub)`` of ``S`` (None when off).

    ``S`` of one run ``(rows, n)`` gives rows of ``n``; a vectorized state
    ``(rows, k, n)`` gives ``(k, n)`` blocks, every run's row at once.
    """
    return (
        S[0],
        S[cfg[C_V]],
        _row(S, cfg[C_MG]),
        _row(S, cfg[C_MOM]),
        _row(S, cfg[C_ACC]),
        _row(S, cfg[C_AVG]),
        S[cfg[C_BAK]],
        _row(S, _ema_bak(cfg[C_AVG], cfg[C_BAK])),
        _row(S, cfg[C_LB]),
        _row(S, _after(cfg[C_LB])),
    )


@njit(inline="always", **OPTS)
def finite_and_backup(g, x, bak):
    """True when every element of ``g`` is finite; backs ``x`` up into ``bak`` in the
    same pass (for a rollback; harmless when the step then stops)."""
    finite = True
    for i in range(g.size):
        finite = finite & (abs(g[i]) < np.inf)
        bak[i] = x[i]
    return finite


@njit(inline="always", **OPTS)
def _stop_code(x, g, T, lb, ub, bak, cfg, f):
    """The stop tests before a step, in order: ``OK`` or the stop code.

    They change nothing but the tolerance state ``T`` and the backup ``bak``
    of ``x`` (taken in the same pass, for a rollback): a step that stops
    leaves ``x`` and the optimizer's state as they were.
    """
    finite = finite_and_backup(g, x, bak)
    if not math.isfinite(f):
        return NONFINITE_LOSS
    if not finite:
        return NONFINITE_GRAD
    if cfg[C_FTOL] != 0:
        if loss_plateau(T, f):
            return FTOL
    if cfg[C_GTOL] != 0:
        if _grad_average(x, g, T, lb, ub) <= T[T_GTOL]:
            return GTOL
    return OK


class _LLVMInlined(type(njit(lambda: None))):
    """A Numba dispatcher whose compiled functions LLVM inlines into their callers.

    Each overload's function gets LLVM's ``alwaysinline`` attribute in the
    module that callers link (the one compiled now, or the one loaded from
    the disk cache). The function is typed and compiled once, as any
    function; Numba's own ``inline="always"`` instead copies and types its IR
    again in every caller, which made the compiled loop's first compile 2 s
    longer. Relies on Numba's code libraries keeping that module
    (``_final_module``, ``_shared_module``); ``tests/test_optimize.py``
    checks the loop has no call left.
    """

    def add_overload(self, cres):
        super().add_overload(cres)
        lib = cres.library
        for mod in (getattr(lib, "_final_module", None), getattr(lib, "_shared_module", None)):
            if mod is None:
                continue
            try:
                fn = mod.get_function(cres.fndesc.mangled_name)
            except NameError:
                continue
            fn.add_function_attribute("alwaysinline")


def _inlined_by_llvm(dispatcher):
    """``dispatcher`` (made by ``njit``) as an :class:`_LLVMInlined` dispatcher."""
    dispatcher.__class__ = _LLVMInlined
    return dispatcher


@_inlined_by_llvm
@njit(_nrt=False, **OPTS)
def step_arrays(x, g, v, mg, mom, acc, avg, bak, abak, lb, ub, xc, T, P, cfg, clip, f, it, lr):
    """One optimizer call at iteration ``it`` (0-based) with loss ``f`` and gradient ``g``
    on the rows of ``S`` (:func:`rows`; None when off).

    Returns ``OK`` after the call, or a stop code *before* changing anything
    but the tolerance state: ``NONFINITE_LOSS``, ``NONFINITE_GRAD``,
    ``FTOL``, ``GTOL``; ``OVERFLOW`` after rolling ``x`` (and the EMA) back
    when the update itself produced non-finite values. ``xc`` receives the new
    ``x`` for the objective's next call; ``clip`` is ``cfg[C_CLIP]``, passed on
    its own so that its ``is None`` branch is pruned (one update loop is
    compiled).

    The whole step is this one function, shared by both loops, with every
    loop inlined (the rule's ``is None`` branches are pruned on its
    arguments; the clip factors are passed as literal None without a norm
    clip). Compiled without reference counting (``_nrt=False``; it allocates
    nothing): with it, Numba left a pair of atomic operations per array and
    step, which cost more than the update of a 10-element variable. LLVM
    inlines it into its callers (:class:`_LLVMInlined`): called, passing its
    arguments cost a third of a compiled-loop step.

    Rule for every ``_nrt=False`` function here: no overload that returns a
    new array may be compiled inside one, and a function it calls that needs
    reference counting must ask for it (``_nrt=True``). Numba compiles a
    callee with the flags of its caller unless told otherwise, and reuses an
    overload's implementation compiled with the flags of its first use: one
    that returns a view, compiled without reference counting, would hand
    reference-counted callers an unowned array.
    """
    code = _stop_code(x, g, T, lb, ub, bak, cfg, f)
    if code == OK:
        # The counter rules of _plan.make_plan (cfg[C_FREQ] is 0 without EMA).
        sw = cfg[C_SWITCHES]
        update, first, overwrite = step_counters(it, cfg[C_N], cfg[C_FREQ])
        t = 0
        if sw[rule.BIAS_CORRECTION] is not None and update:
            t = update_count(it, cfg[C_N])
        if avg is not None:
            pack_call(P, lr, first, t)
        elif t > 0 or P[layout.LEARNING_RATE] != lr:  # else P holds this call's slots
            pack_call(P, lr, None, t)
        s = load(P)
        copy_elements(abak, avg)
        if clip is None:
            num = None
            den = None
        else:
            num, den = clip_factors(clip, blocked_sumsq(x.size, 0, g, acc, s, sw), T[T_CLIP])
            num, den = cast(s[0], num), cast(s[0], den)
        if acc is not None and not update:  # pruned without accumulation
            for i in range(x.size):
                accumulate_element(i, x, g, acc, avg, s, sw, overwrite)
        else:
            for i in range(x.size):
                update_element(i, x, g, v, mg, mom, acc, avg, s, sw, num, den, True, overwrite)
        finite = True
        for i in range(x.size):
            finite = finite & finish_element(x, avg, lb, ub, i)
            copy_element(xc, x, i)
        if not finite:
            copy_elements(x, bak)
            copy_elements(avg, abak)
            code = OVERFLOW
    return code


def row_views(S, cfg) -> tuple:
    """:func:`rows` run by Python: ``(x, v, mg, mom, acc, avg, bak, abak, lb, ub)``.

    The host takes the views once per run and passes them to
    :func:`step_arrays` (the Python loop) and to the compiled loop's entry
    (:func:`.segment.segment_loop`): one compiled step for both loops, and no
    compiled wrapper that only slices ``S``.
    """
    return rows.py_func(S, cfg)
