"""Side-by-side report: the asv suites' measurements at full size, as one Markdown document.

Each section calls a measurement function of a ``bench_*`` suite in its own
fresh interpreter (thread pools never meet; first calls start from nothing)
and prints a table, after the machine description and the exact command.

* ``--preset workloads`` (issue #8, default): ``training`` (MLP loop: ours,
  hand-written kernel, torch), ``latency`` (256x128 apply p50/p90/p99, alone
  and beside a busy process), ``first_call`` (import + first apply, first
  compiled minimize with a new objective; cold and warm cache), ``loop_limit``
  (compiled minimize vs a hand-written loop), ``small`` (10 elements vs optax, torch),
  ``many`` (``minimize_many``), ``many_vs_jax`` (many fits against ``jax.vmap`` +
  optax, two threads against one), ``fits_vs_peers`` (per-pixel fits against loops of
  scipy's ``curve_fit`` / ``least_squares`` and ``jax.vmap(optax.rmsprop)``).
* ``--preset kernels``: ``peers`` (``compare_peers``: NumPy, torch, optax, Keras; the
  README table), ``bandwidth`` (10M vs same-traffic kernel and NumPy),
  ``tensors`` (many small tensors), ``threshold`` (serial/parallel crossover),
  ``minimize`` (loop overhead), ``cuda`` (GB/s; skipped without a GPU).
* ``--preset side_by_side`` (``side_by_side.py``): ``time_to_loss`` (against
  BFGS/L-BFGS-B), ``torch_loop`` (minibatch logistic regression vs a torch loop).
* ``--preset stream`` (``bench_stream.py``, issue #12): ``stream_memory`` (peak RSS
  of a streamed run over a Zarr store 8x the buffer), ``stream_throughput``
  (streamed steps/s against the data in memory).
* ``--preset all``: all four.

    python -m benchmarks.report [--preset kernels] [--set training.steps=2000] [--quick]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

if __package__ in (None, ""):  # run as a file: python benchmarks/report.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

import numpy as np  # noqa: E402

from . import common as C  # noqa: E402

NAN = float("nan")


def fmt_training(r, kw):
    rows, k = [], 1000 / kw["steps"]
    for v in ("ours", "handwritten", "torch"):
        d = r.get(v)
        if not isinstance(d, dict):
            rows.append([v, d or "not run"] + [""] * 5)
            continue
        loop, upd = np.array(d["loop"]) * k, np.array(d["update"]) * k
        rows.append(
            [
                v,
                C.fmt_time(np.median(loop)),
                C.fmt_time(loop.min()),
                C.fmt_time(np.median(upd)),
                f"{np.median(upd / loop):.0%}",
                f"{d['first_losses']:.3f} -> {d['last_losses']:.4f}",
                "yes" if d["decreasing"] else "NO",
            ]
        )
    a = r["agreement"]
    torch = a.get("run_max_rel_diff_torch")
    return C.md_table(
        [
            "update",
            "loop / 1000 steps (median)",
            "(best)",
            "update / 1000 steps",
            "update share",
            "mean loss, first -> last 100 steps*",
            "finite, decreasing",
        ],
        rows,
    ) + [
        "",
        f"ours / hand-written (median of per-round ratios): whole loop "
        f"**{r.get('ratio_loop', NAN):.2f}x**, update alone **{r.get('ratio_update', NAN):.2f}x**.",
        f"Agreement, ours vs hand-written: {a['one_step_max_ulps']} float32 ulps after 3 steps "
        "from "
        f"the same state; weights after the run: {a.get('run_max_rel_diff_handwritten', NAN):.1e} "
        "relative to max |w|" + (f" (torch: {torch:.1e})." if torch is not None else "."),
        "*: of all steps each variant took (warm-up and rounds); a quarter of them if fewer "
        "than 400.",
        f"784-128-10 MLP, float32, batch 64, {kw['steps']} steps per round, {kw['repeat']} rounds "
        f"interleaved (order rotated), {kw['n_samples']} synthetic MNIST-like samples; "
        "RMSprop(learning_rate=1e-3, momentum=0.9, centered=True). torch: "
        "`torch.optim.RMSprop(foreach=True)` on `torch.from_numpy` views, gradients copied into "
        "`.grad` (in its update time), eps kept inside the square root by shifting `square_avg` "
        "by eps (one extra `_foreach_add_` per step): the same math.",
    ]


def fmt_latency(r, kw):
    rows = [
        [impl, nb] + [C.fmt_time(r[nb][impl][p]) for p in ("p50", "p90", "p99")]
        for impl in ("ours", "handwritten")
        for nb in ("alone", "busy")
    ]
    return C.md_table(["apply", "neighbour", "p50", "p90", "p99"], rows) + [
        "",
        f"One 256x128 float32 variable, momentum=0.9, centered=True; {kw['calls']} single "
        'calls each, ours and the hand-written serial kernel alternating; "busy": a separate '
        "process burning one core with NumPy work meanwhile.",
    ]


#: The first-call targets of issue 21, seconds from after ``import numba_rmsprop``: (warm
#: cache, cold cache); None where the issue sets none. "With a warm Numba cache" an @njit
#: objective is cached too when it is ``cache=True``; a new one compiles (that row shows
#: what a first compile of it costs).
FIRST_CALL_TARGETS = {
    "apply plain": (0.1, 0.7),
    "apply momentum+centered+ema": (0.1, 0.7),
    "minimize, cached @njit objective": (0.35, None),
    "minimize, new @njit objective": (None, 2.5),
    "minimize, Python objective": (0.2, None),
}


def fmt_first_call(r, kw):
    rows = []
    for name, key in (
        ("apply plain", "first_apply"),
        ("apply momentum+centered+ema", "first_apply"),
        ("minimize, cached @njit objective", "first_minimize"),
        ("minimize, new @njit objective", "first_minimize"),
        ("minimize, Python objective", "first_minimize"),
    ):
        if name not in r:
            continue
        cells = []
        for c, target in zip(("cold", "warm"), FIRST_CALL_TARGETS[name][::-1], strict=True):
            t = r[name][c][key]
            verdict = "" if target is None else f" ({'meets' if t <= target else 'over'} {target})"
            cells.append(f"{r[name][c]['import']:.3f} + **{t:.3f}**{verdict}")
        split = r[name].get("warm, split")
        if split:
            cells.append(
                " + ".join(
                    f"{split.get(part, 0.0):.3f}"
                    for part in (
                        "numba_runtime",
                        "objective_imports",
                        "numba_registries",
                        "objective_compile",
                    )
                )
                + f" + **{split['package']:.3f}**"
            )
        rows.append([name, *cells])
    imp = r["import"]
    header = [
        "first call",
        "cold cache: import + call (target)",
        "warm cache: import + call (target)",
        "warm call = numba's runtime + objective's imports + numba's registries + "
        "objective's compile + this package",
    ]
    return C.md_table(header, rows) + [
        "",
        "Each in a fresh interpreter (start-up excluded) with an empty, then the filled, "
        "NUMBA_CACHE_DIR; the call is timed from after `import numba_rmsprop`, as the targets "
        "are (seconds, in brackets). apply: variables of 10, 1000 and 100k float32 elements "
        "(grouped and prange kernels). minimize: 100 steps, momentum 0.9, on a 10-parameter "
        "quadratic (`g @ x`), in the compiled loop; the cached @njit objective is "
        "`cache=True`, cached by the cold child; the new one is written to a new temporary "
        "module for every run; the Python one is called each step (the compiled step). "
        "No run imports scipy.optimize. Last column: one more warm child timing first "
        "numba's runtime (NRT; loaded code links against it), then, for the cached "
        "objective, what its code imports as it loads (its `@` lives in numba.np.arraymath, "
        "whose BLAS check imports scipy.linalg), for the new one numba's registries (every "
        "typing and lowering registry and scipy.linalg: any compile loads them first; this "
        "package's cached kernels and a cached objective load without them) and the "
        "objective's own compilation (numba compiles it for its first caller, whoever that "
        "is), then the call: what is left is this package's own share. "
        f"`import numba_rmsprop` alone: {imp['import']:.3f} s, then numba and the CPU kernel "
        f"definitions {imp['import_cpu_backend']:.3f} s.",
    ]


def fmt_loop_limit(r, kw):
    return C.md_table(
        ["loop", "per step (best)"],
        [
            [
                "`nr.minimize(quad_njit, x0, jac=True, options=dict(maxiter=N, learning_rate=1e-2, "
                "momentum=0.9))`",
                C.fmt_time(r["ours"]),
            ],
            [
                "hand-written `@njit` loop: same objective, fused update",
                C.fmt_time(r["handwritten"]),
            ],
            [
                "the hand-written loop, objective passed as a first-class function (as ours)",
                C.fmt_time(r["handwritten, function type"]),
            ],
        ],
    ) + [
        "",
        f"Ratio (median of interleaved runs): **{r['ratio']:.2f}x** (target <= 1.3x); "
        f"first-class function / direct call: {r['ratio_function_type']:.2f}x; "
        f"N = {kw['steps']}, {kw['repeat']} runs each; final x agree to {r['max_abs_dx']:.1e}.",
    ]


def fmt_times(header, note=""):
    """A formatter for ``{name: seconds}``, with a ``/ first`` column."""

    def fmt(r, kw):
        base = next(iter(r.values()))
        rows = [
            [
                k,
                C.fmt_time(v) if isinstance(v, float) else v,
                f"{v / base:.2f}x" if isinstance(v, float) and isinstance(base, float) else "",
            ]
            for k, v in r.items()
        ]
        return C.md_table([header, "time", "/ first row"], rows) + (["", note] if note else [])

    return fmt


def fmt_minimize(r, kw):
    py = r["python loop, NumPy objective"] - r["objective alone (Python)"]
    comp = r["compiled loop, @njit objective"]
    return fmt_times("per step (10-parameter quadratic unless named)")(r, kw) + [
        "",
        f"Python loop overhead (objective excluded) {C.fmt_time(py)} (target <= 3 us); "
        f"compiled loop {C.fmt_time(comp)} per step (target <= 0.3 us), "
        f"{r['python loop, NumPy objective'] / comp:.1f}x faster than the Python loop "
        "(target >= 20x).",
    ]


def fmt_bandwidth(r, kw):
    rows = [
        [
            k,
            C.fmt_time(d["ours"]),
            C.fmt_time(d["bound"]),
            f"{d['fraction_of_bound']:.2f}",
            C.fmt_time(d["numpy"]),
            f"{d['numpy'] / d['ours']:.1f}x",
            f"{d['GBps']:.1f}",
        ]
        for k, d in r.items()
    ]
    return C.md_table(
        [
            f"{kw['n_large']:,} elements",
            "ours",
            "same-traffic kernel",
            "fraction of bound",
            "NumPy",
            "NumPy / ours",
            "GB/s",
        ],
        rows,
    )


def fmt_lines(r, kw):
    return "\n".join(r["lines"]).strip().splitlines()


def fmt_peers(r, kw):
    from . import compare_peers

    return compare_peers.markdown(r, kw)


def fmt_threshold(r, kw):
    r = dict(r)
    missing = r.pop("unavailable", {})
    cols = sorted({k for d in r.values() for k in d})
    lines = C.md_table(
        ["float32 elements (MiB)"] + cols,
        [
            [f"{int(n):,} ({int(n) * 4 / 2**20:.2g})"]
            + [C.fmt_time(d[c]) if c in d else "" for c in cols]
            for n, d in r.items()
        ],
    )
    lines += [
        "",
        "momentum + centered; `+BLAS`: each call follows a 256x512 @ 512x512 float32 "
        "matmul (OpenBLAS's pool then spins on the other cores, as between the steps of "
        "a training loop).",
    ]
    return lines + [f"{layer}: not available ({why})" for layer, why in missing.items()]


def fmt_many(r, kw):
    lines = []
    for part, title in (
        ("per_run_step", "k runs of the 10-parameter quadratic (compiled)"),
        ("pixel_fit", "per-pixel decay fit (3 parameters, compiled)"),
        ("vectorized_overhead", "vectorized=True, k = 1000, n = 10"),
    ):
        rows = []
        for k, v in r[part].items():
            if isinstance(v, float) and k.endswith("(s)"):  # not "1 thread(s)"
                rows.append([k, f"{v:.2f} s"])
            elif isinstance(v, float) and ("ratio" in k or "speedup" in k or "/" in k or "|" in k):
                rows.append([k, f"{v:.3g}"])
            else:
                rows.append([k, C.fmt_time(v) if isinstance(v, float) else str(v)])
        lines += [f"**{title}**", ""] + C.md_table(["measurement", "value"], rows) + [""]
    return lines + [
        "Targets: per run-step on one thread <= 1.5x one run's per-step cost; two "
        "threads >= 1.7x one; the per-pixel fit >= 20x a Python loop of "
        "nr.minimize; the vectorized loop's own cost <= 3x one 10-element apply."
    ]


def fmt_fits_vs_peers(r, kw):
    rows = []
    for name, v in r["rows"].items():
        if "skipped" in v:
            rows.append([name, v["skipped"], "", "", "", ""])
            continue
        first = "" if v["first"] != v["first"] else C.fmt_time(v["first"])
        rows.append(
            [
                name,
                f"**{C.fmt_time(v['seconds'])}**",
                f"{v['time / minimize_many']:.2f}",
                f"{v['loss']:.3e}",
                f"{v['tau_err']:.3f}",
                first or v["note"],
            ]
        )
    header = ["method", "time", "time / minimize_many", "mean final loss", "median abs(tau - tau*)"]
    return C.md_table(header + ["first call / note"], rows) + [
        "",
        f"{r['k']:,} curves a exp(-t/tau) + c on 32 points, 3 parameters each, "
        f"{r['steps']} RMSprop steps (Keras math, learning rate 0.05) for the first three "
        "rows; the scipy loops run each fit to convergence (their loss is the least-squares "
        "optimum: the RMSprop rows stop after a fixed number of steps, short of it). "
        "Times: best of the repeats after a first call (which includes compilation).",
    ]


def fmt_many_vs_jax(r, kw):
    from .bench_many_vs_jax import fmt

    return fmt(r, kw)


def fmt_cuda(r, kw):
    if "skipped" in r:
        return [f"Skipped: {r['skipped'].rstrip('.')}."]
    rows = [
        [
            f"{d['n']:,}",
            d["dtype"],
            d["config"],
            f"{d['apply_GBps']:.0f}",
            f"{d['kernel_GBps']:.0f}" if "kernel" in d else "n/a",
            f"{d['copy_GBps']:.0f}",
            f"{d['kernel_over_copy']:.2f}" if "kernel" in d else "n/a",
        ]
        for d in r["rows"]
    ]
    return (
        [f"GPU: {r['gpu']}", ""]
        + C.md_table(
            [
                "elements",
                "dtype",
                "config",
                "apply GB/s",
                "kernel GB/s",
                "copy GB/s",
                "kernel/copy",
            ],
            rows,
        )
        + [
            "",
            "200 x 4096 float32 variables: "
            + ", ".join(
                f"{k} {v * 1e3:.1f} us per step" for k, v in r["many_small_200x4096_ms"].items()
            ),
        ]
    )


def fmt_stream_memory(r, kw):
    return C.md_table(
        [
            "store (rows x 3144 B)",
            "chunk of X",
            "shuffle buffer",
            "batch",
            "RSS before",
            "peak RSS",
            "peak - before",
            "peak - before - buffer",
        ],
        [
            [
                f"{r['store_mb']:.0f} MiB ({r['n_samples']:,} rows)",
                f"{r['chunk_mb']:.1f} MiB ({r['chunk_rows']:,} rows)",
                f"{r['buffer_mb']:.0f} MiB ({r['buffer_rows']:,} rows)",
                r["batch"],
                f"{r['baseline_mb']:.0f} MiB",
                f"{r['peak_mb']:.0f} MiB",
                f"{r['above_baseline_mb']:.0f} MiB",
                f"**{r['above_buffer_mb']:.0f} MiB**",
            ]
        ],
    ) + [
        "",
        f"One epoch ({r['nit']} steps) of `nr.minimize(linear_probe_njit, ..., "
        "options=dict(batch_size=..., shuffle_buffer=...))` on `da.from_zarr` arrays of an "
        f"uncompressed on-disk store ({r['store_mb'] / r['buffer_mb']:.1f}x the buffer), then the "
        f"final full-data evaluation over the buffer: {r['seconds']:.1f} s in all (writing the "
        f"store: {r['write_seconds']:.1f} s). A fresh child process; 'before': its RSS after "
        "imports and a small warm-up run, to which the peak (VmHWM) was reset"
        + ("" if r["peak_was_reset"] else " (reset not allowed here: the peak is since start)")
        + ".",
    ]


def fmt_stream_throughput(r, kw):
    s = r["setup"]
    rows = []
    for name in [k for k in r if k != "setup"]:
        d = r[name]
        rows.append(
            [
                name,
                f"{d['steps_per_s']['memory']:.0f}",
                f"{d['steps_per_s']['streamed']:.0f}",
                f"**{d['ratio']:.2f}**",
                ", ".join(f"{x:.2f}" for x in d["ratios"]),
                f"{d['whole_run_steps_per_s']['memory']:.0f} / "
                f"{d['whole_run_steps_per_s']['streamed']:.0f}",
            ]
        )
    return C.md_table(
        [
            "objective",
            "in memory, steps/s",
            "streamed, steps/s",
            "streamed / in memory",
            "per round",
            "whole call incl. final evaluation, steps/s (mem / streamed)",
        ],
        rows,
    ) + [
        "",
        f"{s['data_mb']:.0f} MiB of MNIST-like rows ({s['n_samples']:,}) in an uncompressed "
        f"Zarr store, chunks of {s['chunk_mb']:.1f} MiB ({s['chunk_rows']:,} rows), shuffle buffer "
        f"{s['buffer_mb']:.0f} MiB ({s['buffer_rows']:,} rows), batch {s['batch']}; in memory: the "
        "same arrays as NumPy arrays. Steady state: (T(steps) - T(short)) over "
        f"steps - short = {s['steps']} - {s['short']}, median of {s['repeat']} interleaved rounds. "
        "`mlp`: the 784-128-10 NumPy MLP (Python loop); `probe`: a cheap `@njit` linear model "
        "(compiled loop), bound by reading the rows.",
    ]


def fmt_dask(r, kw):
    s = r["setup"]
    here = r["here, all threads"]
    rows = []
    for name, v in r.items():
        if name == "setup" or name.endswith(", blocks"):
            continue
        blocks = r.get(name + ", blocks")
        rows.append(
            [
                name + (f" ({blocks} tasks)" if blocks else ""),
                C.fmt_time(v),
                f"{v / here:.2f}x" if name.startswith(("here", "cluster, blocks")) else "",
            ]
        )
    return C.md_table(["", "time", "/ here, all threads"], rows) + [
        "",
        f"k = {s['k']:,} decay curves (3 parameters, 32 points, {s['steps']} steps each, "
        f"`@njit`, compiled loop); here: {s['threads_here']} thread(s); cluster: LocalCluster of "
        f"{s['workers']} processes x 1 thread on the same machine; best of {s['repeat']} calls "
        "each, every result bit for bit the local one. Per block: "
        f"{s['k_overhead']} runs of 1 step in blocks of 1 run, time / blocks.",
    ]


#: name -> (title, "module.function" measuring it, formatter, full-size and --quick arguments)
SECTIONS = {
    "training": (
        "MLP training loop (784-128-10, float32)",
        "bench_training.measure",
        fmt_training,
        dict(steps=1000, repeat=5, n_samples=8192),
        dict(steps=10, repeat=1, n_samples=256, warmup=2),
    ),
    "latency": (
        "apply latency, 256x128 float32",
        "bench_step.latency",
        fmt_latency,
        dict(calls=5000),
        dict(calls=50),
    ),
    "first_call": (
        "First call: import, compile or load",
        "bench_compile.first_calls",
        fmt_first_call,
        {},
        {},
    ),
    "loop_limit": (
        "Compiled minimize loop against its limit",
        "bench_minimize.loop_limit",
        fmt_loop_limit,
        dict(steps=100_000, repeat=7),
        dict(steps=300, repeat=1),
    ),
    "small": (
        "apply on one 10-element variable, against peers",
        "bench_step.small_apply",
        fmt_times(
            "10-element step (float32, plain unless named)",
            "Interleaved in one "
            "process. optax: `optax.rmsprop(eps_in_sqrt=True)` under `jax.jit` with "
            "donated buffers; torch: `torch.optim.RMSprop(foreach=True)`, eps=0.",
        ),
        dict(repeat=15, min_time=0.05),
        dict(repeat=2, min_time=0.0, extras=False),
    ),
    "peers": (
        "Step time against peers (ratio: peer / ours)",
        "compare_peers.table",
        fmt_peers,
        dict(sizes=[10, 1000, 100000, 10000000], configs=["plain"]),
        dict(
            sizes=[1000],
            configs=["centered+momentum"],
            repeat=1,
            min_time=0.0,
            warmup=1,
            check_steps=3,
        ),
    ),
    "bandwidth": (
        "Fused update against the same-traffic bound",
        "bench_step.bandwidth_table",
        fmt_bandwidth,
        dict(n_large=10_000_000, repeat=15, min_time=0.05),
        dict(n_large=10_000, repeat=2, min_time=0.0, dtypes=["float32"], configs=["plain"]),
    ),
    "tensors": (
        "Many small tensors",
        "bench_step.many_tensors",
        fmt_times("one apply, float32"),
        dict(repeat=15, min_time=0.05),
        dict(repeat=2, min_time=0.0),
    ),
    "many": (
        "minimize_many: many runs at once",
        "bench_many.measure",
        fmt_many,
        {},
        dict(
            per_run_step=dict(k=20, steps=20, repeat=1),
            pixel_fit=dict(k=50, steps=10, sample=5, repeat=1),
            vectorized_overhead=dict(k=20, steps=20, repeat=1),
        ),
    ),
    "fits_vs_peers": (
        "Per-pixel fits against scipy loops and jax.vmap(optax.rmsprop)",
        "bench_fits_vs_peers.measure",
        fmt_fits_vs_peers,
        dict(k=20000, steps=200, sample=200, repeat=3),
        dict(k=40, steps=5, sample=3, repeat=1),
    ),
    "many_vs_jax": (
        "Many fits: minimize_many against jax.vmap(optax.rmsprop), and threads",
        "bench_many_vs_jax.measure",
        fmt_many_vs_jax,
        dict(k=20000, steps=200, repeat=5, thread_k=2000, thread_steps=2000, thread_repeats=3),
        dict(k=40, steps=5, repeat=1, thread_k=8, thread_steps=5, thread_repeats=1),
    ),
    "threshold": (
        "Serial/parallel crossover, alone and in a loop with BLAS",
        "bench_step.threshold",
        fmt_threshold,
        dict(repeat=7),
        # quick: one layer, in the loop only (two children instead of eight)
        dict(repeat=1, sizes=[1000], layers=["tbb"], blas_modes=[True]),
    ),
    "minimize": (
        "minimize loop overhead",
        "bench_minimize.overhead",
        fmt_minimize,
        dict(steps=20000, repeat=7),
        dict(steps=50, repeat=1, minibatch=False),
    ),
    "time_to_loss": (
        "Deterministic problems: time to f - f* <= 1e-6, against scipy",
        "side_by_side.time_to_loss",
        fmt_lines,
        dict(repeat=5),
        dict(repeat=1),
    ),
    "torch_loop": (
        "Minibatch logistic regression: nr.minimize against a torch.optim.RMSprop loop",
        "side_by_side.torch_loop",
        fmt_lines,
        dict(repeat=5, steps=5000),
        dict(repeat=1, steps=20),
    ),
    "cuda": (
        "CUDA",
        "bench_cuda.measure",
        fmt_cuda,
        dict(sizes=[10_000_000, 100_000_000], repeat=20),
        dict(sizes=[1_000_000], repeat=3),
    ),
    "dask": (
        "minimize_many on a Dask LocalCluster against the same runs here",
        "bench_dask.measure",
        fmt_dask,
        dict(k=20000, steps=200, workers=2, repeat=3),
        dict(
            k=40,
            steps=5,
            workers=2,
            repeat=1,
            block_sizes=[10, None],
            k_overhead=10,
            scatter_mb=1.0,
        ),
    ),
    "stream_memory": (
        "Streaming from Zarr: peak memory against the shuffle buffer",
        "bench_stream.memory",
        fmt_stream_memory,
        dict(store_mb=2048, buffer_mb=256, chunk_mb=8, batch=1024),
        dict(store_mb=8, buffer_mb=1, chunk_mb=0.25, batch=64),
    ),
    "stream_throughput": (
        "Streaming from Zarr: steps per second against the data in memory",
        "bench_stream.throughput",
        fmt_stream_throughput,
        dict(data_mb=256, buffer_mb=64, chunk_mb=8, steps=2000, repeat=3),
        dict(data_mb=4, buffer_mb=1, chunk_mb=0.25, steps=10, repeat=1),
    ),
}
PRESETS = {
    "workloads": [
        "training",
        "latency",
        "first_call",
        "loop_limit",
        "small",
        "many",
        "fits_vs_peers",
        "many_vs_jax",
    ],
    "kernels": ["peers", "bandwidth", "tensors", "threshold", "minimize", "cuda"],
    "side_by_side": ["time_to_loss", "torch_loop"],
    "stream": ["stream_memory", "stream_throughput"],
    "dask": ["dask"],
}
PRESETS["all"] = list(
    dict.fromkeys(  # each section once
        PRESETS["workloads"]
        + PRESETS["kernels"]
        + PRESETS["side_by_side"]
        + PRESETS["stream"]
        + PRESETS["dask"]
    )
)


def call(func, kw):
    """``benchmarks.<module>.<function>(**kw)`` in this process."""
    module, name = func.split(".")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)(**kw)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="workloads")
    ap.add_argument("--sections", nargs="+", choices=list(SECTIONS), help="instead of a preset")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    ap.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="SECTION.ARG=JSON",
        help="override an argument, e.g. training.steps=2000 latency.calls=20000",
    )
    ap.add_argument("--threads", type=int, help="threads for numba, OpenMP, BLAS and torch")
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="run the sections in this process (default: one fresh child each)",
    )
    ap.add_argument("--json", metavar="FILE", help="also write the raw results")
    ap.add_argument("--out-md", metavar="FILE", help="also write the report")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return print(json.dumps(call(args.child[0], json.loads(args.child[1]))))
    C.set_threads(args.threads)
    names = args.sections or PRESETS[args.preset]
    kws = {n: dict(SECTIONS[n][4 if args.quick else 3]) for n in names}
    for item in args.set:
        key, value = item.split("=", 1)
        section, arg = key.split(".", 1)
        kws[section][arg] = json.loads(value)
    lines = C.report_header("numba-rmsprop benchmarks: " + ", ".join(names))
    results, t0 = {}, time.perf_counter()
    for n in names:
        print(f"[report] {n} {kws[n]}", file=sys.stderr, flush=True)
        try:
            func = SECTIONS[n][1]
            results[n] = call(func, kws[n]) if args.in_process else C.child_call(func, **kws[n])
            body = SECTIONS[n][2](results[n], kws[n])
        except Exception as exc:  # noqa: BLE001 - one failed section must not hide the others
            results[n] = {"error": f"{type(exc).__name__}: {exc}"[-2000:]}
            body = [f"Failed: `{results[n]['error'].splitlines()[-1]}`"]
        lines += [f"## {SECTIONS[n][0]}", "", f"Arguments: `{json.dumps(kws[n])}`", "", *body, ""]
    lines.append(f"Total: {time.perf_counter() - t0:.0f} s.")
    report = "\n".join(lines)
    print(report)
    for path, text in ((args.out_md, report), (args.json, json.dumps(results, indent=1))):
        if path:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
    return results


if __name__ == "__main__":
    main()
