"""The compiled ``minimize`` loop: :func:`segment_loop`.

It calls a numba-compiled objective, slices the minibatch out of the
(host-permuted) data and runs the compiled step (:func:`.step.step_arrays`)
for a run of steps that stays inside one epoch and one learning-rate block.
The helpers that call the objective and read what it returns serve the
many-runs kernels too.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import intrinsic, overload

from ..engine.jit import njit
from .state import BAD_GRAD, BAD_LOSS, OK
from .step import OPTS, copy_elements, is_none, step_arrays


# ---------------------------------------------------------------- compiled loop
def _cut_parts(args, batched):
    """Source of the batch's arguments: the data arrays of ``args`` cut to ``[a:b]``.

    The data arrays are the elements of ``args`` that are arrays with
    ``ndim >= 1``. ``batched`` is None (full batch: nothing is cut), an
    integer (rows ``a:b`` in order, as views) or the epoch's permutation
    (rows ``batched[a:b]``, gathered into a copy) -- what the Python loop does.
    """
    items = args.types if isinstance(args, types.BaseTuple) else ()
    if is_none(batched):
        cut = "args[{i}]"
    elif isinstance(batched, types.Array):
        cut = "args[{i}][batched[a:b]]"
    else:
        cut = "args[{i}][a:b]"
    return [
        cut.format(i=i) if isinstance(t, types.Array) and t.ndim >= 1 else f"args[{i}]"
        for i, t in enumerate(items)
    ]


def impl_from_source(src: str):
    ns: dict = {"np": np}
    exec(src, ns)
    return ns["impl"]


def _call_source(args, batched):
    """Source of ``impl(fun, x, args, a, b, batched)``: ``fun(x, *batch)`` (see
    :func:`_cut_parts`)."""
    parts = "".join(", " + p for p in _cut_parts(args, batched))
    return impl_from_source(f"def impl(fun, x, args, a, b, batched):\n    return fun(x{parts})\n")


def call_objective(fun, x, args, a, b, batched):  # pragma: no cover
    raise NotImplementedError


@overload(call_objective, inline="always")
def _call_objective_ov(fun, x, args, a, b, batched):
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


@njit(_nrt=True, **OPTS)  # explicit: a callee inherits an unset _nrt from its caller
def _gathered_call(fun, x, args, a, b, batched):
    """``fun(x, *batch)`` with the rows ``batched[a:b]`` of the data gathered (allocates:
    called from :func:`segment_loop` as a reference-counted function)."""
    return _call_gathering(fun, x, args, a, b, batched)


def _batch(args, a, b, batched):  # pragma: no cover
    raise NotImplementedError


@overload(_batch)
def _batch_ov(args, a, b, batched):
    parts = "".join(p + ", " for p in _cut_parts(args, batched))
    return impl_from_source(f"def impl(args, a, b, batched):\n    return ({parts})\n")


@njit(**OPTS)
def batch_arguments(args, a, b, batched):
    """The arguments after ``x`` that :func:`segment_loop` passes the objective.

    Compiling it (and reading its return type) tells the caller the exact
    argument types the objective will be called with in compiled code.
    """
    return _batch(args, a, b, batched)


def gradient_size(g):  # pragma: no cover
    raise NotImplementedError


@overload(gradient_size, inline="always")
def _gradient_size_ov(g):
    """How many numbers the objective's gradient ``g`` holds."""
    if isinstance(g, types.Array):
        return lambda g: g.size
    return lambda g: len(g)


def as_gradient(g, buf):  # pragma: no cover
    raise NotImplementedError


@overload(as_gradient, inline="always")
def _as_gradient_ov(g, buf):
    """The gradient as ``np.asarray(g, dtype=buf.dtype)`` takes it in the Python loop:
    ``g`` itself when it is a contiguous vector of that dtype, else its
    ``buf.size`` elements (checked before) converted into ``buf``.

    Inlined and allocating nothing: loops compiled without reference
    counting use it too (see :func:`segment_loop`).
    """
    if isinstance(g, types.Array) and g.dtype == buf.dtype and g.layout == "C" and g.ndim == 1:
        return lambda g, buf: g

    def impl(g, buf):
        for i in range(buf.size):
            buf[i] = g[i]
        return buf

    return impl


def as_loss(f):  # pragma: no cover
    raise NotImplementedError


@overload(as_loss, inline="always")
def _as_loss_ov(f):
    """``(ok, loss)``: the loss as float64, as the Python loop takes it (one-element
    arrays too); ``ok`` is False for an array with another number of elements."""
    if isinstance(f, types.Array):
        first = "(" + "0, " * f.ndim + ")"
        return impl_from_source(
            "def impl(f):\n    if f.size != 1:\n        return False, np.nan\n"
            f"    return True, np.float64(f[{first}])\n"
        )
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


@njit(_nrt=False, nogil=True, **OPTS)
def segment_loop(
    fun,
    x,
    v,
    mg,
    mom,
    acc,
    avg,
    bak,
    abak,
    lb,
    ub,
    T,
    P,
    cfg,
    clip,
    args,
    batched,
    start,
    batch_size,
    n_samples,
    lrs,
    lr_off,
    it0,
    nsteps,
    hist,
    gbuf,
    xc,
):
    """Run up to ``nsteps`` optimizer calls with a compiled objective on the rows of
    the run's state (:func:`.step.rows`), compiled without reference counting
    (``_nrt=False``).

    ``fun`` is a first-class function (``numba.types.FunctionType``), so this
    loop compiles once per signature of the objective -- not once per
    objective -- and is cached on disk; the objective runs through its own
    compiled code, exceptions included. ``fun(x, *batch)`` returns
    ``(loss, gradient)``; ``x`` is ``xc``, a copy of the iterate (``n``
    elements), as the Python loop passes one: refreshed before every call, so
    that an objective that modifies it changes nothing (one that keeps it sees
    it change). When ``batched`` is not None, step ``j`` uses positions
    ``[start + j*batch_size, ...)`` (clipped to ``n_samples``) of the epoch's
    order of the rows of every data array (see :func:`call_objective`).
    ``lrs[lr_off + j]`` is step ``j``'s learning rate. ``hist[j]`` receives
    step ``j``'s loss (``hist`` may be None).

    The loop releases the GIL (``nogil=True``): other Python threads run
    meanwhile, e.g. the loader of a streamed run (:mod:`numba_rmsprop.frontend.stream`),
    which would otherwise only get the GIL between segments. The objective's
    exceptions still reach the caller (numba takes the GIL back to raise them).

    Returns ``(code, steps, loss)``: ``steps`` calls were made, and ``code`` is
    the stop code of the evaluation after them (``OK`` when all ran); on a
    stop, ``gbuf`` holds that evaluation's gradient.

    With reference counting, the loop paid an atomic increment and decrement
    per array passed to the objective, each step. The only reference this
    loop owns is the objective's result, dropped explicitly (:func:`_drop`)
    on every way out of a step; arrays the host passes in carry no reference
    count here. LLVM inlines the step, :func:`step_arrays` (see
    :class:`_LLVMInlined`).
    """
    n = x.size
    f = np.nan
    copy_elements(xc, x)
    a = b = 0
    for j in range(nsteps):
        if batched is not None:  # the rows of this step's minibatch
            a = start + j * batch_size
            b = min(a + batch_size, n_samples)
        out = call_objective(fun, xc, args, a, b, batched)
        ok, f = as_loss(out[0])
        if ok:
            if hist is not None:
                hist[j] = f
        if not ok:
            code = BAD_LOSS
        elif gradient_size(out[1]) != n:
            code = BAD_GRAD
        else:
            g = as_gradient(out[1], gbuf)
            code = step_arrays(
                x,
                g,
                v,
                mg,
                mom,
                acc,
                avg,
                bak,
                abak,
                lb,
                ub,
                xc,
                T,
                P,
                cfg,
                clip,
                f,
                it0 + j,
                lrs[lr_off + j],
            )
            if code != OK:
                copy_elements(gbuf, g)
        _drop(out)
        if code != OK:
            return code, j, f
    return OK, nsteps, f
