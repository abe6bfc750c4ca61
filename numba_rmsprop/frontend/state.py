"""The memory of a ``minimize`` run, laid out for the compiled step (:mod:`.step`).

:func:`make_state` lays out one run (``x0`` of shape ``(n,)``) or ``k`` runs
(``(k, n)``, for ``minimize_many``) as a :class:`RunState`. The constants
here name its rows, slots and entries, and the stop codes of the step.

Layout (:class:`RunState`)
--------------------------
``S`` (2-D, the variable's dtype)
    Row 0 is the variable ``x`` itself (the array the objective sees);
    further rows hold the RMSprop state, a backup of ``x`` (and of the EMA)
    for the rollback, and the bounds. ``cfg`` names the rows.
``P`` (1-D, the variable's dtype)
    The per-call scalars of :mod:`numba_rmsprop.engine.layout`.
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

from typing import NamedTuple

import numpy as np

from ..engine import clipping, layout

# ---------------------------------------------------------------- layout
# T: float64 tolerance parameters and state, then the gradient average.
T_CLIP = 0  # clipnorm / global_clipnorm value
T_GTOL = 1  # gtol
T_GBETA = 2  # momentum of the gradient average
T_GPOW = 3  # GBETA ** (number of averaged gradients), for the bias correction
T_GNORM = 4  # last inf-norm of the (bias-corrected) gradient average
T_FTOL = 5  # ftol
T_FBETA = 6  # momentum of the loss average
T_FPOW = 7  # FBETA ** (number of averaged losses)
T_FAVG = 8  # loss average (biased)
T_FBEST = 9  # best bias-corrected loss average so far
T_FSINCE = 10  # steps since FBEST improved by more than ftol (relative)
T_PATIENCE = 11  # patience
T_FCOUNT = 12  # number of losses averaged
T_FSIGN = 13  # 1, or -1 with maximize: ftol watches the loss the run improves
T_HEAD = 16

# cfg positions
C_N, C_FREQ, C_V, C_MG, C_MOM, C_ACC, C_AVG, C_BAK, C_LB = range(9)
C_CLIP, C_GTOL, C_FTOL, C_SWITCHES = range(9, 13)

# Return codes of step_arrays() / segment_loop().
OK = 0
NONFINITE_LOSS = 1
NONFINITE_GRAD = 2
GTOL = 3
FTOL = 4
OVERFLOW = 5
BAD_GRAD = 6
BAD_LOSS = 7
NONFINITE_X0 = 8  # the starting point is not finite: nothing was evaluated


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
    r_avg: int | None
    counters: np.ndarray


def _one(flags, what: str) -> bool:
    """The value of boolean ``flags`` shared by every run (they decide the layout)."""
    flags = np.asarray(flags)
    if flags.size and flags.min() != flags.max():
        raise ValueError(f"runs of one layout differ in {what}")  # pragma: no cover - grouped
    return bool(flags.flat[0]) if flags.size else False


def make_state(
    spec, x0: np.ndarray, bounds, *, gtol, ftol, patience, tol_momentum, initial_velocity
) -> RunState:
    """Lay out a run of :func:`~.step.step_arrays` for an RMSprop ``spec`` from ``x0``.

    ``x0`` is one starting point ``(n,)``, or ``(k, n)`` for ``k`` runs; then
    every numeric argument and every numeric attribute of ``spec`` may be a
    ``(k,)`` array of per-run values (:func:`numba_rmsprop.engine.layout.pack_constants`
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
    T[..., T_FSIGN] = -1.0 if spec.maximize else 1.0

    clip = None
    if spec.clip_mode == "norm":
        clip = clipping.CLIP_NORM
    elif spec.clip_mode == "global":
        clip = clipping.CLIP_GLOBAL
    counters = np.zeros(lead + (2,), dtype=np.int64)
    if spec.accumulation_steps is not None:
        counters[..., 0] = spec.accumulation_steps
    if spec.use_ema and spec.ema_overwrite_frequency is not None:
        counters[..., 1] = spec.ema_overwrite_frequency
    first = counters.reshape(-1, 2)[0]
    cfg = (
        int(first[0]),
        int(first[1]),
        1,
        r_mg,
        r_mom,
        r_acc,
        r_avg,
        r_bak,
        r_lb,
        clip,
        int(gtol is not None),
        int(ftol is not None),
        spec.switches,
    )
    P = layout.pack_constants(spec, dt, lead)
    return RunState(S=S, T=T, P=P, cfg=cfg, x=x, r_avg=r_avg, counters=counters)
