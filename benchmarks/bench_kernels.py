"""Kernel performance against the CPU targets of the optimizer issue.

Run::

    python benchmarks/bench_kernels.py            # everything, Markdown to stdout
    python benchmarks/bench_kernels.py --quick    # fewer repeats

Sections (each in its own subprocess, so torch's and numba's OpenMP pools
never share a process, and so the cache measurements start cold):

* ``bandwidth``: 10M float32/float64, the fused update (``RMSprop.apply``)
  against a trivial numba prange kernel that moves the same bytes, and
  against the same update written with NumPy array operations.
* ``small``: ``apply()`` on a single 10-element variable.
* ``many``: 200 tensors x 1k elements in one ``apply``, against
  ``torch.optim.RMSprop(foreach=True)`` when torch is installed.
* ``threshold``: the serial and parallel kernels per size, to place
  ``_config.PARALLEL_THRESHOLD_BYTES``.
* ``cache``: import + first step, with a cold and with a warm
  ``NUMBA_CACHE_DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def _timeit(fn, repeat: int, number: int = 1) -> float:
    """Median seconds per call over ``repeat`` rounds of ``number`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def _timeit_pair(fa, fb, repeat: int):
    """Median seconds of ``fa`` and ``fb``, timed alternately so drift hits both alike."""
    fa(), fb()
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def _grads_like(xs, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(x.shape) * 1e-2).astype(x.dtype) for x in xs]


# ---------------------------------------------------------------- sections
def section_bandwidth(args) -> dict:
    import numpy as np

    import numba_rmsprop as nr
    import peers

    out = {}
    n = args.n_large
    for dtype in (np.float32, np.float64):
        for cfg_name, kw in (("plain", {}), ("centered+momentum", dict(momentum=0.9, centered=True))):
            cfg = peers.CONFIGS[cfg_name]
            xs = [np.zeros(n, dtype)]
            gs = _grads_like(xs)
            opt = nr.RMSprop(learning_rate=1e-3, **kw)
            bw = peers.bandwidth_stepper([np.zeros(n, dtype)], cfg, parallel=True)
            ours, t_bw = _timeit_pair(lambda: opt.apply(gs, xs), lambda: bw.step(gs), args.repeat)
            npy = peers.numpy_stepper([np.zeros(n, dtype)], cfg)
            t_np = _timeit(lambda: npy.step(gs), max(3, args.repeat // 2))
            nbytes = n * np.dtype(dtype).itemsize * (3 + 2 * cfg.n_state)  # read x, g, state; write x, state
            out[f"{np.dtype(dtype).name}/{cfg_name}"] = dict(
                ours_ms=ours * 1e3, same_traffic_ms=t_bw * 1e3, numpy_ms=t_np * 1e3,
                fraction_of_bound=t_bw / ours, numpy_over_ours=t_np / ours,
                ours_GBps=nbytes / ours / 1e9)
    return out


def section_small(args) -> dict:
    import numpy as np

    import numba_rmsprop as nr

    out = {}
    configs = {
        "plain": {},
        "user-story": dict(learning_rate=nr.schedules.CosineDecay(0.01, 1000), momentum=0.9,
                           centered=True, weight_decay=1e-4, global_clipnorm=1.0, use_ema=True,
                           gradient_accumulation_steps=4),
    }
    for name, kw in configs.items():
        for dtype in (np.float32, np.float64):
            x = [np.zeros(10, dtype)]
            g = _grads_like(x)
            opt = nr.RMSprop(**kw)
            out[f"{np.dtype(dtype).name}/{name}_us"] = _timeit(lambda: opt.apply(g, x), args.repeat, 2000) * 1e6
    return out


def section_many(args) -> dict:
    import numpy as np

    import numba_rmsprop as nr

    out = {}
    for count, size in ((200, 1000), (1000, 100)):
        xs = [np.zeros(size, np.float32) for _ in range(count)]
        gs = _grads_like(xs)
        opt = nr.RMSprop(learning_rate=1e-3)
        out[f"ours_{count}x{size}_us"] = _timeit(lambda: opt.apply(gs, xs), args.repeat, 20) * 1e6
    return out


def section_many_torch(args) -> dict:
    import numpy as np

    import peers

    out = {}
    try:
        import torch  # noqa: F401
    except ImportError:
        return {"torch": "not installed (pip install torch==2.13.0)"}
    for count, size in ((200, 1000), (1000, 100)):
        xs = [np.zeros(size, np.float32) for _ in range(count)]
        gs = _grads_like(xs)
        st = peers.torch_stepper(xs, peers.CONFIGS["plain"], eps_mode="zero", foreach=True)
        out[f"torch_foreach_{count}x{size}_us"] = _timeit(lambda: st.step(gs), args.repeat, 20) * 1e6
    x = [np.zeros(10, np.float32)]
    st = peers.torch_stepper(x, peers.CONFIGS["plain"], eps_mode="zero", foreach=True)
    g = _grads_like(x)
    out["torch_10_elements_us"] = _timeit(lambda: st.step(g), args.repeat, 500) * 1e6
    return out


def section_threshold(args) -> dict:
    import numba
    import numpy as np

    from numba_rmsprop import _cpu as K

    out = {}
    for n in (1_000, 4_000, 16_000, 32_000, 64_000, 256_000, 1_000_000):
        x, g, v = np.zeros(n, np.float32), np.full(n, 0.01, np.float32), np.zeros(n, np.float32)
        f = np.float32
        a = (x, g, v, None, None, None, None, None, None, None, None, None, None,
             f(1e-3), f(0.9), f(0.1), f(1e-7), f(0), f(0), f(0), False)
        t_ser = _timeit(lambda: K.update_serial(*a), args.repeat, 20)
        t_par = _timeit(lambda: K.launch_parallel(K.update_parallel, *a, numba.get_num_threads()),
                       args.repeat, 20)
        out[str(n)] = dict(serial_us=t_ser * 1e6, parallel_us=t_par * 1e6)
    return out


def section_cache(args) -> dict:
    code = ("import time; t0 = time.perf_counter(); import numpy as np, numba_rmsprop as nr; "
            "x = [np.zeros(10, np.float32)]; nr.RMSprop().apply([np.ones(10, np.float32)], x); "
            "print(time.perf_counter() - t0)")
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "warm", "warm_again"):
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                               check=True)
            out[f"{label}_import_and_first_step_s"] = float(r.stdout.strip().splitlines()[-1])
    return out


SECTIONS = {
    "bandwidth": section_bandwidth,
    "small": section_small,
    "many": section_many,
    "many_torch": section_many_torch,
    "threshold": section_threshold,
    "cache": section_cache,
}


def _run_section(name: str, args, python: str) -> dict:
    cmd = [python, __file__, "--section", name, "--repeat", str(args.repeat),
           "--n-large", str(args.n_large)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _report(results: dict) -> str:
    import platform

    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}", ""]
    bw = results.get("bandwidth", {})
    if "error" not in bw:
        lines += ["| 10M elements | ours (ms) | same-traffic kernel (ms) | fraction of bound | NumPy (ms) | NumPy / ours | GB/s |",
                  "|---|---|---|---|---|---|---|"]
        for k, r in bw.items():
            lines.append(f"| {k} | {r['ours_ms']:.2f} | {r['same_traffic_ms']:.2f} | {r['fraction_of_bound']:.2f} "
                         f"| {r['numpy_ms']:.1f} | {r['numpy_over_ours']:.1f}x | {r['ours_GBps']:.1f} |")
        lines.append("")
    for name in ("small", "many", "many_torch", "cache"):
        r = results.get(name, {})
        lines.append(f"**{name}**: " + ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}"
                                                 for k, v in r.items()))
    th = results.get("threshold", {})
    if "error" not in th and th:
        lines += ["", "| n | serial (us) | parallel (us) |", "|---|---|---|"]
        lines += [f"| {n} | {r['serial_us']:.1f} | {r['parallel_us']:.1f} |" for n, r in th.items()]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--section", choices=sorted(SECTIONS))
    p.add_argument("--sections", nargs="*", default=list(SECTIONS))
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--n-large", type=int, default=10_000_000)
    p.add_argument("--quick", action="store_true", help="5 repeats")
    p.add_argument("--torch-python", default=sys.executable,
                   help="interpreter with torch installed, for the 'many_torch' section")
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args(argv)
    if args.quick:
        args.repeat = 5
    if args.section:
        print(json.dumps(SECTIONS[args.section](args)))
        return
    results = {}
    for name in args.sections:
        python = args.torch_python if name == "many_torch" else sys.executable
        results[name] = _run_section(name, args, python)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    print(_report(results))


if __name__ == "__main__":
    main()
