#!/usr/bin/env python
"""The scipy-style front end side by side with scipy and with a torch loop.

Two parts, each printed as a Markdown table (with the machine and the
command line at the top):

Part 1 -- deterministic problems, time to a target loss
    Full-batch, smooth problems: quasi-Newton methods are the right tool
    here and need one to two orders of magnitude fewer evaluations; wall
    time also depends on the cost of one evaluation against the per-iteration
    overhead of each method, which the report shows separately:

    * Rosenbrock (``scipy.optimize.rosen``, the chained form), n = 2 from
      (-1.2, 1), and n = 10 from (-1.2, 1, -1.2, 1, ...) (the Moré, Garbow
      and Hillstrom start) and from (-1, ..., -1) (the start of
      ``examples/rosenbrock.py``); ``f* = 0``.
    * Full-batch L2-regularised logistic regression on the training split of
      the part-2 data; ``f*`` is the lowest loss any run (or a tight
      L-BFGS-B reference) reaches.

    Methods: scipy's ``BFGS`` and ``L-BFGS-B`` with default options, given
    plain NumPy objectives (``rosen``/``rosen_der``; a NumPy loss-and-grad),
    and ``nr.minimize`` (RMSprop with momentum and an exponentially decaying
    learning rate, settings in :data:`RMS_DETERMINISTIC`, picked from a
    small grid on these very problems -- initial rate in {1e-3, 2e-3, 5e-3}
    (Rosenbrock) or {3e-3, 1e-2, 3e-2, 1e-1} (logistic), halving every
    {250, 500, 1000, 2000} steps, momentum 0 or 0.9 -- so, if anything,
    flattering to RMSprop) given ``@njit`` versions of the same objectives,
    ``jac=True`` and ``compiled=True`` (the whole loop runs compiled). An
    extra row runs L-BFGS-B on the ``@njit`` objective too.

    Target: ``f - f* <= 1e-6`` (absolute). For scipy, a
    ``callback(intermediate_result)`` raises ``StopIteration`` at the first
    iterate that meets it; for RMSprop, a first run with ``return_history``
    finds the first step ``k`` at which it is met, and the timed run is
    ``maxiter=k`` (its final evaluation at ``x_k`` confirms the target).
    Reported: wall time and objective evaluations to the target, and for
    the full run (scipy: to its default tolerances; RMSprop: ``maxiter``
    steps) iterations, evaluations, wall time and ``f - f*``. Times are the
    best of ``--repeat`` runs, after a warm-up run (which also compiles).

Part 2 -- minibatch logistic regression against ``torch.optim.RMSprop``
    The same generated data (20 000 x 20, intercept column included, seed 0,
    80/20 train/test split), the same L2-regularised mean cross-entropy
    (``lam = 1e-4`` on all weights, written into the loss in both), the same
    minibatches of 64 (one ``numpy.random.default_rng(0).permutation`` per
    epoch, exactly the draws ``nr.minimize`` makes, fed to torch as the same
    index batches), the same number of steps (5000 = 20 epochs), ``w0 = 0``,
    and RMSprop configured to the same math: learning rate 1e-3 (constant),
    ``rho = alpha = 0.9``, no momentum, not centred, no weight decay. Keras
    (hence ours) puts epsilon inside the square root, torch outside; we use
    torch's default ``eps = 1e-8`` and ours ``epsilon = 1e-16``, so that
    ``sqrt(v + 1e-16)`` and ``sqrt(v) + 1e-8`` differ by less than 1e-8:
    the runs follow the same trajectory (to ~1e-7 here), which the table
    checks (``max |w - w_torch64|``).

    * torch: the loop a user writes -- ``opt.zero_grad(); loss = ...;
      loss.backward(); opt.step()`` with autograd on CPU tensors,
      ``torch.set_num_threads(2)``; in float64 (the same arithmetic as ours)
      and, for reference, float32 (torch's usual default).
    * ours, compiled loop: ``nr.minimize`` with an ``@njit`` loss-and-grad.
    * ours, Python loop: ``nr.minimize`` with a NumPy loss-and-grad.

    Reported for each: wall time of the whole run (best and median of
    ``--repeat``, after a warm-up run whose time is shown as "first run"),
    time per step, final full-training-data loss (same NumPy function for
    all), test accuracy, and torch-float64 time / its time. Our timed runs
    include ``nr.minimize``'s final full-data evaluation; torch's do not.
    Without torch, part 2 is skipped (torch is imported only there).

    python benchmarks/side_by_side.py [--quick] [--repeat R] [--out-md FILE]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import statistics
import sys
import time

import numpy as np
from numba import njit
from scipy.optimize import minimize, rosen, rosen_der
from scipy.special import expit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numba_rmsprop as nr  # noqa: E402

#: Part 1: absolute target on ``f - f*``.
TARGET = 1e-6
#: Part 1: RMSprop settings (per problem family) and step budget.
RMS_DETERMINISTIC = {
    "rosenbrock": dict(learning_rate=("ExponentialDecay", 2e-3, 250, 0.5), momentum=0.9,
                       maxiter=5000),
    "logistic": dict(learning_rate=("ExponentialDecay", 1e-2, 500, 0.5), momentum=0.9,
                     maxiter=1000),
}
#: Part 2 (and the data of part 1's logistic regression).
N_SAMPLES, N_FEATURES, LAM = 20000, 20, 1e-4
BATCH, STEPS, LR, RHO = 64, 5000, 1e-3, 0.9
EPS_TORCH, EPS_OURS = 1e-8, 1e-16
SEED = 0


# ================================================================ objectives
def rosen_np(x):
    """Rosenbrock and its gradient, scipy's NumPy implementation."""
    return rosen(x), rosen_der(x)


@njit(cache=True)
def rosen_nb(x):
    """Rosenbrock (chained, as ``scipy.optimize.rosen``) and its gradient."""
    g = np.zeros_like(x)
    f = 0.0
    for i in range(x.size - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        f += 100.0 * a * a + b * b
        g[i] += -400.0 * x[i] * a - 2.0 * b
        g[i + 1] += 200.0 * a
    return f, g


def logreg_np(w, X, y, lam):
    """Mean cross-entropy of ``sigmoid(X @ w)`` + ``lam/2 |w|^2``, and gradient."""
    z = X @ w
    f = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * lam * (w @ w)
    g = X.T @ (expit(z) - y) / len(y) + lam * w
    return f, g


@njit(cache=True)
def logreg_nb(w, X, y, lam):
    """:func:`logreg_np`, compiled (the two products through BLAS, as in NumPy)."""
    n = y.size
    z = X @ w
    r = np.empty(n)
    f = 0.0
    for i in range(n):
        zi = z[i]
        if zi > 0.0:  # log(1 + e^z) - y z and sigmoid(z) - y, without overflow
            e = math.exp(-zi)
            f += zi + math.log1p(e) - y[i] * zi
            r[i] = 1.0 / (1.0 + e) - y[i]
        else:
            e = math.exp(zi)
            f += math.log1p(e) - y[i] * zi
            r[i] = e / (1.0 + e) - y[i]
    return f / n + 0.5 * lam * (w @ w), (r @ X) / n + lam * w


def make_data(seed=SEED):
    """20 000 x 20 logistic-regression data (column 0 = 1), split 80/20."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_SAMPLES, N_FEATURES))
    X[:, 0] = 1.0
    w_true = rng.normal(size=N_FEATURES)
    y = (rng.random(N_SAMPLES) < expit(X @ w_true)).astype(np.float64)
    ntr = int(0.8 * N_SAMPLES)
    return X[:ntr].copy(), y[:ntr].copy(), X[ntr:].copy(), y[ntr:].copy()


def accuracy(w, X, y):
    return float(np.mean((X @ w > 0) == (y > 0.5)))


# ================================================================== helpers
def best_of(fn, repeat):
    """Warm-up call, then ``repeat`` timed calls: (first, min, median, last result)."""
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return first, min(times), statistics.median(times), out


def fmt_time(s):
    if s is None:
        return "—"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def machine_description(torch_version):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba
    import scipy
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [f"- CPU: {cpu}, {ncpu} cores available ({platform.system()} {platform.release()})",
            f"- Python {platform.python_version()}, NumPy {np.__version__}, "
            f"SciPy {scipy.__version__}, Numba {numba.__version__}, "
            f"torch {torch_version or 'not installed'}"]


def schedule(spec):
    name, *a = spec
    return getattr(nr.schedules, name)(*a)


def describe_rms(opts):
    name, lr0, steps, rate = opts["learning_rate"]
    return (f"RMSprop: learning rate `{name}({lr0:g}, decay_steps={steps}, decay_rate={rate})`"
            f" (halves every {steps} steps), momentum {opts['momentum']}, rho 0.9, "
            f"epsilon 1e-7, {opts['maxiter']} steps")


# ==================================================================== part 1
def part1_problems():
    Xtr, ytr, _, _ = make_data()
    return [
        ("Rosenbrock n=2, x0=(-1.2, 1)", rosen_np, rosen_nb, np.array([-1.2, 1.0]), (),
         "rosenbrock"),
        ("Rosenbrock n=10, x0=(-1.2, 1, ..., -1.2, 1)", rosen_np, rosen_nb,
         np.tile([-1.2, 1.0], 5), (), "rosenbrock"),
        ("Rosenbrock n=10, x0=(-1, ..., -1)", rosen_np, rosen_nb, np.full(10, -1.0), (),
         "rosenbrock"),
        (f"Logistic regression, full batch, {Xtr.shape[0]}x{Xtr.shape[1]}", logreg_np,
         logreg_nb, np.zeros(Xtr.shape[1]), (Xtr, ytr, LAM), "logistic"),
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

    _, t_full, _, r_full = best_of(full, repeat)
    _, t_tgt, _, r_tgt = best_of(to_target, repeat)
    reached = r_tgt.fun - f_star <= TARGET
    return dict(t_tgt=t_tgt if reached else None, nfev_tgt=r_tgt.nfev if reached else None,
                nit=r_full.nit, nfev=r_full.nfev, t_full=t_full, fun=r_full.fun, x=r_full.x,
                message=r_full.message)


def rmsprop_runs(fun, x0, args, opts, f_star, repeat):
    """Full run (``maxiter`` steps) and run of the first ``k`` steps that reach the target."""
    options = dict(opts, learning_rate=schedule(opts["learning_rate"]), compiled=True)

    def run(**kw):
        return nr.minimize(fun, x0, args=args, jac=True, options=dict(options, **kw))

    hist = run(return_history=True).history
    hit = np.flatnonzero(hist - f_star <= TARGET)
    _, t_full, _, r_full = best_of(run, repeat)
    t_tgt = nfev_tgt = None
    if hit.size:
        k = int(hit[0])  # history[k] is f(x_k): k steps reach the target
        _, t_tgt, _, r_tgt = best_of(lambda: run(maxiter=max(k, 1)), repeat)
        if r_tgt.fun - f_star <= TARGET:
            nfev_tgt = r_tgt.nfev
        else:
            t_tgt = None
    return dict(t_tgt=t_tgt, nfev_tgt=nfev_tgt, nit=r_full.nit, nfev=r_full.nfev,
                t_full=t_full, fun=r_full.fun, x=r_full.x, message=r_full.message)


def objective_cost(fun, x0, args, n=200):
    """Seconds per call of the objective alone (best of 5 loops of ``n`` calls)."""
    fun(x0, *args)
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            fun(x0, *args)
        best = min(best, (time.perf_counter() - t) / n)
    return best


def part1(repeat):
    out = ["## Part 1: deterministic problems, time to f - f* <= "
           f"{TARGET:g}", ""]
    out += ["scipy (`BFGS`, `L-BFGS-B`, default options) gets NumPy objectives; "
            "`nr.minimize` gets `@njit` objectives (`jac=True`, `compiled=True`: the whole "
            "loop compiled). \"to target\": wall time and objective evaluations until the first "
            f"iterate with f - f* <= {TARGET:g}; \"full run\": scipy to its default "
            "tolerances, RMSprop for its full step budget. Times: best of "
            f"{repeat} after a warm-up run. The extra L-BFGS-B row gives scipy the `@njit` "
            "objective too, to separate the objective's cost from the method's. The chained "
            "Rosenbrock function has, for 4 <= n <= 30, a second local minimum near "
            "(-1, 1, ..., 1), where a local method may stop.", ""]
    for opts_name, opts in RMS_DETERMINISTIC.items():
        out.append(f"- {opts_name}: {describe_rms(opts)}")
    out.append("")
    for title, f_np, f_nb, x0, args, kind in part1_problems():
        opts = dict(RMS_DETERMINISTIC[kind])
        if kind == "rosenbrock":
            f_star = 0.0
        else:
            ref = minimize(f_np, x0, args=args, method="L-BFGS-B", jac=True,
                           options={"gtol": 1e-12, "ftol": 1e-16, "maxiter": 10000})
            f_star = ref.fun
        rows = {}
        for method in ("BFGS", "L-BFGS-B"):
            rows[method] = scipy_runs(f_np, x0, args, method, f_star, repeat)
        rows["L-BFGS-B, @njit objective (extra)"] = scipy_runs(f_nb, x0, args, "L-BFGS-B",
                                                               f_star, repeat)
        rows["nr.minimize (RMSprop)"] = rmsprop_runs(f_nb, x0, args, opts, f_star, repeat)
        f_star = min([f_star] + [r["fun"] for r in rows.values()])
        out += [f"### {title}", ""]
        body = []
        for name, r in rows.items():
            body.append([name, fmt_time(r["t_tgt"]),
                         "not reached" if r["nfev_tgt"] is None else r["nfev_tgt"],
                         r["nit"], r["nfev"], fmt_time(r["t_full"]),
                         f"{r['fun'] - f_star:.1e}" + (f" (f = {r['fun']:.4g})"
                                                       if r["fun"] - f_star > 1e-3 else "")])
        out += table(["method", "time to target", "fev to target", "full run: nit", "nfev",
                      "time", "f - f*"], body)
        c_np = objective_cost(f_np, x0, args)
        c_nb = objective_cost(f_nb, x0, args)
        out += ["", f"f* = {f_star:.10g}. One objective call alone: NumPy {fmt_time(c_np)}, "
                f"@njit {fmt_time(c_nb)} (from Python)."]
        for name, r in rows.items():
            if r["nfev_tgt"] is None:
                out.append(f"{name} never reaches the target: it stops at f = {r['fun']:.4g}, "
                           f"x_1 = {r['x'][0]:.4f} (\"{r['message']}\").")
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
    opt = torch.optim.RMSprop([w], lr=LR, alpha=RHO, eps=EPS_TORCH, momentum=0.0,
                              centered=False, weight_decay=0.0)
    rng = np.random.default_rng(SEED)
    n = X.shape[0]
    step = 0
    while step < steps:
        perm = torch.from_numpy(rng.permutation(n))
        for s in range(0, n, BATCH):
            if step == steps:
                break
            idx = perm[s:s + BATCH]
            xb, yb = X[idx], y[idx]
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(xb @ w, yb) + 0.5 * LAM * (w @ w)
            loss.backward()
            opt.step()
            step += 1
    return w.detach().to(torch.float64).numpy().copy()


def ours_run(fun, Xtr, ytr, steps, compiled):
    res = nr.minimize(fun, np.zeros(Xtr.shape[1]), args=(Xtr, ytr, LAM), jac=True,
                      options={"learning_rate": LR, "rho": RHO, "epsilon": EPS_OURS,
                               "batch_size": BATCH, "maxiter": steps, "seed": SEED,
                               "shuffle": True, "compiled": compiled})
    assert res.nit == steps, res.message
    return res.x


def part2(repeat, steps):
    out = ["## Part 2: minibatch logistic regression, nr.minimize vs a torch.optim.RMSprop loop",
           ""]
    try:
        import torch
    except ImportError as exc:
        return out + [f"torch is not importable ({exc}): part 2 skipped.", ""]
    torch.set_num_threads(2)
    Xtr, ytr, Xte, yte = make_data()
    epochs = steps * BATCH / Xtr.shape[0]
    out += [f"{Xtr.shape[0]} training rows x {Xtr.shape[1]} weights (intercept included), "
            f"{Xte.shape[0]} test rows; minibatches of {BATCH}, {steps} steps "
            f"({epochs:g} epochs), the same index batches for all (one "
            f"`default_rng({SEED}).permutation` per epoch). RMSprop: lr {LR:g} constant, "
            f"rho = alpha = {RHO}, no momentum; epsilon {EPS_OURS:g} inside the sqrt (ours) vs "
            f"eps {EPS_TORCH:g} outside (torch), i.e. the same denominator to within 1e-8. "
            f"Loss: mean cross-entropy + {LAM:g}/2 |w|^2 in both. "
            f"torch threads: {torch.get_num_threads()}. Times: best and median of {repeat} "
            "after a warm-up (first) run.", ""]
    runs = [
        ("torch loop, float64", lambda: torch_run(torch, Xtr, ytr, steps, torch.float64)),
        ("torch loop, float32", lambda: torch_run(torch, Xtr, ytr, steps, torch.float32)),
        ("nr.minimize, @njit objective (compiled loop)",
         lambda: ours_run(logreg_nb, Xtr, ytr, steps, True)),
        ("nr.minimize, NumPy objective (Python loop)",
         lambda: ours_run(logreg_np, Xtr, ytr, steps, False)),
    ]
    results = {}
    for name, fn in runs:
        results[name] = best_of(fn, repeat)
    ref_name = "torch loop, float64"
    t_ref = results[ref_name][1]
    w_ref = results[ref_name][3]
    body = []
    for name, (first, tmin, tmed, w) in results.items():
        body.append([name, fmt_time(first), fmt_time(tmin), fmt_time(tmed),
                     fmt_time(tmin / steps), f"{logreg_np(w, Xtr, ytr, LAM)[0]:.6f}",
                     f"{accuracy(w, Xte, yte):.4f}", f"{np.max(np.abs(w - w_ref)):.1e}",
                     f"{t_ref / tmin:.1f}x"])
    out += table(["run", "first run", "best", "median", "per step (best)", "final train loss",
                  "test acc", "max abs(w - w_torch64)", "torch64 time / time"], body)
    f_star = minimize(logreg_np, np.zeros(Xtr.shape[1]), args=(Xtr, ytr, LAM),
                      method="L-BFGS-B", jac=True, options={"gtol": 1e-12, "ftol": 1e-16}).fun
    w_c = results["nr.minimize, @njit objective (compiled loop)"][3]
    w_p = results["nr.minimize, NumPy objective (Python loop)"][3]
    out += ["", f"Full-batch optimum (L-BFGS-B): train loss {f_star:.6f}. Compiled and Python "
            f"loops of ours: max abs difference of the weights {np.max(np.abs(w_c - w_p)):.1e} "
            "(the objectives differ in summation order). \"first run\" includes compiling "
            "(or loading numba's disk cache) for ours and torch's lazy initialisation.", ""]
    return out


# ===================================================================== main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="fewer repeats and part-2 steps (a smoke test)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="timed repeats per run (default 5, --quick 1)")
    ap.add_argument("--steps", type=int, default=None,
                    help=f"part-2 steps (default {STEPS}, --quick 500)")
    ap.add_argument("--out-md", metavar="FILE", help="also write the report to FILE")
    args = ap.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 5)
    steps = args.steps or (500 if args.quick else STEPS)
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    lines = ["# numba_rmsprop front end, side by side", "",
             *machine_description(torch_version),
             f"- Command: `{shlex.join([sys.executable] + sys.argv)}`", ""]
    t0 = time.perf_counter()
    lines += part1(repeat)
    lines += part2(repeat, steps)
    lines += [f"Total wall time of the script: {time.perf_counter() - t0:.1f} s.", ""]
    report = "\n".join(lines)
    print(report)
    if args.out_md:
        with open(args.out_md, "w", encoding="utf-8") as fh:
            fh.write(report)


if __name__ == "__main__":
    main()
