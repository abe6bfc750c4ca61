"""Compiled pieces of the ``minimize`` front end (:mod:`numba_rmsprop.optimize`).

Three things live here:

:class:`RunState` (made by :func:`make_state`)
    The memory of one run: the variable, its RMSprop state, the tolerance
    state and the per-call scalars, laid out for :func:`step`.
:func:`step`
    One whole optimizer call for the single flat variable of a ``minimize``
    run: the finiteness checks of the loss and gradient, the stopping tests
    (``ftol`` on a smoothed loss, ``gtol`` on a moving average of the
    gradient), then the RMSprop call itself through the same element rule
    :class:`~numba_rmsprop.RMSprop` uses (:mod:`numba_rmsprop._rule`, with
    the same per-call scalars, :mod:`numba_rmsprop._layout`, and the same
    counter rules, :mod:`numba_rmsprop._plan`), the projection onto the
    bounds and a rollback when the update overflowed. The Python loop calls it once per
    step; the compiled loop calls it from compiled code. Both therefore run
    the same machine code on the same numbers, which is what makes the two
    loops bit-identical.
:func:`run_segment`
    The compiled loop: calls a numba-compiled objective, slices the minibatch
    out of the (host-permuted) data and runs the same compiled step
    (:func:`step_arrays`, which :func:`step` wraps), for a run of steps that
    stays inside one epoch and one learning-rate block.

Layout (:class:`RunState`)
--------------------------
``S`` (2-D, the variable's dtype)
    Row 0 is the variable ``x`` itself (the array the objective sees);
    further rows hold the RMSprop state, a backup of ``x`` (and of the EMA)
    for the rollback, and the bounds. ``cfg`` names the rows.
``P`` (1-D, the variable's dtype)
    The per-call scalars of :mod:`numba_rmsprop._layout`.
``T`` (1-D, float64)
    Tolerance parameters and state (``T_*``), then the moving average of the
    gradient from ``T_HEAD`` on.
``cfg`` (tuple)
    ``(N, ema_freq, r_v, r_mg, r_mom, r_acc, r_avg, r_bak, r_lb, clip_mode,
    gtol, ftol, switches)``: two integers, then row numbers that are ``None``
    when the feature is off, the clip mode (``None`` without a norm clip),
    two 0/1 integers, and the element rule's switch tuple. ``None`` selects
    the feature away at compile time (as the kernels' ``None`` arguments
    do), so each configuration compiles into its own straight line of code;
    the stopping tests are plain run-time switches, which saves compiling a
    variant per test.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

from . import _config, _layout, _math, _plan, _rule
from ._cpu import (_accumulate_element, _cast, _clip_factors, _load, _update_element,
                   blocked_sumsq, segment_accumulate, segment_update)

_OPTS = dict(error_model="numpy", cache=_config.CACHE)
_counters = njit(inline="always", **_OPTS)(_plan.counters)
_update_count = njit(inline="always", **_OPTS)(_plan.update_count)
_pack_call = njit(inline="always", **_OPTS)(_layout.pack_call)

# ---------------------------------------------------------------- layout
# T: float64 tolerance parameters and state, then the gradient average.
T_CLIP = 0        # clipnorm / global_clipnorm value
T_GTOL = 1        # gtol
T_GBETA = 2       # momentum of the gradient average
T_GPOW = 3        # GBETA ** (number of averaged gradients), for the bias correction
T_GNORM = 4       # last inf-norm of the (bias-corrected) gradient average
T_FTOL = 5        # ftol
T_FBETA = 6       # momentum of the loss average
T_FPOW = 7        # FBETA ** (number of averaged losses)
T_FAVG = 8        # loss average (biased)
T_FBEST = 9       # best bias-corrected loss average so far
T_FSINCE = 10     # steps since FBEST improved by more than ftol (relative)
T_PATIENCE = 11   # patience
T_FCOUNT = 12     # number of losses averaged
T_HEAD = 16

# cfg positions
C_N, C_FREQ, C_V, C_MG, C_MOM, C_ACC, C_AVG, C_BAK, C_LB = range(9)
C_CLIP, C_GTOL, C_FTOL, C_SWITCHES = range(9, 13)

# Return codes of step() / run_segment().
OK = 0
NONFINITE_LOSS = 1
NONFINITE_GRAD = 2
GTOL = 3
FTOL = 4
OVERFLOW = 5
BAD_GRAD = 6
BAD_LOSS = 7


class RunState(NamedTuple):
    """The arrays of one run, or of ``k`` runs (a leading axis; see the module docstring).

    ``x`` is row 0 of ``S``. ``counters`` holds each run's ``(N, ema_freq)``
    (the first two entries of ``cfg``, which are run 0's).
    """

    S: np.ndarray
    T: np.ndarray
    P: np.ndarray
    cfg: tuple
    x: np.ndarray
    r_avg: Optional[int]
    counters: np.ndarray


def _one(flags, what: str) -> bool:
    """The value of boolean ``flags`` shared by every run (they decide the layout)."""
    flags = np.asarray(flags)
    if flags.size and flags.min() != flags.max():
        raise ValueError(f"runs of one layout differ in {what}")  # pragma: no cover - grouped
    return bool(flags.flat[0]) if flags.size else False


def make_state(spec, x0: np.ndarray, bounds, *, gtol, ftol, patience, tol_momentum,
               initial_velocity) -> RunState:
    """Lay out a run of :func:`step` for an RMSprop ``spec`` from ``x0``.

    ``x0`` is one starting point ``(n,)``, or ``(k, n)`` for ``k`` runs; then
    every numeric argument and every numeric attribute of ``spec`` may be a
    ``(k,)`` array of per-run values (:func:`numba_rmsprop._layout.pack_constants`
    casts them as it casts one). ``bounds`` is None or ``(lb, ub)`` in
    ``x0``'s dtype (rounded inward); ``x0`` is projected onto them. ``gtol``
    and ``ftol`` are None when not requested.
    """
    dt = x0.dtype
    lead = x0.shape[:-1]
    n = x0.shape[-1]
    rows = ["x", "v"]
    r = {}

    def add(name):
        r[name] = len(rows)
        rows.append(name)
        return r[name]

    r_mg = add("mg") if spec.centered else None
    r_mom = add("mom") if _one(np.asarray(spec.momentum) > 0, "momentum > 0") else None
    r_acc = add("acc") if spec.accumulation_steps is not None else None
    r_avg = add("avg") if spec.use_ema else None
    r_bak = add("bak")
    if spec.use_ema:
        add("abak")
    r_lb = None
    if bounds is not None:
        r_lb = add("lb")
        add("ub")
    S = np.zeros(lead + (len(rows), n), dtype=dt)
    x = S[..., 0, :]
    x[...] = x0
    S[..., 1, :] = np.asarray(initial_velocity, dtype=np.float64)[..., None]
    if bounds is not None:
        S[..., r_lb, :], S[..., r_lb + 1, :] = bounds
        np.clip(x, bounds[0], bounds[1], out=x)

    T = np.zeros(lead + (T_HEAD + n,), dtype=np.float64)
    T[..., T_CLIP] = spec.clip if spec.clips_by_norm else 0.0
    T[..., T_GTOL] = gtol if gtol is not None else 0.0
    T[..., T_GBETA] = tol_momentum
    T[..., T_GPOW] = 1.0
    T[..., T_FTOL] = ftol if ftol is not None else 0.0
    T[..., T_FBETA] = tol_momentum
    T[..., T_FPOW] = 1.0
    T[..., T_PATIENCE] = patience

    clip = None
    if spec.clip_mode == "norm":
        clip = _math.CLIP_NORM
    elif spec.clip_mode == "global":
        clip = _math.CLIP_GLOBAL
    counters = np.zeros(lead + (2,), dtype=np.int64)
    if spec.accumulation_steps is not None:
        counters[..., 0] = spec.accumulation_steps
    if spec.use_ema and spec.ema_overwrite_frequency is not None:
        counters[..., 1] = spec.ema_overwrite_frequency
    first = counters.reshape(-1, 2)[0]
    cfg = (
        int(first[0]), int(first[1]),
        1, r_mg, r_mom, r_acc, r_avg, r_bak, r_lb, clip,
        int(gtol is not None), int(ftol is not None), spec.switches,
    )
    P = _layout.pack_constants(spec, dt, lead)
    return RunState(S=S, T=T, P=P, cfg=cfg, x=x, r_avg=r_avg, counters=counters)


def _is_none(t) -> bool:
    return t is None or isinstance(t, (types.NoneType, types.Omitted))


# ---------------------------------------------------------------- helpers
# Each is a compile-time switch on whether a cfg entry is None.

def _row(S, r):  # pragma: no cover - replaced by the overload in compiled code
    raise NotImplementedError


@overload(_row, inline="always")
def _row_ov(S, r):
    if _is_none(r):
        return lambda S, r: None
    return lambda S, r: S[r]


def _clamp(v, lb, ub, i):  # pragma: no cover
    raise NotImplementedError


@overload(_clamp, inline="always")
def _clamp_ov(v, lb, ub, i):
    """``v`` projected onto ``[lb[i], ub[i]]``; ``v`` itself without bounds."""
    if _is_none(lb):
        return lambda v, lb, ub, i: v

    def impl(v, lb, ub, i):
        if v < lb[i]:
            return lb[i]
        if v > ub[i]:
            return ub[i]
        return v
    return impl


def _projected(gi, xi, lb, ub, i):  # pragma: no cover
    raise NotImplementedError


@overload(_projected, inline="always")
def _projected_ov(gi, xi, lb, ub, i):
    """The projected gradient: 0 where ``x`` sits on a bound and ``g`` pushes past it."""
    if _is_none(lb):
        return lambda gi, xi, lb, ub, i: gi

    def impl(gi, xi, lb, ub, i):
        if (xi <= lb[i] and gi > 0) or (xi >= ub[i] and gi < 0):
            return 0.0
        return gi
    return impl


@njit(inline="always", **_OPTS)
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
        gi = _projected(np.float64(g[i]), x[i], lb, ub, i)
        a = beta * T[T_HEAD + i] + omb * gi
        T[T_HEAD + i] = a
        a = abs(a)
        if a > m:
            m = a
    m = m / corr
    T[T_GNORM] = m
    return m


@njit(inline="always", **_OPTS)
def _loss_plateau(T, f):
    """Track the smoothed loss; True once it stopped improving for ``patience`` steps."""
    beta = T[T_FBETA]
    T[T_FAVG] = beta * T[T_FAVG] + (1.0 - beta) * f
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


def _finish_avg(avg, lb, ub, i):  # pragma: no cover
    raise NotImplementedError


@overload(_finish_avg, inline="always")
def _finish_avg_ov(avg, lb, ub, i):
    """Project ``avg[i]``; False if it is not finite. True without EMA."""
    if _is_none(avg):
        return lambda avg, lb, ub, i: True

    def impl(avg, lb, ub, i):
        ai = avg[i]
        avg[i] = _clamp(ai, lb, ub, i)
        return abs(ai) < np.inf
    return impl


def _copy(dst, src):  # pragma: no cover
    raise NotImplementedError


@overload(_copy, inline="always")
def _copy_ov(dst, src):
    """``dst[:] = src`` elementwise; nothing when either is None."""
    if _is_none(src) or _is_none(dst):
        return lambda dst, src: None

    def impl(dst, src):
        for i in range(src.size):
            dst[i] = src[i]
    return impl


def _copy_at(dst, src, i):  # pragma: no cover
    raise NotImplementedError


@overload(_copy_at, inline="always")
def _copy_at_ov(dst, src, i):
    """``dst[i] = src[i]``; nothing when either is None."""
    if _is_none(src) or _is_none(dst):
        return lambda dst, src, i: None

    def impl(dst, src, i):
        dst[i] = src[i]
    return impl


@njit(inline="always", **_OPTS)
def _finish_at(x, avg, lb, ub, i):
    """Project element ``i`` (and its EMA) onto the bounds; False if either is not finite."""
    xi = x[i]
    x[i] = _clamp(xi, lb, ub, i)
    return (abs(xi) < np.inf) & _finish_avg(avg, lb, ub, i)


# ---------------------------------------------------------------- one step
def _after(q):  # pragma: no cover
    raise NotImplementedError


@overload(_after, inline="always")
def _after_ov(q):
    """``q + 1``, or None when ``q`` is None."""
    if _is_none(q):
        return lambda q: None
    return lambda q: q + 1


def _ema_bak(r_avg, r_bak):  # pragma: no cover
    raise NotImplementedError


@overload(_ema_bak, inline="always")
def _ema_bak_ov(r_avg, r_bak):
    """Row of the EMA's backup (after ``x``'s), or None without EMA."""
    if _is_none(r_avg):
        return lambda r_avg, r_bak: None
    return lambda r_avg, r_bak: r_bak + 1


@njit(inline="always", **_OPTS)
def rows(S, cfg):
    """The row views ``(x, v, mg, mom, acc, avg, bak, abak, lb, ub)`` of ``S`` (None when off).

    ``S`` of one run ``(rows, n)`` gives rows of ``n``; a vectorized state
    ``(rows, k, n)`` gives ``(k, n)`` blocks, every run's row at once.
    """
    return (S[0], S[cfg[C_V]], _row(S, cfg[C_MG]), _row(S, cfg[C_MOM]), _row(S, cfg[C_ACC]),
            _row(S, cfg[C_AVG]), S[cfg[C_BAK]], _row(S, _ema_bak(cfg[C_AVG], cfg[C_BAK])),
            _row(S, cfg[C_LB]), _row(S, _after(cfg[C_LB])))


@njit(inline="always", **_OPTS)
def _grad_finite_backup(g, x, bak):
    """True when every element of ``g`` is finite; backs ``x`` up into ``bak`` in the
    same pass (for a rollback; harmless when the step then stops)."""
    finite = True
    for i in range(g.size):
        finite = finite & (abs(g[i]) < np.inf)
        bak[i] = x[i]
    return finite


@njit(inline="always", **_OPTS)
def _stop_code(x, g, T, lb, ub, bak, cfg, f):
    """The stop tests before a step, in order: ``OK`` or the stop code.

    They change nothing but the tolerance state ``T`` and the backup ``bak``
    of ``x`` (taken in the same pass, for a rollback): a step that stops
    leaves ``x`` and the optimizer's state as they were.
    """
    finite = _grad_finite_backup(g, x, bak)
    if not math.isfinite(f):
        return NONFINITE_LOSS
    if not finite:
        return NONFINITE_GRAD
    if cfg[C_FTOL] != 0:
        if _loss_plateau(T, f):
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
@njit(_nrt=False, **_OPTS)
def step_arrays(x, g, v, mg, mom, acc, avg, bak, abak, lb, ub, xc, T, P, cfg, clip, f, it, lr):
    """:func:`step` on the rows of ``S`` (None when off); ``xc`` receives the new
    ``x`` for the objective's next call; ``clip`` is ``cfg[C_CLIP]``, passed on its
    own so that its ``is None`` branch is pruned (one update loop is compiled).

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
        update, first, overwrite = _counters(it, cfg[C_N], cfg[C_FREQ])
        t = 0
        if sw[_rule.BIAS_CORRECTION] is not None and update:
            t = _update_count(it, cfg[C_N])
        if avg is not None:
            _pack_call(P, lr, first, t)
        elif t > 0 or P[_layout.LEARNING_RATE] != lr:  # else P holds this call's slots
            _pack_call(P, lr, None, t)
        s = _load(P)
        _copy(abak, avg)
        if clip is None:
            num = None
            den = None
        else:
            num, den = _clip_factors(clip, blocked_sumsq(x.size, 0, g, acc, s, sw), T[T_CLIP])
            num, den = _cast(s[0], num), _cast(s[0], den)
        if acc is not None and not update:  # pruned without accumulation
            for i in range(x.size):
                _accumulate_element(i, x, g, acc, avg, s, sw, overwrite)
        else:
            for i in range(x.size):
                _update_element(i, x, g, v, mg, mom, acc, avg, s, sw, num, den, True,
                                overwrite)
        finite = True
        for i in range(x.size):
            finite = finite & _finish_at(x, avg, lb, ub, i)
            _copy_at(xc, x, i)
        if not finite:
            _copy(x, bak)
            _copy(avg, abak)
            code = OVERFLOW
    return code


@njit(**_OPTS)
def step(S, g, T, P, cfg, f, it, lr, xc):
    """One optimizer call at iteration ``it`` (0-based) with loss ``f`` and gradient ``g``.

    Returns ``OK`` after the call, or a stop code *before* changing anything
    but the tolerance state: ``NONFINITE_LOSS``, ``NONFINITE_GRAD``,
    ``FTOL``, ``GTOL``; ``OVERFLOW`` after rolling ``x`` (and the EMA) back
    when the update itself produced non-finite values. ``xc`` (``n`` elements)
    receives the new ``x``, as in the compiled loop, which makes both loops
    share one compiled :func:`step_arrays`.
    """
    x, v, mg, mom, acc, avg, bak, abak, lb, ub = rows(S, cfg)
    return step_arrays(x, g, v, mg, mom, acc, avg, bak, abak, lb, ub, xc, T, P, cfg,
                       cfg[C_CLIP], f, it, lr)


# ---------------------------------------------------------------- compiled loop
def _cut_parts(args, batched):
    """Source of the batch's arguments: the data arrays of ``args`` cut to ``[a:b]``.

    The data arrays are the elements of ``args`` that are arrays with
    ``ndim >= 1``. ``batched`` is None (full batch: nothing is cut), an
    integer (rows ``a:b`` in order, as views) or the epoch's permutation
    (rows ``batched[a:b]``, gathered into a copy) -- what the Python loop does.
    """
    items = args.types if isinstance(args, types.BaseTuple) else ()
    if _is_none(batched):
        cut = "args[{i}]"
    elif isinstance(batched, types.Array):
        cut = "args[{i}][batched[a:b]]"
    else:
        cut = "args[{i}][a:b]"
    return [cut.format(i=i) if isinstance(t, types.Array) and t.ndim >= 1 else f"args[{i}]"
            for i, t in enumerate(items)]


def _impl_from_source(src: str):
    ns: dict = {"np": np}
    exec(src, ns)
    return ns["impl"]


def _call_source(args, batched):
    """Source of ``impl(fun, x, args, a, b, batched)``: ``fun(x, *batch)`` (see
    :func:`_cut_parts`)."""
    parts = "".join(", " + p for p in _cut_parts(args, batched))
    return _impl_from_source(
        f"def impl(fun, x, args, a, b, batched):\n    return fun(x{parts})\n")


def _call(fun, x, args, a, b, batched):  # pragma: no cover
    raise NotImplementedError


@overload(_call, inline="always")
def _call_ov(fun, x, args, a, b, batched):
    """``fun(x, *batch)`` with ``batch`` the arguments of the step.

    Inlined: whole data or slices (views) need no memory of their own, so
    this compiles without reference counting too; a permuted minibatch
    (gathered into new arrays) goes through :func:`_gathered_call`, which
    keeps it.
    """
    if isinstance(batched, types.Array):
        return lambda fun, x, args, a, b, batched: _gathered_call(fun, x, args, a, b, batched)
    return _call_source(args, batched)


def _call_gathering(fun, x, args, a, b, batched):  # pragma: no cover
    raise NotImplementedError


@overload(_call_gathering)
def _call_gathering_ov(fun, x, args, a, b, batched):
    return _call_source(args, batched)


@njit(_nrt=True, **_OPTS)  # explicit: a callee inherits an unset _nrt from its caller
def _gathered_call(fun, x, args, a, b, batched):
    """``fun(x, *batch)`` with the rows ``batched[a:b]`` of the data gathered (allocates:
    called from :func:`_segment_loop` as a reference-counted function)."""
    return _call_gathering(fun, x, args, a, b, batched)


def _batch(args, a, b, batched):  # pragma: no cover
    raise NotImplementedError


@overload(_batch)
def _batch_ov(args, a, b, batched):
    parts = "".join(p + ", " for p in _cut_parts(args, batched))
    return _impl_from_source(f"def impl(args, a, b, batched):\n    return ({parts})\n")


@njit(**_OPTS)
def batch_arguments(args, a, b, batched):
    """The arguments after ``x`` that :func:`run_segment` passes the objective.

    Compiling it (and reading its return type) tells the caller the exact
    argument types the objective will be called with in compiled code.
    """
    return _batch(args, a, b, batched)


def _grad_size(g):  # pragma: no cover
    raise NotImplementedError


@overload(_grad_size, inline="always")
def _grad_size_ov(g):
    """How many numbers the objective's gradient ``g`` holds."""
    if isinstance(g, types.Array):
        return lambda g: g.size
    return lambda g: len(g)


def _as_grad(g, buf):  # pragma: no cover
    raise NotImplementedError


@overload(_as_grad, inline="always")
def _as_grad_ov(g, buf):
    """The gradient as ``np.asarray(g, dtype=buf.dtype)`` takes it in the Python loop:
    ``g`` itself when it is a contiguous vector of that dtype, else its
    ``buf.size`` elements (checked before) converted into ``buf``.

    Inlined and allocating nothing: loops compiled without reference
    counting use it too (see :func:`_segment_loop`).
    """
    if (isinstance(g, types.Array) and g.dtype == buf.dtype and g.layout == "C"
            and g.ndim == 1):
        return lambda g, buf: g

    def impl(g, buf):
        for i in range(buf.size):
            buf[i] = g[i]
        return buf
    return impl


def _as_loss(f):  # pragma: no cover
    raise NotImplementedError


@overload(_as_loss, inline="always")
def _as_loss_ov(f):
    """``(ok, loss)``: the loss as float64, as the Python loop takes it (one-element
    arrays too); ``ok`` is False for an array with another number of elements."""
    if isinstance(f, types.Array):
        first = "(" + "0, " * f.ndim + ")"
        return _impl_from_source(
            "def impl(f):\n    if f.size != 1:\n        return False, np.nan\n"
            f"    return True, np.float64(f[{first}])\n")
    return lambda f: (True, np.float64(f))


@intrinsic
def _drop(typingctx, value):
    """Decrement the reference count of every array (memory) in ``value``, in code
    compiled without reference counting; nothing in code with it (Numba does it)."""
    from numba.core.runtime.context import NRTContext

    def codegen(context, builder, sig, args):
        if not context.enable_nrt:
            NRTContext(context, True).decref(builder, value, args[0])
        return context.get_dummy_value()
    return types.none(value), codegen


@njit(nogil=True, **_OPTS)
def run_segment(fun, S, T, P, cfg, args, batched, start, batch_size, n_samples,
                lrs, lr_off, it0, nsteps, hist, gbuf, xc):
    """Run up to ``nsteps`` optimizer calls with a compiled objective.

    ``fun`` is a first-class function (``numba.types.FunctionType``), so this
    loop compiles once per signature of the objective -- not once per
    objective -- and is cached on disk; the objective runs through its own
    compiled code, exceptions included. ``fun(x, *batch)`` returns
    ``(loss, gradient)``; ``x`` is ``xc``, a copy of the iterate (``n``
    elements), as the Python loop passes one: refreshed before every call, so
    that an objective that modifies it changes nothing (one that keeps it sees
    it change). When ``batched`` is not None, step ``j`` uses positions
    ``[start + j*batch_size, ...)`` (clipped to ``n_samples``) of the epoch's
    order of the rows of every data array (see :func:`_call`).
    ``lrs[lr_off + j]`` is step ``j``'s learning rate. ``hist[j]`` receives
    step ``j``'s loss (``hist`` may be None).

    The loop releases the GIL (``nogil=True``): other Python threads run
    meanwhile, e.g. the loader of a streamed run (:mod:`numba_rmsprop._stream`),
    which would otherwise only get the GIL between segments. The objective's
    exceptions still reach the caller (numba takes the GIL back to raise them).

    Returns ``(code, steps, loss)``: ``steps`` calls were made, and ``code`` is
    the stop code of the evaluation after them (``OK`` when all ran); on a
    stop, ``gbuf`` holds that evaluation's gradient.
    """
    x, v, mg, mom, acc, avg, bak, abak, lb, ub = rows(S, cfg)
    return _segment_loop(fun, x, v, mg, mom, acc, avg, bak, abak, lb, ub, T, P, cfg,
                         cfg[C_CLIP], args, batched, start, batch_size, n_samples, lrs, lr_off,
                         it0, nsteps, hist, gbuf, xc)


@njit(_nrt=False, nogil=True, **_OPTS)
def _segment_loop(fun, x, v, mg, mom, acc, avg, bak, abak, lb, ub, T, P, cfg, clip, args,
                  batched, start, batch_size, n_samples, lrs, lr_off, it0, nsteps, hist, gbuf,
                  xc):
    """:func:`run_segment`'s loop on the rows of ``S``, compiled without reference
    counting (``_nrt=False``).

    With reference counting, the loop paid an atomic increment and decrement
    per array passed to the objective, each step. The only reference this
    loop owns is the objective's result, dropped explicitly (:func:`_drop`)
    on every way out of a step. LLVM inlines the step, :func:`step_arrays`
    (see :class:`_LLVMInlined`).
    """
    n = x.size
    f = np.nan
    _copy(xc, x)
    a = b = 0
    for j in range(nsteps):
        if batched is not None:  # the rows of this step's minibatch
            a = start + j * batch_size
            b = min(a + batch_size, n_samples)
        out = _call(fun, xc, args, a, b, batched)
        ok, f = _as_loss(out[0])
        if ok:
            if hist is not None:
                hist[j] = f
        if not ok:
            code = BAD_LOSS
        elif _grad_size(out[1]) != n:
            code = BAD_GRAD
        else:
            g = _as_grad(out[1], gbuf)
            code = step_arrays(x, g, v, mg, mom, acc, avg, bak, abak, lb, ub, xc, T, P, cfg,
                               clip, f, it0 + j, lrs[lr_off + j])
            if code != OK:
                _copy(gbuf, g)
        _drop(out)
        if code != OK:
            return code, j, f
    return OK, nsteps, f


# ---------------------------------------------------------------- many runs
# ``minimize_many`` (numba_rmsprop.many): k independent runs of one layout,
# state arrays with a leading run axis (make_state with a (k, n) x0). Each
# run is exactly one ``minimize`` run: the compiled loop calls run_segment
# per run; the vectorized loop (many_step) steps all runs in one pass, or
# calls step_arrays per run with the run's own views, scalars and counters.

def _pick(args, marker, r):  # pragma: no cover
    raise NotImplementedError


@overload(_pick)
def _pick_ov(args, marker, r):
    """``args`` with ``args[j][r]`` where ``marker[j]`` is not None (the run's own rows)."""
    items = args.types if isinstance(args, types.BaseTuple) else ()
    marks = marker.types if isinstance(marker, types.BaseTuple) else ()
    parts = "".join((f"args[{j}], " if _is_none(m) else f"args[{j}][r], ")
                    for j, m in zip(range(len(items)), marks))
    return _impl_from_source(f"def impl(args, marker, r):\n    return ({parts})\n")


@njit(**_OPTS)
def pick_arguments(args, marker, r):
    """Run ``r``'s arguments (see :func:`_pick`); compiled to read their types."""
    return _pick(args, marker, r)


def _row_of(a, r):  # pragma: no cover
    raise NotImplementedError


@overload(_row_of, inline="always")
def _row_of_ov(a, r):
    """Row ``r`` of a per-run table, or its only row; ``a`` itself when not an array."""
    if isinstance(a, types.Array) and a.ndim == 2:
        def impl(a, r):
            if a.shape[0] == 1:
                return a[0]
            return a[r]
        return impl
    return lambda a, r: a


@njit(nogil=True, **_OPTS)
def many_segment(fun, S, T, P, cfg, counters, args, marker, order, start, batch_size,
                 n_samples, LR, lr_off, it0, left, runs, ids, codes, made, flast, H, G, lo, hi):
    """:func:`run_segment` for each run in ``runs[lo:hi]``.

    Releases the GIL: :func:`numba_rmsprop._threads.run_chunks` runs chunks
    of the runs on several threads (a ``prange`` cannot carry the tuples of
    arguments and switches into its outlined body).

    Run ``r`` (``ids[r]`` in the whole batch, which indexes the per-run
    arguments) makes up to ``left[r]`` steps from iteration ``it0`` with its
    own state ``S[r], T[r], P[r]``, counters ``counters[r]`` (``N``,
    ``ema_freq``), arguments (``_pick(args, marker, ids[r])``), epoch order
    (row ``r`` of ``order``, or its only row) and learning rates (row ``r`` of
    ``LR``, or its only row); ``codes[r], made[r], flast[r]`` receive
    run_segment's ``(code, steps, loss)``, ``H[r]`` its losses (``H`` may be
    None) and ``G[r]`` the gradient of a stop.
    """
    xc = np.empty(S.shape[2], S.dtype)  # the objective's copy of x, for each run in turn
    for q in range(lo, hi):
        r = runs[q]
        cfg_r = (counters[r, 0], counters[r, 1]) + cfg[2:]
        code, done, f = run_segment(fun, S[r], T[r], P[r], cfg_r, _pick(args, marker, ids[r]),
                                    _row_of(order, r), start, batch_size, n_samples,
                                    _row_of(LR, r), lr_off, it0, left[r], _row_of(H, r), G[r],
                                    xc)
        codes[r] = code
        made[r] = done
        flast[r] = f


# The vectorized loop keeps its state with the run axis inside: ``S`` of
# shape ``(rows, k, n)`` (make_state's ``(k, rows, n)`` transposed), so that
# each state row of all runs is one contiguous block of ``k * n`` elements
# and a step of every run can be one pass over it.

@njit(inline="always", **_OPTS)
def _rate_of(LR, r, lr_off):
    """Run ``r``'s learning rate at ``lr_off``: row ``r`` of ``LR``, or its only row."""
    return LR[0, lr_off] if LR.shape[0] == 1 else LR[r, lr_off]


@njit(_nrt=False, **_OPTS)  # per-run views of P, without reference counts
def _update_runs(x, g, v, mg, mom, acc, avg, P, sw, update, overwrite, n):
    """The update pass of :func:`_flat_update` with each run's own scalars ``P[r]``,
    loaded before its ``n`` elements."""
    # Unsigned indices: a signed run-time offset keeps Numba's negative-index
    # wraparound in every access, which stops LLVM from vectorising.
    un = np.uint64(n)
    if acc is not None and not update:
        for r in range(P.shape[0]):
            s = _load(P[r])
            base = np.uint64(r) * un
            for i in range(un):
                _accumulate_element(base + i, x, g, acc, avg, s, sw, overwrite)
    else:
        for r in range(P.shape[0]):
            s = _load(P[r])
            base = np.uint64(r) * un
            for i in range(un):
                _update_element(base + i, x, g, v, mg, mom, acc, avg, s, sw, None, None, True,
                                overwrite)


@njit(_nrt=False, **_OPTS)  # per-run views of P, without reference counts
def _pack_rows(P, LR, lr_off, first, t, avg):
    """Each run's per-call slots, as :func:`step_arrays` packs them (``avg``: the EMA or
    None); learning rates from row 0 of ``LR`` or each run's row."""
    for r in range(P.shape[0]):
        if avg is not None:
            _pack_call(P[r], _rate_of(LR, r, lr_off), first, t)
        else:
            _pack_call(P[r], _rate_of(LR, r, lr_off), None, t)


@njit(**_OPTS)
def _flat_update(X, G, V, MG, MOM, ACC, AVG, BAK, ABAK, LB, UB, P, same, sw, update,
                 overwrite, codes):
    """The RMSprop call of every run, the ``(k, n)`` rows taken as flat arrays (``x``
    already backed up): update (or accumulation) and projection, each one pass over
    ``k * n`` elements; a run whose update overflowed is rolled back alone. Returns
    how many were.

    ``same``: every run has the same per-call scalars (row ``P[0]`` serves all);
    else the update pass loads each run's own before its ``n`` elements.
    """
    x, g, v, bak = X.ravel(), G.ravel(), V.ravel(), BAK.ravel()  # bak: x, backed up
    # Optional rows written out (a helper returning None hides it from the pruning).
    if MG is None:
        mg = None
    else:
        mg = MG.ravel()
    if MOM is None:
        mom = None
    else:
        mom = MOM.ravel()
    if ACC is None:
        acc = None
    else:
        acc = ACC.ravel()
    if AVG is None:
        avg = None
        abak = None
    else:
        avg = AVG.ravel()
        abak = ABAK.ravel()
    if LB is None:
        lb = None
        ub = None
    else:
        lb = LB.ravel()
        ub = UB.ravel()
    _copy(abak, avg)
    n = X.shape[1]
    if same:
        s = _load(P[0])
        if acc is not None and not update:
            segment_accumulate(x, 0, g, acc, avg, s, sw, overwrite)
        else:
            segment_update(x, 0, g, v, mg, mom, acc, avg, s, sw, None, None, True, overwrite)
    else:
        _update_runs(x, g, v, mg, mom, acc, avg, P, sw, update, overwrite, n)
    finite = True
    for i in range(x.size):
        finite = finite & _finish_at(x, avg, lb, ub, i)
    for r in range(codes.size):
        codes[r] = OK
    rolled = 0
    if not finite:  # find the runs whose update overflowed; roll each back alone
        for r in range(codes.size):
            ok = True
            for i in range(r * n, (r + 1) * n):
                ok = ok & (abs(x[i]) < np.inf) & _finite_at(avg, i)
            if not ok:
                for i in range(r * n, (r + 1) * n):
                    x[i] = bak[i]
                    _copy_at(avg, abak, i)
                codes[r] = OVERFLOW
                rolled += 1
    return rolled


@njit(**_OPTS)  # once per step: its few views' reference counts do not matter
def _flat_step(S, G, P, cfg, counters, f, it, LR, lr_off, codes, same):
    """:func:`many_step` in one pass per stage over all ``k`` runs (all active, sharing
    their counters; ``same``: and their per-call scalars). Returns -1, having changed
    nothing but the backup of ``x`` (which each run's own step takes again), when a
    run would stop before its update (then each run steps on its own); else how
    many rolled back.

    The same element rule on the same scalars as :func:`step_arrays` per run:
    the same numbers.
    """
    x, v, mg, mom, acc, avg, bak, abak, lb, ub = rows(S, cfg)
    finite = True
    for j in range(f.size):
        finite = finite & (abs(f[j]) < np.inf)
    finite = finite & _grad_finite_backup(G.ravel(), x.ravel(), bak.ravel())
    if not finite:
        return -1
    sw = cfg[C_SWITCHES]
    update, first, overwrite = _counters(it, counters[0, 0], counters[0, 1])
    t = 0
    if sw[_rule.BIAS_CORRECTION] is not None and update:
        t = _update_count(it, counters[0, 0])
    _pack_rows(P, LR, lr_off, first, t, avg)
    return _flat_update(x, G, v, mg, mom, acc, avg, bak, abak, lb, ub, P, same, sw, update,
                        overwrite, codes)


def _finite_at(a, i):  # pragma: no cover
    raise NotImplementedError


@overload(_finite_at, inline="always")
def _finite_at_ov(a, i):
    """``a[i]`` is finite (True when ``a`` is None)."""
    if _is_none(a):
        return lambda a, i: True
    return lambda a, i: abs(a[i]) < np.inf


@njit(_nrt=False, **_OPTS)  # allocates nothing; its per-run views then cost no atomics
def _run_steps(X, V, MG, MOM, ACC, AVG, BAK, ABAK, LB, UB, G, T, P, cfg, counters, f, it,
               LR, lr_off, runs, codes, xc):
    """:func:`step_arrays` for each run ``runs[j]`` on row ``runs[j]`` of each ``(k, n)``
    state row (:func:`rows`; None when off); returns how many stopped.

    Optional rows are selected written out (pruned on the arguments): an
    overload returning a view cannot be compiled without reference counting.
    """
    stops = 0
    for j in range(runs.size):
        r = runs[j]
        cfg_r = (counters[r, 0], counters[r, 1]) + cfg[2:]
        if MG is None:
            mg = None
        else:
            mg = MG[r]
        if MOM is None:
            mom = None
        else:
            mom = MOM[r]
        if ACC is None:
            acc = None
        else:
            acc = ACC[r]
        if AVG is None:
            avg = None
            abak = None
        else:
            avg = AVG[r]
            abak = ABAK[r]
        if LB is None:
            lb = None
            ub = None
        else:
            lb = LB[r]
            ub = UB[r]
        code = step_arrays(X[r], G[j], V[r], mg, mom, acc, avg, BAK[r], abak, lb, ub, xc,
                           T[r], P[r], cfg_r, cfg[C_CLIP], f[j], it, _rate_of(LR, r, lr_off))
        codes[j] = code
        if code != OK:
            stops += 1
    return stops


@njit(**_OPTS)
def many_step(S, G, T, P, cfg, counters, f, it, LR, lr_off, runs, codes, same_counters,
              same_scalars):
    """One vectorized step of the runs ``runs`` of a ``(rows, k, n)`` state, with losses
    ``f`` and gradients ``G`` (row ``j`` for run ``runs[j]``); ``codes[j]`` receives run
    ``runs[j]``'s stop code. Returns how many stopped.

    When every run is active and they share their counters
    (``same_counters``: accumulation and EMA overwrite periods) and no
    tolerance or norm clip is set, one pass per stage updates all runs
    (:func:`_flat_step`; ``same_scalars``: and one row of per-call scalars
    serves them all); otherwise, or when a run stops before its update,
    :func:`step_arrays` steps each run on its own views (:func:`_run_steps`).
    """
    if (same_counters and runs.size == S.shape[1] and cfg[C_FTOL] == 0 and cfg[C_GTOL] == 0
            and cfg[C_CLIP] is None):
        stops = _flat_step(S, G, P, cfg, counters, f, it, LR, lr_off, codes, same_scalars)
        if stops >= 0:
            return stops
    x, v, mg, mom, acc, avg, bak, abak, lb, ub = rows(S, cfg)
    xc = np.empty(S.shape[2], S.dtype)  # step_arrays' copy of x (unused here)
    return _run_steps(x, v, mg, mom, acc, avg, bak, abak, lb, ub, G, T, P, cfg, counters, f, it,
                      LR, lr_off, runs, codes, xc)


@njit(nogil=True, **_OPTS)
def many_final(fun, X, args, marker, runs, F, G, ok, lo, hi):
    """``fun(X[r].copy(), *args_r)`` on all data for each run in ``runs[lo:hi]``: its
    loss into ``F[r]`` and gradient into ``G[r]``; ``ok[r]`` is 0 when the loss or
    gradient has another number of elements."""
    n = X.shape[1]
    for q in range(lo, hi):
        r = runs[q]
        out = _call(fun, X[r].copy(), _pick(args, marker, r), 0, 0, None)
        good, f = _as_loss(out[0])
        F[r] = f
        ok[r] = 1 if good and _grad_size(out[1]) == n else 0
        if ok[r] == 1:
            _copy(G[r], _as_grad(out[1], G[r]))
