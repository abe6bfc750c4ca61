#!/usr/bin/env python
"""Time numba_rmsprop ("ours") against peer RMSprop implementations.

For every (config, dtype, size) it

1. checks trajectory agreement: all steppers start from the same x0 and take
   ``--check-steps`` (default 10) steps with the same sequence of gradients;
   reported is ``max|x_peer - x_numpy| / lr`` over all steps and elements
   (for the ``numpy`` column: its float32/float64 deviation from a float64
   NumPy reference, i.e. the rounding noise floor), and
2. times one ``step`` per peer: warm-up, then ``--repeat`` repeats of a batch
   of steps sized to last >= ``--min-time`` seconds; the reported per-step time
   is the median over repeats.  Jitted peers block until ready inside step.
   By default every peer is timed in its own fresh interpreter (thread pools
   of torch/OpenMP, numba and XLA otherwise fight over the cores: e.g. a
   numba prange step after torch ran in the same process can take ms).

Peers (see benchmarks/peers.py): ours, numpy, torch (foreach, eps=0),
torch_shift (foreach, exact Keras eps via shifted state), optax (jit), keras
(JAX backend, stateless_apply under jit), bw_par / bw_ser (trivial numba
kernels moving exactly the bytes of the update: the same-traffic bound).

Ratios are ``peer time / ours`` (or ``/ bw_par`` when ours is not available);
"bound" is ``bw_par / ours`` = fraction of the same-traffic bound reached.

Gradients used: random sign, log-uniform magnitude in [1e-5, 1] -- realistic
small gradients for which the placement of eps matters.

Example::

    KERAS_BACKEND=jax python benchmarks/compare_peers.py \
        --sizes 10 1000 100000 10000000 --dtype float32 --skip-ours
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import traceback

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
# find numba_rmsprop in the working tree when it is not installed
sys.path.append(os.path.dirname(_HERE))
import peers as P  # noqa: E402

ALL_PEERS = list(P.PEERS)
DEFAULT_PEERS = ["ours", "numpy", "torch", "torch_shift", "optax", "keras",
                 "bw_par", "bw_ser"]


def _size(s: str) -> int:
    return int(float(s))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", type=_size,
                    default=[10, 1000, 100000, 10000000],
                    help="total elements per step (split over --ntensors)")
    ap.add_argument("--ntensors", type=int, default=1,
                    help="split each size into this many equal tensors")
    ap.add_argument("--dtype", nargs="+", default=["float32"],
                    choices=["float32", "float64"])
    ap.add_argument("--configs", nargs="+", default=["plain"],
                    choices=list(P.CONFIGS) + ["all"])
    ap.add_argument("--peers", nargs="+", default=DEFAULT_PEERS,
                    choices=ALL_PEERS)
    ap.add_argument("--skip-ours", action="store_true",
                    help="do not try to import numba_rmsprop")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.05,
                    help="seconds per timed repeat (steps batched to reach it)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--check-steps", type=int, default=10)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="repeat=3, min-time=0.01, warmup=2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-isolate", dest="isolate", action="store_false",
                    help="time all peers in this process (default: one "
                         "fresh subprocess per peer)")
    ap.add_argument("--stat", choices=["median", "min"], default="median",
                    help="statistic over repeats (min is more robust on a "
                         "loaded machine)")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for numba/torch/OpenMP (default: all cores)")
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out-md", default=None)
    ap.add_argument("--out-png", default=None)
    a = ap.parse_args(argv)
    if a.quick:
        a.repeat, a.min_time, a.warmup = 3, 0.01, 2
    if "all" in a.configs:
        a.configs = list(P.CONFIGS)
    if a.skip_ours:
        a.peers = [p for p in a.peers if p != "ours"]
    return a


# --------------------------------------------------------------------------
def make_data(size, ntensors, dtype, nsteps, seed):
    rng = np.random.default_rng(seed)
    per = max(1, size // ntensors)
    x0 = [rng.standard_normal(per).astype(dtype) for _ in range(ntensors)]

    def grads():
        out = []
        for _ in range(ntensors):
            mag = 10.0 ** rng.uniform(-5, 0, per)
            sgn = np.where(rng.random(per) < 0.5, -1.0, 1.0)
            out.append((sgn * mag).astype(dtype))
        return out

    return x0, [grads() for _ in range(max(1, nsteps))]


def build(name, x0, cfg):
    factory, _ = P.PEERS[name]
    return factory([x.copy() for x in x0], cfg)


def check_agreement(names, x0, glist, cfg):
    """Lock-step trajectories; returns {name: max|dx|/lr or error string}."""
    ref = P.numpy_stepper([x.copy() for x in x0], cfg)
    ref64 = P.numpy_reference_stepper(x0, cfg)
    steppers, out = {}, {}
    for n in names:
        if n == "numpy" or not P.PEERS[n][1]:
            continue
        try:
            steppers[n] = build(n, x0, cfg)
        except Exception as e:  # noqa: BLE001
            out[n] = _errstr(e)
    err = {n: 0.0 for n in steppers}
    err["numpy"] = 0.0
    for g in glist:
        ref.step(g)
        ref64.step([gi.astype(np.float64) for gi in g])
        xr = ref.params()
        err["numpy"] = max(err["numpy"], max(
            float(np.max(np.abs(a.astype(np.float64) - b), initial=0.0))
            for a, b in zip(xr, ref64.params())))
        for n, s in list(steppers.items()):
            try:
                s.step(g)
                e = max(float(np.max(np.abs(
                    np.asarray(a, np.float64) - b), initial=0.0))
                    for a, b in zip(s.params(), xr))
                err[n] = max(err[n], e)
            except Exception as ex:  # noqa: BLE001
                out[n] = _errstr(ex)
                del steppers[n]
                err.pop(n)
    for n, e in err.items():
        out[n] = e / cfg.learning_rate
    del steppers, ref, ref64
    gc.collect()
    return out


def measure_stepper(stepper, grads, repeat, min_time, warmup, stat="median"):
    for _ in range(warmup):
        stepper.step(grads)
    # calibrate number of steps per repeat
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            stepper.step(grads)
        dt = time.perf_counter() - t0
        if dt >= min_time or number >= 1 << 20:
            break
        number = max(number * 2, int(number * min_time / max(dt, 1e-9) * 1.1))
    per_step = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            stepper.step(grads)
        per_step.append((time.perf_counter() - t0) / number)
    return statistics.median(per_step) if stat == "median" else min(per_step)


def _errstr(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:80]


def fmt_t(t):
    if not isinstance(t, float):
        return "n/a"
    if t < 1e-3:
        return f"{t * 1e6:.2f} us"
    if t < 1:
        return f"{t * 1e3:.3f} ms"
    return f"{t:.3f} s"


# --------------------------------------------------------------------------
def _cases(args):
    for cname in args.configs:
        for dtype in args.dtype:
            for size in args.sizes:
                yield cname, dtype, size


def measure_peers_inprocess(args, names):
    """{(config, dtype, size): {peer: seconds-per-step or error string}}"""
    out = {}
    for cname, dtype, size in _cases(args):
        cfg = P.CONFIGS[cname]
        x0, glist = make_data(size, args.ntensors, dtype, 1, args.seed)
        times = out.setdefault((cname, dtype, size), {})
        for n in names:
            try:
                s = build(n, x0, cfg)
                times[n] = measure_stepper(s, glist[0], args.repeat,
                                        args.min_time, args.warmup, args.stat)
                del s
            except Exception as e:  # noqa: BLE001
                times[n] = _errstr(e)
                if os.environ.get("COMPARE_PEERS_DEBUG"):
                    traceback.print_exc()
            gc.collect()
            t = times[n]
            print(f"  {cname:>17} {dtype} n={size:>9} {n:>11}: "
                  f"{fmt_t(t) if isinstance(t, float) else t}",
                  file=sys.stderr, flush=True)
    return out


_SENTINEL = "@@COMPARE_PEERS_JSON@@"


def measure_peers_isolated(args, names):
    """Time each peer in its own fresh interpreter, so that thread pools of
    other libraries (torch's OpenMP, numba's, XLA's) cannot interfere."""
    import json
    import subprocess

    out = {}
    for n in names:
        cmd = [sys.executable, os.path.abspath(__file__), "--_worker",
               "--peers", n, "--sizes", *map(str, args.sizes),
               "--ntensors", str(args.ntensors), "--dtype", *args.dtype,
               "--configs", *args.configs, "--repeat", str(args.repeat),
               "--min-time", str(args.min_time), "--warmup", str(args.warmup),
               "--seed", str(args.seed), "--stat", args.stat]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        got = None
        for line in proc.stdout.splitlines():
            if line.startswith(_SENTINEL):
                got = json.loads(line[len(_SENTINEL):])
        for cname, dtype, size in _cases(args):
            key = (cname, dtype, size)
            t = (got or {}).get(json.dumps(list(key)), {}).get(n)
            if t is None:
                t = f"worker failed (rc={proc.returncode})"
            out.setdefault(key, {})[n] = t
    return out


def run(args):
    peers = list(args.peers)
    if args.isolate:
        timings = measure_peers_isolated(args, peers)
    else:
        timings = measure_peers_inprocess(args, peers)
    results = []
    for cname, dtype, size in _cases(args):
        cfg = P.CONFIGS[cname]
        row = {"config": cname, "dtype": dtype, "size": size,
               "ntensors": args.ntensors,
               "times": timings[(cname, dtype, size)], "errs": {}}
        if not args.no_check:
            x0, glist = make_data(size, args.ntensors, dtype,
                                  args.check_steps, args.seed)
            row["size"] = sum(x.size for x in x0)
            row["errs"] = check_agreement(peers, x0, glist, cfg)
            del x0, glist
            gc.collect()
        results.append(row)
    return results


def _worker(args):
    import json

    t = measure_peers_inprocess(args, args.peers)
    print(_SENTINEL + json.dumps({json.dumps(list(k)): v
                                  for k, v in t.items()}), flush=True)


def baseline_name(row):
    t = row["times"]
    if isinstance(t.get("ours"), float):
        return "ours"
    if isinstance(t.get("bw_par"), float):
        return "bw_par"
    return None


def markdown(results, args):
    lines = []
    import platform

    lines.append(f"Machine: {platform.processor() or platform.machine()}, "
                 f"{P.n_cores()} cores, {P.bench_threads()} threads; numpy {np.__version__}; "
                 f"ntensors={args.ntensors}; {args.stat} of {args.repeat} repeats "
                 f"(>= {args.min_time}s each); "
                 f"{'one process per peer' if args.isolate else 'in-process'}"
                 f"; load average before/after: {args.load_before:.2f} / "
                 f"{os.getloadavg()[0]:.2f}")
    lines.append("")
    groups = {}
    for r in results:
        groups.setdefault((r["config"], r["dtype"]), []).append(r)
    for (cname, dtype), rows in groups.items():
        names = [n for n in args.peers if any(n in r["times"] for r in rows)]
        base = baseline_name(rows[0]) or "?"
        lines.append(f"### {cname}, {dtype} -- time per step "
                     f"(ratio = peer / {base})")
        lines.append("")
        hdr = ["size"] + names
        if "ours" in names and "bw_par" in names:
            hdr.append("bound (bw_par/ours)")
        lines.append("| " + " | ".join(hdr) + " |")
        lines.append("|" + "---|" * len(hdr))
        for r in rows:
            b = baseline_name(r)
            tb = r["times"].get(b) if b else None
            cells = [f"{r['size']:,}"]
            for n in names:
                t = r["times"].get(n)
                if isinstance(t, float):
                    c = fmt_t(t)
                    if isinstance(tb, float) and n != b:
                        c += f" ({t / tb:.2f}x)"
                    cells.append(c)
                else:
                    cells.append(str(t) if t is not None else "")
            if len(hdr) > len(cells):
                to, tbw = r["times"].get("ours"), r["times"].get("bw_par")
                cells.append(f"{tbw / to:.0%}" if isinstance(to, float)
                             and isinstance(tbw, float) else "n/a")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if any(r["errs"] for r in rows):
            enames = [n for n in names if any(n in r["errs"] for r in rows)]
            lines.append(f"Trajectory agreement over {args.check_steps} steps:"
                         " max|x_peer - x_numpy| / lr "
                         "(numpy column: vs float64 NumPy reference)")
            lines.append("")
            lines.append("| size | " + " | ".join(enames) + " |")
            lines.append("|" + "---|" * (len(enames) + 1))
            for r in rows:
                cells = [f"{r['size']:,}"]
                for n in enames:
                    e = r["errs"].get(n)
                    cells.append(f"{e:.2e}" if isinstance(e, float)
                                 else str(e or ""))
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def plot(results, args, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not available; skipping plot", file=sys.stderr)
        return False
    groups = {}
    for r in results:
        groups.setdefault((r["config"], r["dtype"]), []).append(r)
    k = len(groups)
    fig, axes = plt.subplots(1, k, figsize=(6 * k, 4.5), squeeze=False)
    for ax, ((cname, dtype), rows) in zip(axes[0], groups.items()):
        for n in args.peers:
            pts = [(r["size"], r["times"][n]) for r in rows
                   if isinstance(r["times"].get(n), float)]
            if pts:
                xs, ys = zip(*pts)
                style = ("o-" if P.PEERS[n][1] else
                         "k--" if n == "bw_par" else "k:")
                ax.loglog(xs, ys, style,
                          label=n, alpha=1.0 if P.PEERS[n][1] else 0.6)
        ax.set_title(f"RMSprop step, {cname}, {dtype}")
        ax.set_xlabel("elements")
        ax.set_ylabel("seconds / step")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        for var in ("BENCH_NUM_THREADS", "NUMBA_NUM_THREADS",
                    "OMP_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args._worker:
        return _worker(args)
    if "ours" in args.peers:
        try:
            import numba_rmsprop

            numba_rmsprop.RMSprop  # noqa: B018 - must exist
        except Exception as e:  # noqa: BLE001
            print(f"ours unavailable ({_errstr(e)}); continuing without it",
                  file=sys.stderr)
            args.peers = [p for p in args.peers if p != "ours"]
    args.load_before = os.getloadavg()[0]
    results = run(args)
    md = markdown(results, args)
    print(md)
    if args.out_md:
        with open(args.out_md, "w") as f:
            f.write(md + "\n")
    if args.out_png:
        plot(results, args, args.out_png)
    return results


if __name__ == "__main__":
    main()
