"""The compiled vectorized loop of ``minimize_many``: an ``@njit`` objective over columns.

With ``vectorized=True``, ``jac=True`` and an ``@njit`` ``fun``, no Python runs
per step. The active runs go in blocks of columns (:func:`block_size` runs,
sized so that a block's data and state stay in cache), the blocks spread
over the CPU threads (:func:`numba_rmsprop.engine.threads.run_chunks`), and
each block goes through every step of a segment on its own
(:func:`columns_blocks`):

1. the block's state is copied out of the group's ``(rows, k, n)`` state into
   ``(rows, n * m)`` rows with the runs innermost (element ``i`` of run ``q``
   at ``i * m + q``), and its runs' arguments are gathered along their runs
   axis (every per-run argument itself, no copy, when one block holds every
   run of the batch and all are active);
2. each step: ``fun(X, *args)`` with ``X`` a copy of the block's iterates,
   ``(n, m)``, C-contiguous; then, while every run steps on the same
   per-call scalars and counters with no tolerance or norm clip, one fused
   pass over the block's ``n * m`` elements (the finiteness checks and the
   backup, the element rule, the projection); otherwise, or when a run is
   about to stop, :func:`numba_rmsprop.frontend.step.step_arrays` on each
   run's column, the step ``nr.minimize`` makes;
3. runs that stop (or reach their step limit) have their columns written
   back and the block is compacted: its state, and its runs' arguments
   gathered again, in compiled code;
4. at the segment's end the block's columns go back to the group's state.

Every run therefore makes, element by element, the operations of its own
``nr.minimize`` with the same scalars: bit for bit its result where the
objective computes each column with the arithmetic of the one-run objective.
"""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from ..engine import rule
from ..engine.cpu.kernels import (
    load,
    pack_call,
    segment_accumulate,
    segment_update,
    step_counters,
    update_count,
)
from ..engine.jit import njit
from ..frontend.segment import impl_from_source
from ..frontend.state import C_CLIP, C_SWITCHES, OK, OVERFLOW
from ..frontend.step import (
    OPTS,
    copy_element,
    copy_elements,
    finish_element,
    finite_and_backup,
    is_none,
    rows,
    step_arrays,
)
from .kernels import _finite_at, _rate_of, one_pass_possible

#: Bytes of data and state a block of runs aims to keep in cache.
BLOCK_BYTES = 1 << 18
#: Blocks per thread, at least (when each can have 64 runs): what the threads share out.
BLOCKS_PER_THREAD = 2


def block_size(per_run_bytes: int, runs: int, threads: int) -> int:
    """Runs per block: about :data:`BLOCK_BYTES` of each run's data and state, a multiple
    of 8 between 64 and 4096 runs; with threads, as many blocks of about equal size for
    each thread, at least :data:`BLOCKS_PER_THREAD`, when the runs allow. Whole blocks are
    the unit of work (7 blocks on two threads kept one waiting for a seventh of it), and
    blocks are not made smaller than that asks: each step of a block has a fixed cost
    (the objective's call and its arrays), 9 % of the time at 256 runs of 10 parameters
    against 504."""
    b = BLOCK_BYTES // max(1, per_run_bytes)
    b = max(64, min(4096, b))
    if threads > 1:
        per_thread = max(BLOCKS_PER_THREAD, math.ceil(runs / (threads * b)))
        b = max(64, math.ceil(runs / (threads * per_thread)))
    return int(-(-b // 8) * 8)


# ---------------------------------------------------------------- the block's arguments
def marks_for(args: tuple, run_axis: dict) -> tuple:
    """Per argument: None (shared), or a tuple of ``axis + 1`` Nones for a per-run argument
    whose runs are along ``axis`` (its length is the axis, known when compiling)."""
    return tuple((None,) * (run_axis[j] + 1) if j in run_axis else None for j in range(len(args)))


def _take_source(ndim: int, axis: int) -> str:
    """Source of ``impl(a, sel)``: a new C-contiguous array of the runs ``sel`` of ``a``
    along ``axis`` (scalar loops: slices of slices cost seconds to compile)."""
    shape = ", ".join("sel.size" if d == axis else f"a.shape[{d}]" for d in range(ndim))
    lines = [
        "def impl(a, sel):",
        f"    out = np.empty(({shape},), a.dtype)",
        "    for q in range(sel.size):",
        "        r = sel[q]",
    ]
    depth = 2
    for d in range(ndim):
        if d != axis:
            lines.append("    " * depth + f"for i{d} in range(a.shape[{d}]):")
            depth += 1
    left = ", ".join("q" if d == axis else f"i{d}" for d in range(ndim))
    right = ", ".join("r" if d == axis else f"i{d}" for d in range(ndim))
    lines.append("    " * depth + f"out[{left}] = a[{right}]")
    lines.append("    return out")
    return "\n".join(lines) + "\n"


def _block_args(args, marks, ids, whole):  # pragma: no cover
    raise NotImplementedError


@overload(_block_args)
def _block_args_ov(args, marks, ids, whole):
    """``args`` with each per-run argument's runs ``ids`` (gathered along its axis), or
    every argument as given when ``whole`` (the block is every run of the batch)."""
    items = args.types if isinstance(args, types.BaseTuple) else ()
    mks = marks.types if isinstance(marks, types.BaseTuple) else ()
    ns: dict = {"np": np}
    parts = []
    for j, (t, mk) in enumerate(zip(items, mks, strict=True)):
        if is_none(mk):
            parts.append(f"args[{j}]")
            continue
        axis = len(mk.types) - 1
        take = impl_from_source(_take_source(t.ndim, axis))
        ns[f"take{j}"] = njit(take)
        parts.append(f"(args[{j}] if whole else take{j}(args[{j}], ids))")
    body = "".join(p + ", " for p in parts)
    exec(f"def impl(args, marks, ids, whole):\n    return ({body})\n", ns)
    return ns["impl"]


@njit(**OPTS)
def block_arguments(args, marks, ids, whole):
    """The arguments after ``X`` of a block (see :func:`_block_args`); compiled to read
    their types."""
    return _block_args(args, marks, ids, whole)


# ---------------------------------------------------------------- the block's state
@njit(**OPTS)
def _gather(S, cur):
    """The runs ``cur`` of the group's ``(rows, k, n)`` state as ``(rows, n * m)``, runs
    innermost."""
    R, n, m = S.shape[0], S.shape[2], cur.size
    L = np.empty((R, n * m), S.dtype)
    for w in range(R):
        for q in range(m):
            r = cur[q]
            for i in range(n):
                L[w, i * m + q] = S[w, r, i]
    return L


@njit(**OPTS)
def _scatter(S, L, cur, keep):
    """Write the columns of the block's runs back where ``keep[q]`` is False."""
    R, n, m = S.shape[0], S.shape[2], cur.size
    for q in range(m):
        if keep[q]:
            continue
        r = cur[q]
        for w in range(R):
            for i in range(n):
                S[w, r, i] = L[w, i * m + q]


@njit(**OPTS)
def _compact(L, n, keep, m_new):
    """The columns ``keep`` of ``L``, as new ``(rows, n * m_new)`` rows."""
    R, m = L.shape[0], keep.size
    out = np.empty((R, n * m_new), L.dtype)
    for w in range(R):
        p = 0
        for q in range(m):
            if keep[q]:
                for i in range(n):
                    out[w, i * m_new + p] = L[w, i * m + q]
                p += 1
    return out


def _column(a, q, m):  # pragma: no cover
    raise NotImplementedError


@overload(_column, inline="always")
def _column_ov(a, q, m):
    """Run ``q``'s elements of a block row (``a[q::m]``, a view), or None."""
    if is_none(a):
        return lambda a, q, m: None
    return lambda a, q, m: a[q::m]


def _flat_gradient(G, dtype_ref):  # pragma: no cover
    raise NotImplementedError


@overload(_flat_gradient)
def _flat_gradient_ov(G, dtype_ref):
    """The ``(n, m)`` gradient as ``n * m`` elements of the state's dtype, as the
    Python loop converts it: a view of a C-contiguous gradient of that dtype, else a
    converted copy."""
    if isinstance(G, types.Array) and G.layout == "C" and G.dtype == dtype_ref.dtype:
        return lambda G, dtype_ref: G.ravel()

    def impl(G, dtype_ref):
        n, m = G.shape
        out = np.empty(n * m, dtype_ref.dtype)
        for i in range(n):
            for q in range(m):
                out[i * m + q] = G[i, q]
        return out

    return impl


# ---------------------------------------------------------------- one step of a block
@njit(**OPTS)  # the rows are its arguments: their ``is None`` branches are pruned
def _fused_step(
    x, v, mg, mom, acc, avg, bak, abak, lb, ub, g, f, P, cfg, counters, cur, it, LR, lr_off, lcodes
):
    """Every run of the block in one pass per stage (they share their counters and
    per-call scalars; no tolerance or norm clip). Returns False, having changed nothing
    but the backup of ``x``, when a loss or gradient is not finite (then each run
    steps on its own)."""
    m = cur.size
    finite = True
    for q in range(m):
        finite = finite & (abs(np.float64(f[q])) < np.inf)
    finite = finite & finite_and_backup(g, x, bak)
    if not finite:
        return False
    r0 = cur[0]
    sw = cfg[C_SWITCHES]
    update, first, overwrite = step_counters(it, counters[r0, 0], counters[r0, 1])
    t = 0
    if sw[rule.BIAS_CORRECTION] is not None and update:
        t = update_count(it, counters[r0, 0])
    for q in range(m):  # each run's slots, as its own step packs them
        if avg is not None:
            pack_call(P[cur[q]], _rate_of(LR, cur[q], lr_off), first, t)
        else:
            pack_call(P[cur[q]], _rate_of(LR, cur[q], lr_off), None, t)
    s = load(P[r0])
    copy_elements(abak, avg)
    if acc is not None and not update:
        segment_accumulate(x, 0, g, acc, avg, s, sw, overwrite)
    else:
        segment_update(x, 0, g, v, mg, mom, acc, avg, s, sw, None, None, True, overwrite)
    finite = True
    for i in range(x.size):
        finite = finite & finish_element(x, avg, lb, ub, i)
    for q in range(m):
        lcodes[q] = OK
    if not finite:  # roll back each run whose update overflowed, alone
        n = x.size // m
        for q in range(m):
            ok = True
            for i in range(n):
                e = i * m + q
                ok = ok & (abs(x[e]) < np.inf) & _finite_at(avg, e)
            if not ok:
                for i in range(n):
                    e = i * m + q
                    x[e] = bak[e]
                    copy_element(avg, abak, e)
                lcodes[q] = OVERFLOW
    return True


@njit(**OPTS)
def _each_step(
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
    g,
    f,
    T,
    P,
    cfg,
    counters,
    cur,
    it,
    LR,
    lr_off,
    lcodes,
):
    """:func:`step_arrays` for each run of the block on its own column."""
    m = cur.size
    clip = cfg[C_CLIP]
    for q in range(m):
        r = cur[q]
        cfg_r = (counters[r, 0], counters[r, 1]) + cfg[2:]
        lcodes[q] = step_arrays(
            x[q::m],
            g[q::m],
            v[q::m],
            _column(mg, q, m),
            _column(mom, q, m),
            _column(acc, q, m),
            _column(avg, q, m),
            bak[q::m],
            _column(abak, q, m),
            _column(lb, q, m),
            _column(ub, q, m),
            None,
            T[r],
            P[r],
            cfg_r,
            clip,
            np.float64(f[q]),
            it,
            _rate_of(LR, r, lr_off),
        )


# ---------------------------------------------------------------- the blocks
@njit(nogil=True, **OPTS)
def columns_blocks(
    fun,
    S,
    T,
    P,
    cfg,
    counters,
    args,
    marks,
    LR,
    lr_off,
    it0,
    left,
    active,
    ids,
    bsize,
    fused,
    whole,
    codes,
    made,
    flast,
    H,
    Gstop,
    lo,
    hi,
):
    """Blocks ``lo:hi`` of the active runs (``bsize`` each, in order), each through up to
    ``left[r]`` steps from iteration ``it0`` (see the module docstring).

    ``S, T, P, counters`` are the group's state (``(rows, k, n)``), tolerance
    state, per-call scalars and counters; ``LR[., lr_off + j]`` is step ``j``'s
    learning rate (one row, or a row per run); ``ids[r]`` is group run ``r``'s index
    in the batch (its per-run arguments); ``fused``: the runs share counters and
    scalars, and no tolerance or clip is set (one pass may step a block);
    ``whole``: one block holds every run of the batch, all active (its
    arguments go to ``fun`` as given). Run ``r`` gets ``codes[r]`` (``OK``, or
    the code of the evaluation that stopped it), ``made[r]`` (steps made),
    ``flast[r]`` (its last loss), ``H[r, j]`` (step ``j``'s loss; ``H`` may be
    None) and, on a stop, ``Gstop[r]`` (that evaluation's gradient).
    Releases the GIL: blocks run on several threads.
    """
    n = S.shape[2]
    for b in range(lo, hi):
        cur = active[b * bsize : min((b + 1) * bsize, active.size)].copy()
        L = _gather(S, cur)
        bargs = _block_args(args, marks, ids[cur], whole)
        lcodes = np.zeros(cur.size, np.int64)
        steps = 0
        for q in range(cur.size):
            steps = max(steps, left[cur[q]])
        for j in range(steps):
            m = cur.size
            X = L[0].copy().reshape((n, m))  # the objective's copy of the iterates
            out = fun(X, *bargs)
            f = out[0]
            G = out[1]
            if f.shape[0] != m or G.shape[0] != n or G.shape[1] != m:
                raise ValueError(
                    "The vectorized `fun` must return losses of shape (m,) and a "
                    "gradient of shape (n, m): one column per active run"
                )
            g = _flat_gradient(G, L)
            it = it0 + j
            x, v, mg, mom, acc, avg, bak, abak, lb, ub = rows(L, cfg)
            if not (
                fused
                and _fused_step(
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
                    g,
                    f,
                    P,
                    cfg,
                    counters,
                    cur,
                    it,
                    LR,
                    lr_off + j,  # step j's learning rate
                    lcodes,
                )
            ):
                _each_step(
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
                    g,
                    f,
                    T,
                    P,
                    cfg,
                    counters,
                    cur,
                    it,
                    LR,
                    lr_off + j,  # step j's learning rate
                    lcodes,
                )
            keep = np.ones(m, np.bool_)
            m_new = 0
            for q in range(m):
                r = cur[q]
                fq = np.float64(f[q])
                flast[r] = fq
                if H is not None:
                    H[r, j] = fq
                if lcodes[q] != OK:
                    codes[r] = lcodes[q]
                    made[r] = j
                    for i in range(n):
                        Gstop[r, i] = g[i * m + q]
                    keep[q] = False
                else:
                    codes[r] = OK
                    made[r] = j + 1
                    keep[q] = j + 1 < left[r]
                if keep[q]:
                    m_new += 1
            if m_new < m:  # compaction: the leavers' columns back, the others gathered
                _scatter(S, L, cur, keep)
                L = _compact(L, n, keep, m_new)
                cur = cur[keep]
                if m_new == 0:
                    break
                whole = False
                bargs = _block_args(args, marks, ids[cur], whole)
                lcodes = np.zeros(m_new, np.int64)
        if cur.size:
            _scatter(S, L, cur, np.zeros(cur.size, np.bool_))


def fused_possible(cfg, same_counters: bool, same_scalars: bool) -> bool:
    """Whether one pass may step a block (see :func:`_fused_step`): the Python loop's
    one-pass rule (:func:`.kernels.one_pass_possible`), and one row of per-call scalars
    serves every run (the pass loads them once)."""
    return one_pass_possible(cfg, same_counters) and bool(same_scalars)
