"""The ``time_to_loss`` and ``torch_loop`` sections of ``report.py`` (``--preset side_by_side``).

Part 1 -- deterministic problems, time to ``f - f* <= 1e-6``
    Rosenbrock (``problems.rosenbrock``, chained) n = 2 from (-1.2, 1), n = 10
    from (-1.2, 1, ...) (Moré, Garbow and Hillstrom) and from (-1, ..., -1)
    (``examples/rosenbrock.py``), ``f* = 0``; full-batch L2-regularised
    logistic regression on part 2's training split, ``f*`` the lowest loss
    any run or a tight L-BFGS-B reaches. scipy's ``BFGS`` and ``L-BFGS-B``
    (default options) get the NumPy objectives; ``nr.minimize`` (RMSprop,
    momentum 0.9, exponentially decaying rate: :data:`RMS_DETERMINISTIC`,
    picked from a small grid on these very problems, so if anything
    flattering) gets the ``@njit`` twins with ``compiled=True``; an extra row
    gives L-BFGS-B the ``@njit`` objective too. scipy stops at the target
    through a ``callback`` raising ``StopIteration``; RMSprop runs the ``k``
    steps its history says reach it. Reported: time and evaluations to the
    target, and for the full run (scipy: default tolerances; RMSprop:
    ``maxiter``) iterations, evaluations, time and ``f - f*``; best of
    ``--repeat`` after a warm-up run (which compiles).

Part 2 -- minibatch logistic regression against ``torch.optim.RMSprop``
    The same data (20 000 x 20 with intercept, seed 0, 80/20 split), loss
    (mean cross-entropy + ``1e-4/2 |w|^2``), minibatches of 64 (one
    ``default_rng(0).permutation`` per epoch, the draws ``nr.minimize`` makes,
    fed to torch as index batches), 5000 steps, ``w0 = 0``, lr 1e-3, rho 0.9.
    Keras (ours) puts epsilon inside the square root, torch outside: ours
    1e-16, torch 1e-8, the same denominator to within 1e-8, so the runs
    follow one trajectory (``max |w - w_torch64|`` checks it). torch: the
    usual ``zero_grad``/``backward``/``step`` loop with autograd, float64 (our
    arithmetic) and float32; ours: compiled loop (``@njit`` objective) and
    Python loop (NumPy objective). Reported: first run, best and median of
    ``--repeat``, time per step, final loss, test accuracy. Skipped without torch.

    python -m benchmarks.report --preset side_by_side [--set torch_loop.steps=5000]
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

import numba_rmsprop as nr

from . import common as C
from . import problems as Q

#: Part 1: absolute target on ``f - f*``.
TARGET = 1e-6
#: Part 1: RMSprop settings (per problem family) and step budget.
RMS_DETERMINISTIC = {
    "rosenbrock": dict(
        learning_rate=("ExponentialDecay", 2e-3, 250, 0.5), momentum=0.9, maxiter=5000
    ),
    "logistic": dict(
        learning_rate=("ExponentialDecay", 1e-2, 500, 0.5), momentum=0.9, maxiter=1000
    ),
}
#: Part 2 (and the data of part 1's logistic regression).
N_SAMPLES, N_FEATURES, LAM = 20000, 20, 1e-4
BATCH, STEPS, LR, RHO = 64, 5000, 1e-3, 0.9
EPS_TORCH, EPS_OURS = 1e-8, 1e-16
SEED = 0


def schedule(spec):
    name, *a = spec
    return getattr(nr.schedules, name)(*a)


def describe_rms(opts):
    name, lr0, steps, rate = opts["learning_rate"]
    return (
        f"RMSprop: learning rate `{name}({lr0:g}, decay_steps={steps}, decay_rate={rate})`"
        f" (halves every {steps} steps), momentum {opts['momentum']}, rho 0.9, "
        f"epsilon 1e-7, {opts['maxiter']} steps"
    )


# ==================================================================== part 1
def part1_problems():
    Xtr, ytr, _, _ = Q.logistic_data(N_SAMPLES, N_FEATURES, SEED)
    return [
        (
            "Rosenbrock n=2, x0=(-1.2, 1)",
            Q.rosenbrock,
            Q.rosenbrock_njit,
            np.array([-1.2, 1.0]),
            (),
            "rosenbrock",
        ),
        (
            "Rosenbrock n=10, x0=(-1.2, 1, ..., -1.2, 1)",
            Q.rosenbrock,
            Q.rosenbrock_njit,
            np.tile([-1.2, 1.0], 5),
            (),
            "rosenbrock",
        ),
        (
            "Rosenbrock n=10, x0=(-1, ..., -1)",
            Q.rosenbrock,
            Q.rosenbrock_njit,
            np.full(10, -1.0),
            (),
            "rosenbrock",
        ),
        (
            f"Logistic regression, full batch, {Xtr.shape[0]}x{Xtr.shape[1]}",
            Q.logistic,
            Q.logistic_njit,
            np.zeros(Xtr.shape[1]),
            (Xtr, ytr, LAM),
            "logistic",
        ),
    ]


def scipy_runs(fun, x0, args, method, f_star, repeat):
    """Full run (default tolerances) and run stopped at the target."""

    def full():
        return minimize(fun, x0, args=args, method=method, jac=True)

    def stop(intermediate_result):
        if intermediate_result.fun - f_star <= TARGET:
            raise StopIteration

    def to_target():
        return minimize(fun, x0, args=args, method=method, jac=True, callback=stop)

    _, t_full, _, r_full = C.best_of(full, repeat)
    _, t_tgt, _, r_tgt = C.best_of(to_target, repeat)
    reached = r_tgt.fun - f_star <= TARGET
    return dict(
        t_tgt=t_tgt if reached else None,
        nfev_tgt=r_tgt.nfev if reached else None,
        nit=r_full.nit,
        nfev=r_full.nfev,
        t_full=t_full,
        fun=r_full.fun,
        x=r_full.x,
        message=r_full.message,
    )


def rmsprop_runs(fun, x0, args, opts, f_star, repeat):
    """Full run (``maxiter`` steps) and run of the first ``k`` steps that reach the target."""
    options = dict(opts, learning_rate=schedule(opts["learning_rate"]), compiled=True)

    def run(**kw):
        return nr.minimize(fun, x0, args=args, jac=True, options=dict(options, **kw))

    hist = run(return_history=True).history
    hit = np.flatnonzero(hist - f_star <= TARGET)
    _, t_full, _, r_full = C.best_of(run, repeat)
    t_tgt = nfev_tgt = None
    if hit.size:
        k = int(hit[0])  # history[k] is f(x_k): k steps reach the target
        _, t_tgt, _, r_tgt = C.best_of(lambda: run(maxiter=max(k, 1)), repeat)
        if r_tgt.fun - f_star <= TARGET:
            nfev_tgt = r_tgt.nfev
        else:
            t_tgt = None
    return dict(
        t_tgt=t_tgt,
        nfev_tgt=nfev_tgt,
        nit=r_full.nit,
        nfev=r_full.nfev,
        t_full=t_full,
        fun=r_full.fun,
        x=r_full.x,
        message=r_full.message,
    )


def objective_cost(fun, x0, args, n=200):
    """Seconds per call of the objective alone (best of 5 loops of ``n`` calls)."""
    return C.best_of(lambda: [fun(x0, *args) for _ in range(n)], 5)[1] / n


def part1(repeat):
    out = [f"## Part 1: deterministic problems, time to f - f* <= {TARGET:g}", ""]
    out += [
        "scipy (`BFGS`, `L-BFGS-B`, default options) gets NumPy objectives; "
        "`nr.minimize` gets `@njit` objectives (`jac=True`, `compiled=True`: the whole "
        'loop compiled). "to target": wall time and objective evaluations until the first '
        f'iterate with f - f* <= {TARGET:g}; "full run": scipy to its default '
        "tolerances, RMSprop for its full step budget. Times: best of "
        f"{repeat} after a warm-up run. The extra L-BFGS-B row gives scipy the `@njit` "
        "objective too, to separate the objective's cost from the method's. The chained "
        "Rosenbrock function has, for 4 <= n <= 30, a second local minimum near "
        "(-1, 1, ..., 1), where a local method may stop.",
        "",
    ]
    for opts_name, opts in RMS_DETERMINISTIC.items():
        out.append(f"- {opts_name}: {describe_rms(opts)}")
    out.append("")
    for title, f_np, f_nb, x0, args, kind in part1_problems():
        opts = dict(RMS_DETERMINISTIC[kind])
        if kind == "rosenbrock":
            f_star = 0.0
        else:
            ref = minimize(
                f_np,
                x0,
                args=args,
                method="L-BFGS-B",
                jac=True,
                options={"gtol": 1e-12, "ftol": 1e-16, "maxiter": 10000},
            )
            f_star = ref.fun
        rows = {}
        for method in ("BFGS", "L-BFGS-B"):
            rows[method] = scipy_runs(f_np, x0, args, method, f_star, repeat)
        rows["L-BFGS-B, @njit objective (extra)"] = scipy_runs(
            f_nb, x0, args, "L-BFGS-B", f_star, repeat
        )
        rows["nr.minimize (RMSprop)"] = rmsprop_runs(f_nb, x0, args, opts, f_star, repeat)
        f_star = min([f_star] + [r["fun"] for r in rows.values()])
        out += [f"### {title}", ""]
        body = []
        for name, r in rows.items():
            body.append(
                [
                    name,
                    C.fmt_time(r["t_tgt"]),
                    "not reached" if r["nfev_tgt"] is None else r["nfev_tgt"],
                    r["nit"],
                    r["nfev"],
                    C.fmt_time(r["t_full"]),
                    f"{r['fun'] - f_star:.1e}"
                    + (f" (f = {r['fun']:.4g})" if r["fun"] - f_star > 1e-3 else ""),
                ]
            )
        out += C.md_table(
            [
                "method",
                "time to target",
                "fev to target",
                "full run: nit",
                "nfev",
                "time",
                "f - f*",
            ],
            body,
        )
        c_np = objective_cost(f_np, x0, args)
        c_nb = objective_cost(f_nb, x0, args)
        out += [
            "",
            f"f* = {f_star:.10g}. One objective call alone: NumPy {C.fmt_time(c_np)}, "
            f"@njit {C.fmt_time(c_nb)} (from Python).",
        ]
        for name, r in rows.items():
            if r["nfev_tgt"] is None:
                out.append(
                    f"{name} never reaches the target: it stops at f = {r['fun']:.4g}, "
                    f'x_1 = {r["x"][0]:.4f} ("{r["message"]}").'
                )
        hit = {k: r for k, r in rows.items() if r["nfev_tgt"] is not None}
        if hit:
            fewest = min(hit, key=lambda k: hit[k]["nfev_tgt"])
            fastest = min(hit, key=lambda k: hit[k]["t_tgt"])
            out.append(f"Fewest evaluations to the target: {fewest}; least time: {fastest}.")
        out.append("")
    return out


# ==================================================================== part 2
def torch_run(torch, Xtr, ytr, steps, dtype):
    """The usual torch training loop, on the same index batches as ``nr.minimize``."""
    F = torch.nn.functional
    X = torch.from_numpy(Xtr).to(dtype)
    y = torch.from_numpy(ytr).to(dtype)
    w = torch.zeros(X.shape[1], dtype=dtype, requires_grad=True)
    opt = torch.optim.RMSprop(
        [w], lr=LR, alpha=RHO, eps=EPS_TORCH, momentum=0.0, centered=False, weight_decay=0.0
    )
    rng = np.random.default_rng(SEED)
    n = X.shape[0]
    step = 0
    while step < steps:
        perm = torch.from_numpy(rng.permutation(n))
        for s in range(0, n, BATCH):
            if step == steps:
                break
            idx = perm[s : s + BATCH]
            xb, yb = X[idx], y[idx]
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(xb @ w, yb) + 0.5 * LAM * (w @ w)
            loss.backward()
            opt.step()
            step += 1
    return w.detach().to(torch.float64).numpy().copy()


def ours_run(fun, Xtr, ytr, steps, compiled):
    res = nr.minimize(
        fun,
        np.zeros(Xtr.shape[1]),
        args=(Xtr, ytr, LAM),
        jac=True,
        options={
            "learning_rate": LR,
            "rho": RHO,
            "epsilon": EPS_OURS,
            "batch_size": BATCH,
            "maxiter": steps,
            "seed": SEED,
            "shuffle": True,
            "compiled": compiled,
        },
    )
    assert res.nit == steps, res.message
    return res.x


def part2(repeat, steps):
    out = [
        "## Part 2: minibatch logistic regression, nr.minimize vs a torch.optim.RMSprop loop",
        "",
    ]
    try:
        import torch
    except ImportError as exc:
        return out + [f"torch is not importable ({exc}): part 2 skipped.", ""]
    torch.set_num_threads(C.bench_threads())
    Xtr, ytr, Xte, yte = Q.logistic_data(N_SAMPLES, N_FEATURES, SEED)
    epochs = steps * BATCH / Xtr.shape[0]
    out += [
        f"{Xtr.shape[0]} training rows x {Xtr.shape[1]} weights (intercept included), "
        f"{Xte.shape[0]} test rows; minibatches of {BATCH}, {steps} steps "
        f"({epochs:g} epochs), the same index batches for all (one "
        f"`default_rng({SEED}).permutation` per epoch). RMSprop: lr {LR:g} constant, "
        f"rho = alpha = {RHO}, no momentum; epsilon {EPS_OURS:g} inside the sqrt (ours) vs "
        f"eps {EPS_TORCH:g} outside (torch), i.e. the same denominator to within 1e-8. "
        f"Loss: mean cross-entropy + {LAM:g}/2 |w|^2 in both. "
        f"torch threads: {torch.get_num_threads()}. Times: best and median of {repeat} "
        "after a warm-up (first) run.",
        "",
    ]
    runs = [
        ("torch loop, float64", lambda: torch_run(torch, Xtr, ytr, steps, torch.float64)),
        ("torch loop, float32", lambda: torch_run(torch, Xtr, ytr, steps, torch.float32)),
        (
            "nr.minimize, @njit objective (compiled loop)",
            lambda: ours_run(Q.logistic_njit, Xtr, ytr, steps, True),
        ),
        (
            "nr.minimize, NumPy objective (Python loop)",
            lambda: ours_run(Q.logistic, Xtr, ytr, steps, False),
        ),
    ]
    results = {}
    for name, fn in runs:
        results[name] = C.best_of(fn, repeat)
    ref_name = "torch loop, float64"
    t_ref = results[ref_name][1]
    w_ref = results[ref_name][3]
    body = []
    for name, (first, tmin, tmed, w) in results.items():
        body.append(
            [
                name,
                C.fmt_time(first),
                C.fmt_time(tmin),
                C.fmt_time(tmed),
                C.fmt_time(tmin / steps),
                f"{Q.logistic(w, Xtr, ytr, LAM)[0]:.6f}",
                f"{Q.accuracy(w, Xte, yte):.4f}",
                f"{np.max(np.abs(w - w_ref)):.1e}",
                f"{t_ref / tmin:.1f}x",
            ]
        )
    out += C.md_table(
        [
            "run",
            "first run",
            "best",
            "median",
            "per step (best)",
            "final train loss",
            "test acc",
            "max abs(w - w_torch64)",
            "torch64 time / time",
        ],
        body,
    )
    f_star = minimize(
        Q.logistic,
        np.zeros(Xtr.shape[1]),
        args=(Xtr, ytr, LAM),
        method="L-BFGS-B",
        jac=True,
        options={"gtol": 1e-12, "ftol": 1e-16},
    ).fun
    w_c = results["nr.minimize, @njit objective (compiled loop)"][3]
    w_p = results["nr.minimize, NumPy objective (Python loop)"][3]
    out += [
        "",
        f"Full-batch optimum (L-BFGS-B): train loss {f_star:.6f}. Compiled and Python "
        f"loops of ours: max abs difference of the weights {np.max(np.abs(w_c - w_p)):.1e} "
        '(the objectives differ in summation order). "first run" includes compiling '
        "(or loading numba's disk cache) for ours and torch's lazy initialisation.",
        "",
    ]
    return out


def time_to_loss(repeat=5):
    return {"lines": part1(repeat)[2:]}


def torch_loop(repeat=5, steps=STEPS):
    return {"lines": part2(repeat, steps)[2:]}
