"""The ``peers`` section of ``report.py``: ours against peer RMSprop implementations.

For every (config, dtype, size):

1. trajectory agreement: all steppers start from the same x0 and take
   ``check_steps`` steps with the same gradients; reported is
   ``max|x_peer - x_numpy| / lr`` (numpy column: its deviation from a float64
   NumPy reference, the rounding floor);
2. time per step: ``repeat`` samples of a batch of steps lasting >= ``min_time``
   (``common.interleaved``), the median (or ``stat="min"``). Each peer runs in
   its own fresh interpreter (``isolate``): torch's, numba's and XLA's thread
   pools otherwise fight over the cores.

Ratios are ``peer / ours`` (``/ bw_par`` without ours); "bound" is
``bw_par / ours``, the fraction of the same-traffic bound reached. Gradients:
random sign, log-uniform magnitude in [1e-5, 1], for which eps placement matters.
The README's table and plot::

    KERAS_BACKEND=jax python -m benchmarks.report --sections peers \\
        --set 'peers.sizes=[10,1000,100000,10000000]' 'peers.png="peers.png"'
"""

from __future__ import annotations

import gc
import os
import sys

import numpy as np

from . import common as C
from . import peers as P

os.environ.setdefault("KERAS_BACKEND", "jax")
PEERS = [
    "ours",
    "handwritten",
    "numpy",
    "torch",
    "torch_shift",
    "optax",
    "keras",
    "bw_par",
    "bw_ser",
]
KWARGS = dict(
    sizes=[10, 1000, 100000, 10000000],
    dtypes=["float32"],
    configs=["plain"],
    peers=PEERS,
    repeat=7,
    min_time=0.05,
    warmup=3,
    check_steps=10,
    stat="median",
    ntensors=1,
    seed=0,
    isolate=True,
)


def make_data(size, ntensors, dtype, nsteps, seed):
    rng = np.random.default_rng(seed)
    per = max(1, size // ntensors)
    x0 = [rng.standard_normal(per).astype(dtype) for _ in range(ntensors)]
    grads = [
        [
            (np.where(rng.random(per) < 0.5, -1.0, 1.0) * 10.0 ** rng.uniform(-5, 0, per)).astype(
                dtype
            )
            for _ in range(ntensors)
        ]
        for _ in range(max(1, nsteps))
    ]
    return x0, grads


def build(name, x0, cfg):
    return P.PEERS[name][0]([x.copy() for x in x0], cfg)


def _err(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:80]


def check_agreement(names, x0, glist, cfg):
    """Lock-step trajectories: ``{name: max|dx|/lr or error}``."""
    ref = P.numpy_stepper([x.copy() for x in x0], cfg)
    ref64 = P.numpy_stepper([x.astype(np.float64) for x in x0], cfg)  # the rounding reference
    steppers, out, err = {}, {}, {"numpy": 0.0}
    for n in names:
        if n != "numpy" and P.PEERS[n][1]:
            try:
                steppers[n], err[n] = build(n, x0, cfg), 0.0
            except Exception as e:  # noqa: BLE001
                out[n] = _err(e)

    def dev(xs, ys):
        return max(
            float(np.max(np.abs(np.asarray(a, np.float64) - b), initial=0.0))
            for a, b in zip(xs, ys, strict=False)
        )

    for g in glist:
        ref.step(g)
        ref64.step([gi.astype(np.float64) for gi in g])
        err["numpy"] = max(err["numpy"], dev(ref.params(), ref64.params()))
        for n, s in list(steppers.items()):
            try:
                s.step(g)
                err[n] = max(err[n], dev(s.params(), ref.params()))
            except Exception as e:  # noqa: BLE001
                out[n] = _err(e)
                del steppers[n], err[n]
    out.update({n: e / cfg.learning_rate for n, e in err.items()})
    return out


def _times(kw, peer):
    """``[[config, dtype, size, seconds or error], ...]`` for one peer, in this process."""
    stat, out = np.median if kw["stat"] == "median" else np.min, []
    for cname in kw["configs"]:
        for dtype in kw["dtypes"]:
            for size in kw["sizes"]:
                x0, (g,) = make_data(size, kw["ntensors"], dtype, 1, kw["seed"])
                try:
                    step = build(peer, x0, P.CONFIGS[cname]).step
                    t = float(
                        stat(
                            C.interleaved(
                                {peer: lambda step=step, g=g: step(g)},
                                kw["repeat"],
                                kw["min_time"],
                                kw["warmup"],
                            )[peer]
                        )
                    )
                except Exception as e:  # noqa: BLE001
                    t = _err(e)
                out.append([cname, dtype, size, t])
                step = None  # free the peer's state before the next case
                gc.collect()
    return out


def table(**kw) -> list:
    """Rows ``{config, dtype, size, times: {peer: s}, errs: {peer: max|dx|/lr}}``."""
    kw = dict(KWARGS, **kw)
    peers = [p for p in kw["peers"] if C.available(P.PEERS[p][2])]
    rows = {}
    for p in peers:
        print(f"[peers] {p}", file=sys.stderr, flush=True)
        if kw["isolate"]:
            try:
                got = C.child_call("compare_peers._times", kw=kw, peer=p)
            except RuntimeError as e:
                got = [
                    [c, d, n, str(e).strip().splitlines()[-1][:80]]
                    for c in kw["configs"]
                    for d in kw["dtypes"]
                    for n in kw["sizes"]
                ]
        else:
            got = _times(kw, p)
        for cname, dtype, size, t in got:
            rows.setdefault(
                (cname, dtype, size),
                {"config": cname, "dtype": dtype, "size": size, "times": {}, "errs": {}},
            )["times"][p] = t
    for (cname, dtype, size), row in rows.items():
        if kw["check_steps"]:
            x0, glist = make_data(size, kw["ntensors"], dtype, kw["check_steps"], kw["seed"])
            row["size"] = sum(x.size for x in x0)
            row["errs"] = check_agreement(peers, x0, glist, P.CONFIGS[cname])
    return list(rows.values())


def markdown(results, kw):
    kw = dict(KWARGS, **kw)
    lines = [
        f"{kw['stat']} of {kw['repeat']} samples (>= {kw['min_time']} s each), ntensors="
        f"{kw['ntensors']}, {'one process per peer' if kw['isolate'] else 'in-process'}.",
        "",
    ]
    groups = {}
    for r in results:
        groups.setdefault((r["config"], r["dtype"]), []).append(r)
    for (cname, dtype), rows in groups.items():
        names = [n for n in kw["peers"] if any(n in r["times"] for r in rows)]
        base = "ours" if "ours" in names else "bw_par"
        hdr = (
            ["size"] + names + (["bound (bw_par/ours)"] if {"ours", "bw_par"} <= set(names) else [])
        )
        body = []
        for r in rows:
            t, tb = r["times"], r["times"].get(base)
            cells = [f"{r['size']:,}"]
            for n in names:
                v = t.get(n)
                cells.append(
                    C.fmt_time(v)
                    + (f" ({v / tb:.2f}x)" if isinstance(tb, float) and n != base else "")
                    if isinstance(v, float)
                    else str(v or "")
                )
            if len(hdr) > len(cells):
                ok = isinstance(t.get("ours"), float) and isinstance(t.get("bw_par"), float)
                cells.append(f"{t['bw_par'] / t['ours']:.0%}" if ok else "n/a")
            body.append(cells)
        lines += [
            f"### {cname}, {dtype}: time per step (ratio = peer / {base})",
            "",
            *C.md_table(hdr, body),
            "",
        ]
        enames = [n for n in names if any(n in r["errs"] for r in rows)]
        if enames:
            lines += [
                f"Trajectory agreement over {kw['check_steps']} steps: max|x_peer - x_numpy| "
                "/ lr (numpy column: vs a float64 NumPy reference)",
                "",
            ]
            lines += C.md_table(
                ["size"] + enames,
                [
                    [f"{r['size']:,}"]
                    + [
                        f"{e:.2e}" if isinstance(e, float) else str(e or "")
                        for e in (r["errs"].get(n) for n in enames)
                    ]
                    for r in rows
                ],
            )
            lines.append("")
    if kw.get("png"):
        plot(results, kw, kw["png"])
        lines.append(f"Plot: `{kw['png']}`.")
    return lines


def plot(results, kw, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not available; no plot", file=sys.stderr)
        return
    groups = {}
    for r in results:
        groups.setdefault((r["config"], r["dtype"]), []).append(r)
    fig, axes = plt.subplots(1, len(groups), figsize=(6 * len(groups), 4.5), squeeze=False)
    for ax, ((cname, dtype), rows) in zip(axes[0], groups.items(), strict=False):
        for n in kw["peers"]:
            pts = [(r["size"], r["times"][n]) for r in rows if isinstance(r["times"].get(n), float)]
            if pts:
                opt = P.PEERS[n][1]
                ax.loglog(
                    *zip(*pts, strict=False),
                    "o-" if opt else "k--" if n == "bw_par" else "k:",
                    label=n,
                    alpha=1.0 if opt else 0.6,
                )
        ax.set(title=f"RMSprop step, {cname}, {dtype}", xlabel="elements", ylabel="seconds / step")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
