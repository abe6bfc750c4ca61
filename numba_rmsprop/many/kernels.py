"""The compiled kernels of ``minimize_many``: every run, one step or one segment at a time.

``minimize_many`` holds ``k`` independent runs of one layout in state
arrays with a leading run axis (:func:`numba_rmsprop.frontend.state.make_state`
with a ``(k, n)`` ``x0``). Each run is exactly one ``minimize`` run: the
compiled loop calls :func:`~numba_rmsprop.frontend.segment.segment_loop` per
run (:func:`many_segment`); the vectorized loop (:func:`many_step`) steps all
runs in one pass, or calls :func:`~numba_rmsprop.frontend.step.step_arrays`
per run with the run's own views, scalars and counters.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from ..engine import rule
from ..engine.cpu.kernels import (
    accumulate_element,
    load,
    pack_call,
    segment_accumulate,
    segment_update,
    step_counters,
    update_count,
    update_element,
)
from ..engine.jit import njit
from ..frontend.segment import (
    as_gradient,
    as_loss,
    call_objective,
    gradient_size,
    impl_from_source,
    segment_loop,
)
from ..frontend.state import C_CLIP, C_FTOL, C_GTOL, C_SWITCHES, OK, OVERFLOW
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

# ``minimize_many`` (numba_rmsprop.many): k independent runs of one layout,
# state arrays with a leading run axis (make_state with a (k, n) x0). Each
# run is exactly one ``minimize`` run: the compiled loop calls segment_loop
# per run on the run's rows; the vectorized loop (many_step) steps all runs in one pass, or
# calls step_arrays per run with the run's own views, scalars and counters.


def _pick(args, marker, r):  # pragma: no cover
    raise NotImplementedError


@overload(_pick)
def _pick_ov(args, marker, r):
    """``args`` with ``args[j][r]`` where ``marker[j]`` is not None (the run's own rows)."""
    items = args.types if isinstance(args, types.BaseTuple) else ()
    marks = marker.types if isinstance(marker, types.BaseTuple) else ()
    parts = "".join(
        (f"args[{j}], " if is_none(m) else f"args[{j}][r], ")
        for j, m in zip(range(len(items)), marks, strict=False)
    )
    return impl_from_source(f"def impl(args, marker, r):\n    return ({parts})\n")


@njit(**OPTS)
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


@njit(nogil=True, **OPTS)
def many_segment(
    fun,
    S,
    T,
    P,
    cfg,
    counters,
    args,
    marker,
    order,
    start,
    batch_size,
    n_samples,
    LR,
    lr_off,
    it0,
    left,
    runs,
    ids,
    codes,
    made,
    flast,
    H,
    G,
    lo,
    hi,
):
    """:func:`~numba_rmsprop.frontend.segment.segment_loop` for each run in ``runs[lo:hi]``,
    on the rows of its state (:func:`rows`), as ``minimize`` calls it.

    Releases the GIL: :func:`numba_rmsprop.engine.threads.run_chunks` runs chunks
    of the runs on several threads (a ``prange`` cannot carry the tuples of
    arguments and switches into its outlined body).

    Run ``r`` (``ids[r]`` in the whole batch, which indexes the per-run
    arguments) makes up to ``left[r]`` steps from iteration ``it0`` with its
    own state ``S[r], T[r], P[r]``, counters ``counters[r]`` (``N``,
    ``ema_freq``), arguments (``_pick(args, marker, ids[r])``), epoch order
    (row ``r`` of ``order``, or its only row) and learning rates (row ``r`` of
    ``LR``, or its only row); ``codes[r], made[r], flast[r]`` receive
    segment_loop's ``(code, steps, loss)``, ``H[r]`` its losses (``H`` may be
    None) and ``G[r]`` the gradient of a stop.
    """
    xc = np.empty(S.shape[2], S.dtype)  # the objective's copy of x, for each run in turn
    for q in range(lo, hi):
        r = runs[q]
        cfg_r = (counters[r, 0], counters[r, 1]) + cfg[2:]
        x, v, mg, mom, acc, avg, bak, abak, lb, ub = rows(S[r], cfg_r)
        code, done, f = segment_loop(
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
            T[r],
            P[r],
            cfg_r,
            cfg_r[C_CLIP],
            _pick(args, marker, ids[r]),
            _row_of(order, r),
            start,
            batch_size,
            n_samples,
            _row_of(LR, r),
            lr_off,
            it0,
            left[r],
            _row_of(H, r),
            G[r],
            xc,
        )
        codes[r] = code
        made[r] = done
        flast[r] = f


# The vectorized loop keeps its state with the run axis inside: ``S`` of
# shape ``(rows, k, n)`` (make_state's ``(k, rows, n)`` transposed), so that
# each state row of all runs is one contiguous block of ``k * n`` elements
# and a step of every run can be one pass over it.


@njit(inline="always", **OPTS)
def _rate_of(LR, r, lr_off):
    """Run ``r``'s learning rate at ``lr_off``: row ``r`` of ``LR``, or its only row."""
    return LR[0, lr_off] if LR.shape[0] == 1 else LR[r, lr_off]


@njit(_nrt=False, **OPTS)  # per-run views of P, without reference counts
def _update_runs(x, g, v, mg, mom, acc, avg, P, sw, update, overwrite, n):
    """The update pass of :func:`_flat_update` with each run's own scalars ``P[r]``,
    loaded before its ``n`` elements."""
    # Unsigned indices: a signed run-time offset keeps Numba's negative-index
    # wraparound in every access, which stops LLVM from vectorising.
    un = np.uint64(n)
    if acc is not None and not update:
        for r in range(P.shape[0]):
            s = load(P[r])
            base = np.uint64(r) * un
            for i in range(un):
                accumulate_element(base + i, x, g, acc, avg, s, sw, overwrite)
    else:
        for r in range(P.shape[0]):
            s = load(P[r])
            base = np.uint64(r) * un
            for i in range(un):
                update_element(
                    base + i, x, g, v, mg, mom, acc, avg, s, sw, None, None, True, overwrite
                )


@njit(_nrt=False, **OPTS)  # per-run views of P, without reference counts
def _pack_rows(P, LR, lr_off, first, t, avg):
    """Each run's per-call slots, as :func:`step_arrays` packs them (``avg``: the EMA or
    None); learning rates from row 0 of ``LR`` or each run's row."""
    for r in range(P.shape[0]):
        if avg is not None:
            pack_call(P[r], _rate_of(LR, r, lr_off), first, t)
        else:
            pack_call(P[r], _rate_of(LR, r, lr_off), None, t)


@njit(**OPTS)
def _flat_update(
    X, G, V, MG, MOM, ACC, AVG, BAK, ABAK, LB, UB, P, same, sw, update, overwrite, codes
):
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
    copy_elements(abak, avg)
    n = X.shape[1]
    if same:
        s = load(P[0])
        if acc is not None and not update:
            segment_accumulate(x, 0, g, acc, avg, s, sw, overwrite)
        else:
            segment_update(x, 0, g, v, mg, mom, acc, avg, s, sw, None, None, True, overwrite)
    else:
        _update_runs(x, g, v, mg, mom, acc, avg, P, sw, update, overwrite, n)
    finite = True
    for i in range(x.size):
        finite = finite & finish_element(x, avg, lb, ub, i)
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
                    copy_element(avg, abak, i)
                codes[r] = OVERFLOW
                rolled += 1
    return rolled


@njit(**OPTS)  # once per step: its few views' reference counts do not matter
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
    finite = finite & finite_and_backup(G.ravel(), x.ravel(), bak.ravel())
    if not finite:
        return -1
    sw = cfg[C_SWITCHES]
    update, first, overwrite = step_counters(it, counters[0, 0], counters[0, 1])
    t = 0
    if sw[rule.BIAS_CORRECTION] is not None and update:
        t = update_count(it, counters[0, 0])
    _pack_rows(P, LR, lr_off, first, t, avg)
    return _flat_update(
        x, G, v, mg, mom, acc, avg, bak, abak, lb, ub, P, same, sw, update, overwrite, codes
    )


def _finite_at(a, i):  # pragma: no cover
    raise NotImplementedError


@overload(_finite_at, inline="always")
def _finite_at_ov(a, i):
    """``a[i]`` is finite (True when ``a`` is None)."""
    if is_none(a):
        return lambda a, i: True
    return lambda a, i: abs(a[i]) < np.inf


@njit(_nrt=False, **OPTS)  # allocates nothing; its per-run views then cost no atomics
def _run_steps(
    X,
    V,
    MG,
    MOM,
    ACC,
    AVG,
    BAK,
    ABAK,
    LB,
    UB,
    G,
    T,
    P,
    cfg,
    counters,
    f,
    it,
    LR,
    lr_off,
    runs,
    codes,
    xc,
):
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
        code = step_arrays(
            X[r],
            G[j],
            V[r],
            mg,
            mom,
            acc,
            avg,
            BAK[r],
            abak,
            lb,
            ub,
            xc,
            T[r],
            P[r],
            cfg_r,
            cfg[C_CLIP],
            f[j],
            it,
            _rate_of(LR, r, lr_off),
        )
        codes[j] = code
        if code != OK:
            stops += 1
    return stops


def many_step(
    S, G, T, P, cfg, counters, f, it, LR, lr_off, runs, codes, same_counters, same_scalars
):
    """One vectorized step of the runs ``runs`` of a ``(rows, k, n)`` state, with losses
    ``f`` and gradients ``G`` (row ``j`` for run ``runs[j]``); ``codes[j]`` receives run
    ``runs[j]``'s stop code. Returns how many stopped.

    When every run is active and they share their counters
    (``same_counters``: accumulation and EMA overwrite periods) and no
    tolerance or norm clip is set, one pass per stage updates all runs
    (:func:`_flat_step`; ``same_scalars``: and one row of per-call scalars
    serves them all); otherwise, or when a run stops before its update,
    :func:`step_arrays` steps each run on its own views (:func:`_each_run_step`).

    The choice is made here, in Python, so that a call compiles only the pass
    it takes (each is ~5 s of compilation per configuration; the other pass
    compiles the first time it is needed).
    """
    if one_pass_possible(cfg, same_counters) and runs.size == S.shape[1]:
        stops = _flat_step(S, G, P, cfg, counters, f, it, LR, lr_off, codes, same_scalars)
        if stops >= 0:
            return stops
    return _each_run_step(S, G, T, P, cfg, counters, f, it, LR, lr_off, runs, codes)


def one_pass_possible(cfg, same_counters: bool) -> bool:
    """Whether :func:`_flat_step` may step the runs (when all are active): they share
    their counters, and no tolerance or norm clip is set."""
    return bool(same_counters and cfg[C_FTOL] == 0 and cfg[C_GTOL] == 0 and cfg[C_CLIP] is None)


@njit(**OPTS)
def _each_run_step(S, G, T, P, cfg, counters, f, it, LR, lr_off, runs, codes):
    """:func:`many_step` run by run (:func:`_run_steps` on each run's views)."""
    x, v, mg, mom, acc, avg, bak, abak, lb, ub = rows(S, cfg)
    xc = np.empty(S.shape[2], S.dtype)  # step_arrays' copy of x (unused here)
    return _run_steps(
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
        G,
        T,
        P,
        cfg,
        counters,
        f,
        it,
        LR,
        lr_off,
        runs,
        codes,
        xc,
    )


@njit(nogil=True, **OPTS)
def many_final(fun, X, args, marker, runs, F, G, ok, lo, hi):
    """``fun(X[r].copy(), *args_r)`` on all data for each run in ``runs[lo:hi]``: its
    loss into ``F[r]`` and gradient into ``G[r]``; ``ok[r]`` is 0 when the loss or
    gradient has another number of elements."""
    n = X.shape[1]
    for q in range(lo, hi):
        r = runs[q]
        out = call_objective(fun, X[r].copy(), _pick(args, marker, r), 0, 0, None)
        good, f = as_loss(out[0])
        F[r] = f
        ok[r] = 1 if good and gradient_size(out[1]) == n else 0
        if ok[r] == 1:
            copy_elements(G[r], as_gradient(out[1], G[r]))
