"""Plots of a report's raw results (``report.py --json FILE``), for the docs.

    python -m benchmarks.report --preset workloads --json docs/reports/workloads.json \\
        --out-md docs/reports/workloads.md
    python -m benchmarks.plots docs/reports/workloads.json docs/reports

Writes one PNG per section it knows (``fits_vs_peers``, ``latency``, ``training``,
``many_vs_jax``) into
the folder, each with the machine-independent facts in its title; the numbers are the
report's, nothing is measured here.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def fits_vs_peers(r, ax):
    rows = {n: v for n, v in r["rows"].items() if "seconds" in v}
    names = list(rows)[::-1]
    seconds = [rows[n]["seconds"] for n in names]
    bars = ax.barh(range(len(names)), seconds, color="tab:blue", label="time for all fits")
    for bar, n in zip(bars, names, strict=True):
        ax.annotate(
            f" {rows[n]['seconds']:.2f} s, loss {rows[n]['loss']:.2e}",
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            va="center",
            fontsize=8,
        )
    ax.set_yticks(range(len(names)), [n.replace(", scaled", ",\nscaled") for n in names])
    ax.set_xscale("log")
    ax.set_xlim(min(seconds) / 2, max(seconds) * 20)  # room for the labels
    ax.set(
        title=f"{r['k']:,} per-pixel fits a exp(-t/tau) + c ({r['steps']} RMSprop steps)",
        xlabel="seconds (log scale)",
    )
    ax.legend(loc="upper right")


def latency(r, ax):
    pct = ("p50", "p90", "p99")
    width = 0.2
    for i, (impl, nb) in enumerate(
        [(i, n) for i in ("ours", "handwritten") for n in ("alone", "busy")]
    ):
        us = [r[nb][impl][p] * 1e6 for p in pct]
        ax.bar(np.arange(3) + (i - 1.5) * width, us, width, label=f"{impl}, {nb}")
    ax.set_xticks(range(3), pct)
    ax.set_yscale("log")
    ax.set(title="apply latency, 256x128 float32", xlabel="percentile", ylabel="microseconds (log)")
    ax.legend()


def training(r, ax):
    names = [v for v in ("ours", "handwritten", "torch") if isinstance(r.get(v), dict)]
    loop = [np.median(r[v]["loop"]) for v in names]
    upd = [np.median(r[v]["update"]) for v in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, loop, 0.4, label="whole loop (NumPy MLP + update)")
    ax.bar(x + 0.2, upd, 0.4, label="update alone")
    ax.set_xticks(x, names)
    ax.set_yscale("log")
    ax.set(title="MLP training loop, median round", xlabel="update", ylabel="seconds (log)")
    ax.legend()


def many_vs_jax(r, ax):
    models = list(r["models"])
    names = [n for n, v in r["models"][models[0]]["rows"].items() if "median" in v]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        medians = [r["models"][m]["rows"][name]["median"] for m in models]
        bars = ax.bar(np.arange(len(models)) + (i - (len(names) - 1) / 2) * width, medians, width)
        bars.set_label(name)
        for bar, v in zip(bars, medians, strict=True):
            ax.annotate(
                f"{v:.2f} s", (bar.get_x() + bar.get_width() / 2, v), ha="center", fontsize=8
            )
    first = r["models"][models[0]]
    ax.set_xticks(range(len(models)), models)
    ax.set(
        title=f"{first['k']:,} fits of 3 parameters, {first['steps']} RMSprop steps "
        "(median of interleaved repeats)",
        xlabel="model",
        ylabel="seconds",
    )
    ax.legend(fontsize=8)


PLOTS = {
    "fits_vs_peers": fits_vs_peers,
    "latency": latency,
    "training": training,
    "many_vs_jax": many_vs_jax,
}


def main(argv=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src, out = (argv or sys.argv[1:])[:2]
    with open(src, encoding="utf-8") as fh:
        results = json.load(fh)
    for name, draw in PLOTS.items():
        r = results.get(name)
        if not r or "error" in r:
            continue
        fig, ax = plt.subplots(figsize=(9, 3.6))
        draw(r, ax)
        fig.tight_layout()
        path = os.path.join(out, f"{name}.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
