"""``minimize_many`` on a GPU: the state of every run on the device, one fused launch a step.

With a CUDA ``X0`` (a numba device array or any ``__cuda_array_interface__``
object) and ``vectorized=True``, the runs' state (:func:`numba_rmsprop.frontend.step.make_state`
laid out on the host, then copied once) stays on the device. Each step:

1. the active runs' iterates are gathered into an ``(n, m)`` device array,
   one column per run (a copy: the objective never sees the state), and
   ``fun(X, *args)`` -- the user's device code (CuPy, numba.cuda, PyTorch) --
   returns device arrays ``f`` ``(m,)`` and ``G`` ``(n, m)``;
2. **one launch** updates every active run: a block per run, its threads
   over the parameters. The block does what :func:`numba_rmsprop.frontend.step.step_arrays`
   does for one run on the CPU -- the finiteness checks, the ``ftol`` and
   ``gtol`` tests, the counters, the clip norms (block reductions in
   float64), the element rule of :mod:`numba_rmsprop.engine.rule` (compiled for
   the device, the same rule every kernel compiles), the projection onto the
   bounds and the rollback of an overflowed update -- and writes the run's
   stop code;
3. the ``m`` stop codes come back to the host, which drops the runs that
   stopped.

Per-run options, limits, layouts and results are those of the CPU path
(:class:`numba_rmsprop.many.batch.Batch`). On a real GPU the compiler contracts
``a * b + c`` into fused multiply-adds and the norms are summed as a tree,
so results agree with the CPU to rounding, not bit for bit; under the CUDA
simulator (no contraction) they agree bit for bit except where a norm is
summed (clipping). Minibatches (``batch_size``) are not supported here.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from ..engine import layout, rule
from ..engine import plan as _plan
from ..engine.cuda import kernels as cuda_kernels
from ..engine.cuda.arrays import as_device
from ..engine.cuda.driver import SIM, cuda, require_cuda
from ..frontend.state import (
    C_ACC,
    C_AVG,
    C_BAK,
    C_CLIP,
    C_FTOL,
    C_GTOL,
    C_LB,
    C_MG,
    C_MOM,
    C_SWITCHES,
    C_V,
    FTOL,
    GTOL,
    NONFINITE_GRAD,
    NONFINITE_LOSS,
    OK,
    OVERFLOW,
    T_CLIP,
    T_GBETA,
    T_GNORM,
    T_GPOW,
    T_GTOL,
    T_HEAD,
)
from ..frontend.step import clamp_to_bounds, loss_plateau, projected_gradient
from .batch import Batch

# Stop codes as the CPU loops use them.
_OK, _NONFINITE_LOSS, _NONFINITE_GRAD, _GTOL, _FTOL, _OVERFLOW = (
    OK,
    NONFINITE_LOSS,
    NONFINITE_GRAD,
    GTOL,
    FTOL,
    OVERFLOW,
)

_KERNELS: dict = {}
_LOCK = threading.Lock()
_MAX_THREADS = 4 if SIM else 256  # threads per block (one block per run)

if cuda is not None:
    _dev = cuda.jit(device=True, inline="always")
    _counters = _dev(_plan.counters)
    _update_count = _dev(_plan.update_count)
    _pack_call = _dev(layout.pack_call)
    _loss_plateau = _dev(loss_plateau.py_func)

    def _make_load():
        src = (
            "def load(P):\n    return ("
            + ", ".join(f"P[{i}]" for i in range(layout.N_SLOTS))
            + ",)\n"
        )
        ns: dict = {}
        exec(src, ns)
        return _dev(ns["load"])

    _load = _make_load()

    # Per-element pieces of the step. Optional arrays arrive as None and are
    # pruned as arguments (a condition on a closure constant is not pruned
    # before typing in device code).
    @_dev
    def _backup(i, x, g, bak, avg, abak):
        """Back ``x[i]`` (and its EMA) up; whether ``g[i]`` is finite."""
        bak[i] = x[i]
        if avg is not None:
            abak[i] = avg[i]
        return abs(g[i]) < math.inf

    _projected = _dev(projected_gradient.py_func)  # the CPU step's, compiled for the device
    _clamp = _dev(clamp_to_bounds.py_func)

    @_dev
    def _finish(i, x, avg, lb, ub):
        """Project ``x[i]`` (and its EMA); whether both were finite."""
        xi = x[i]
        ok = abs(xi) < math.inf
        x[i] = _clamp(xi, lb, ub, i)
        if avg is not None:
            ai = avg[i]
            ok = ok and abs(ai) < math.inf
            avg[i] = _clamp(ai, lb, ub, i)
        return ok

    _accumulate_element = cuda_kernels._R.accumulate_element

    @_dev
    def _accumulate(i, x, g, acc, avg, s, sw, overwrite):
        """An accumulation-only call's element (never reached without accumulation)."""
        if acc is not None:
            _accumulate_element(i, x, g, acc, avg, s, sw, overwrite)

    @_dev
    def _rollback(i, x, bak, avg, abak):
        x[i] = bak[i]
        if avg is not None:
            avg[i] = abak[i]

    @cuda.jit
    def _gather_columns(S, runs, out):
        """``out[:, j] = S[runs[j], 0]``: the active runs' iterates, one column each."""
        j = cuda.blockIdx.x
        r = runs[j]
        for i in range(cuda.threadIdx.x, out.shape[0], cuda.blockDim.x):
            out[i, j] = S[r, 0, i]

    @cuda.jit
    def _take_middle(src, runs, out):
        """``out[p, j] = src[p, runs[j]]`` for 3-D ``(before, k, after)`` arrays."""
        j = cuda.blockIdx.x
        p = cuda.blockIdx.y
        r = runs[j]
        for i in range(cuda.threadIdx.x, out.shape[2], cuda.blockDim.x):
            out[p, j, i] = src[p, r, i]


def _kernel(cfg, bounds: bool, per_run_lr: bool, dtype):
    key = (cfg[2:], bounds, per_run_lr, np.dtype(dtype))
    k = _KERNELS.get(key)
    if k is None:
        with _LOCK:
            k = _KERNELS.get(key)
            if k is None:
                k = _KERNELS[key] = _make_step_kernel(cfg, bounds, per_run_lr, np.dtype(dtype).type)
    return k


def _make_step_kernel(cfg, HAS_BOUNDS, PER_RUN_LR, DTYPE):
    """The fused step of every active run for one layout (``cfg`` of ``make_state``)."""
    R_V, R_MG, R_MOM, R_ACC, R_AVG, R_BAK, R_LB = (
        cfg[C_V],
        cfg[C_MG],
        cfg[C_MOM],
        cfg[C_ACC],
        cfg[C_AVG],
        cfg[C_BAK],
        cfg[C_LB],
    )
    HAS_MG, HAS_MOM, HAS_ACC, HAS_AVG = (
        R_MG is not None,
        R_MOM is not None,
        R_ACC is not None,
        R_AVG is not None,
    )
    R_MG, R_MOM, R_ACC, R_AVG = (R_MG or 0, R_MOM or 0, R_ACC or 0, R_AVG or 0)
    R_LB = R_LB or 0
    CLIP = cfg[C_CLIP]
    HAS_CLIP = CLIP is not None
    CLIP_MODE = CLIP or 0
    GTOL_ON, FTOL_ON = cfg[C_GTOL] != 0, cfg[C_FTOL] != 0
    SW = cfg[C_SWITCHES]
    BIAS = SW[rule.BIAS_CORRECTION] is not None
    update_element = cuda_kernels._R.update_element
    gradient_square = cuda_kernels._R.gradient_square
    clip_factors = cuda_kernels._R.clip_factors
    tree = cuda_kernels._block_tree_sum
    float64, int32 = np.float64, np.int32
    NSH = cuda_kernels._SHARED
    INF = math.inf

    @cuda.jit
    def step(S, G, f, T, P, counters, runs, it, lr, lr_runs, codes):
        j = cuda.blockIdx.x
        r = runs[j]
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        sh = cuda.shared.array(NSH, dtype=float64)
        flag = cuda.shared.array(2, dtype=int32)
        x = S[r, 0]
        n = x.size
        g = G[:, j]  # run j's column of the (n, m) gradient
        bak = S[r, R_BAK]
        v = S[r, R_V]
        mg = S[r, R_MG] if HAS_MG else None
        mom = S[r, R_MOM] if HAS_MOM else None
        acc = S[r, R_ACC] if HAS_ACC else None
        avg = S[r, R_AVG] if HAS_AVG else None
        abak = S[r, R_BAK + 1] if HAS_AVG else None
        lb = S[r, R_LB] if HAS_BOUNDS else None
        ub = S[r, R_LB + 1] if HAS_BOUNDS else None
        Tr = T[r]
        Pr = P[r]
        fl = float64(f[j])
        if not (abs(fl) < INF):
            if t == 0:
                codes[j] = _NONFINITE_LOSS
            return
        # The gradient is finite (block AND), and x (and its EMA) is backed up.
        ok = 1.0
        for i in range(t, n, nt):
            if not _backup(i, x, g, bak, avg, abak):
                ok = 0.0
        sh[t] = ok
        cuda.syncthreads()
        _block_min(sh, t, nt)
        if sh[0] == 0.0:
            if t == 0:
                codes[j] = _NONFINITE_GRAD
            return
        cuda.syncthreads()
        if FTOL_ON:
            if t == 0:
                flag[0] = 1 if _loss_plateau(Tr, fl) else 0
            cuda.syncthreads()
            if flag[0] == 1:
                if t == 0:
                    codes[j] = _FTOL
                return
        if GTOL_ON:
            # The bias-corrected moving average of the (projected) gradient: its inf-norm.
            beta = Tr[T_GBETA]
            if t == 0:
                Tr[T_GPOW] = Tr[T_GPOW] * beta
            cuda.syncthreads()
            corr = 1.0 - Tr[T_GPOW]
            m = 0.0
            for i in range(t, n, nt):
                gi = _projected(float64(g[i]), x[i], lb, ub, i)
                a = beta * Tr[T_HEAD + i] + (1.0 - beta) * gi
                Tr[T_HEAD + i] = a
                a = abs(a)
                if a > m:
                    m = a
            sh[t] = m
            cuda.syncthreads()
            _block_max(sh, t, nt)
            gnorm = sh[0] / corr
            cuda.syncthreads()
            if t == 0:
                Tr[T_GNORM] = gnorm
            if gnorm <= Tr[T_GTOL]:
                if t == 0:
                    codes[j] = _GTOL
                return
        # The counter rules and this call's scalars (thread 0 packs, every thread loads).
        update, first, overwrite = _counters(it, counters[r, 0], counters[r, 1])
        if t == 0:
            tc = 0
            if BIAS and update:
                tc = _update_count(it, counters[r, 0])
            _pack_call(Pr, lr_runs[r] if PER_RUN_LR else lr, first, tc)
        cuda.syncthreads()
        s = _load(Pr)
        if update:
            num = None
            den = None
            if HAS_CLIP:
                q = 0.0
                for i in range(t, n, nt):
                    q += gradient_square(i, g, acc, s, SW)
                sh[t] = q
                cuda.syncthreads()
                tree(sh, t, nt)
                fac = clip_factors(CLIP_MODE, sh[0], Tr[T_CLIP])
                num = DTYPE(fac[0])
                den = DTYPE(fac[1])
                cuda.syncthreads()
            for i in range(t, n, nt):
                update_element(i, x, g, v, mg, mom, acc, avg, s, SW, num, den, True, overwrite)
        else:
            for i in range(t, n, nt):
                _accumulate(i, x, g, acc, avg, s, SW, overwrite)
        # Project onto the bounds; roll back if anything overflowed.
        ok = 1.0
        for i in range(t, n, nt):
            if not _finish(i, x, avg, lb, ub):
                ok = 0.0
        cuda.syncthreads()
        sh[t] = ok
        cuda.syncthreads()
        _block_min(sh, t, nt)
        if sh[0] == 0.0:
            for i in range(t, n, nt):
                _rollback(i, x, bak, avg, abak)
            if t == 0:
                codes[j] = _OVERFLOW
            return
        if t == 0:
            codes[j] = _OK

    return step


if cuda is not None:

    @cuda.jit(device=True)
    def _block_min(sh, t, nt):
        step = nt // 2
        while step > 0:
            if t < step:
                if sh[t + step] < sh[t]:
                    sh[t] = sh[t + step]
            cuda.syncthreads()
            step //= 2

    @cuda.jit(device=True)
    def _block_max(sh, t, nt):
        step = nt // 2
        while step > 0:
            if t < step:
                if sh[t + step] > sh[t]:
                    sh[t] = sh[t + step]
            cuda.syncthreads()
            step //= 2


def _threads_for(n: int) -> int:
    t = 1
    while t < n and t < _MAX_THREADS:
        t *= 2
    return max(t, 2 if SIM else 32)


# ===================================================================== host
def minimize_many(fun, X0, args, jac, bounds, options, run_args, callback):
    """``numba_rmsprop.minimize_many`` for a CUDA ``X0`` (see the module docstring)."""
    require_cuda()
    X = as_device(X0)
    batch = Batch(
        fun, X.copy_to_host(), args, jac, bounds, options, run_args, True, callback, device=True
    )
    return batch.solve(run_group)


def _device_runs(a, axis, runs_d, m):
    """The runs ``runs`` of a per-run device argument ``a`` (runs along ``axis``), as a
    numba device array of the same layout with ``m`` runs."""
    d = as_device(a)
    shape = tuple(d.shape)
    before, after = math.prod(shape[:axis]), math.prod(shape[axis + 1 :])
    out = cuda.device_array((before, m, after), dtype=d.dtype)
    if m and before and after:
        src = d.reshape(before, shape[axis], after)
        _take_middle[(m, before), _threads_for(after)](src, runs_d, out)
    return out.reshape(shape[:axis] + (m,) + shape[axis + 1 :])


def _as_device_result(a, what):
    try:
        return as_device(a)
    except TypeError:
        raise TypeError(
            f"With a CUDA X0 the vectorized `fun` must return device arrays; "
            f"{what} is a {type(a).__name__}."
        ) from None


def _check(f, G, m, n, dt):
    f, G = _as_device_result(f, "the loss"), _as_device_result(G, "the gradient")
    if tuple(f.shape) != (m,):
        raise ValueError(
            f"The vectorized `fun` must return losses of shape ({m},) for the "
            f"{m} active runs; got shape {tuple(f.shape)}."
        )
    if tuple(G.shape) != (n, m):
        raise ValueError(
            f"The vectorized gradient must have shape ({n}, {m}): {n} parameters "
            f"(rows) of the {m} active runs (columns); got shape {tuple(G.shape)}."
        )
    if np.dtype(G.dtype) != dt:
        raise TypeError(f"The gradient must have X0's dtype {dt}; got {np.dtype(G.dtype)}.")
    if not G.is_c_contiguous():
        raise ValueError("The gradient must be C-contiguous.")
    return f, G


def _evaluate(batch, X, ids_d, m):
    """``fun`` (and ``jac``) of the ``m`` runs ``ids`` at device iterates ``X``."""
    lst = list(batch.args)
    for i, ax in batch.run_axis.items():
        lst[i] = _device_runs(batch.args[i], ax, ids_d, m)
    out = batch.fun(X, *lst)
    if batch.jac is True:
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError(
                "With jac=True and vectorized=True, `fun` must return a pair "
                f"(f, G); got {type(out).__name__}."
            )
        f, G = out
    else:
        f, G = out, batch.jac(_copy(X), *lst)
    return _check(f, G, m, batch.n, batch.dtype)


def _copy(X):
    Y = cuda.device_array(tuple(X.shape), dtype=X.dtype)
    Y.copy_to_device(X)
    return Y


def run_group(batch, group, st) -> None:
    """Batch ``group``'s runs on the device (the vectorized loop, state on the GPU)."""
    from ..frontend.learning_rates import LR_BLOCK

    runs, res, n, dt = group.runs, batch.res, batch.n, batch.dtype
    m = runs.size
    S, T = cuda.to_device(st.S), cuda.to_device(st.T)
    P, counters = cuda.to_device(st.P), cuda.to_device(st.counters)
    per_run_lr = st.learning is None
    lr_runs = cuda.to_device(
        np.ascontiguousarray(st.lr_table[:, 0]) if per_run_lr else np.zeros(1, dt)
    )
    kernel = _kernel(st.cfg, batch.bounds is not None, per_run_lr, dt)
    threads = _threads_for(n)
    active = np.arange(m, dtype=np.int64)
    limit = batch.limit[runs]
    it = 0
    while True:
        active = batch._drop_finished(active, limit, it, runs)
        if not active.size:
            break
        kb, lr_off = divmod(it, LR_BLOCK)
        block = None if per_run_lr else st.learning.block(kb)
        for j in range(LR_BLOCK - lr_off):
            ma = active.size
            act_d = cuda.to_device(active)
            X = cuda.device_array((n, ma), dtype=dt)
            _gather_columns[ma, threads](S, act_d, X)
            sel = runs[active]
            f, G = _evaluate(batch, X, cuda.to_device(sel), ma)
            codes_d = cuda.device_array(ma, dtype=np.int64)
            lr = dt.type(block[lr_off + j]) if block is not None else dt.type(0)
            kernel[ma, threads](S, G, f, T, P, counters, act_d, it, lr, lr_runs, codes_d)
            codes = codes_d.copy_to_host()
            res.nev[sel] += 1
            stop = codes != OK
            res.nit[sel] = it + np.where(stop, 0, 1)
            if res.history is not None or stop.any() or batch.callback is not None:
                fh = np.asarray(as_device(f).copy_to_host(), dtype=np.float64)
                if res.history is not None:
                    for q, fq in zip(sel, fh, strict=False):
                        res.history[int(q)].append(np.array([fq]))
                if stop.any():
                    Gh = G.copy_to_host()
                    for q in np.flatnonzero(stop):
                        res.finish(int(sel[q]), int(codes[q]), float(fh[q]), Gh[:, q])
            it += 1
            batch._show(it, ma, lambda f=f: as_device(f).copy_to_host())
            keep = ~stop & (limit[active] > it)
            if batch.callback is not None:
                st.S[...] = S.copy_to_host()
                fl = np.full(m, np.nan)
                fl[active] = fh
                if batch._call_back(st, group, runs, active[keep], fl, codes):
                    active = active[:0]
                    break
            for q in active[~stop & ~keep]:
                res.finish_limit(int(runs[q]), batch)
            active = active[keep]
            if not active.size:
                break
    st.S[...] = S.copy_to_host()
    st.T[...] = T.copy_to_host()
    res.store(st, runs, batch)
    need = np.asarray([r for r in runs if not res.reuse[r]], dtype=np.int64)
    if need.size:
        X = cuda.to_device(np.ascontiguousarray(res.x[need].T))
        f, G = _evaluate(batch, X, cuda.to_device(need), need.size)
        fh = np.asarray(f.copy_to_host(), dtype=np.float64)
        Gh = G.copy_to_host()
        for q, r in enumerate(need):
            res.set_final(int(r), float(fh[q]), Gh[:, q])
