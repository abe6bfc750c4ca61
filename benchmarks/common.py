"""What every suite and report script shares (as scipy's ``benchmarks/common.py``).

Timing, one set, on ``time.perf_counter``: :func:`interleaved` samples several
callables round-robin (order rotated each round, so drift and neighbours hit
all alike; calls per sample from :func:`calibrate`), :func:`ratio` is the
median of per-round ratios, :func:`percentiles` gives p50/p90/p99 and
:func:`best_of` times whole runs; :func:`cuda_event_ms` uses the GPU's clock.
Environment: :func:`set_threads`, :func:`bench_threads`, :func:`busy_process`,
:func:`run_child`; memory: :func:`rss_mb`, :func:`peak_rss_mb`,
:func:`reset_peak_rss`; reports: :func:`report_header` (machine and command),
:func:`md_table`, :func:`fmt_time`. Peer libraries are never imported here.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THREAD_VARS = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BENCH_NUM_THREADS",
)


class Benchmark:
    """Base class of the asv suites (scipy's ``common.Benchmark``)."""

    timeout = 180


def sized(full, smoke):
    """``full``, or ``smoke`` when ``$BENCH_SMOKE`` is set (the smoke test: wiring, not numbers)."""
    return smoke if os.environ.get("BENCH_SMOKE") else full


def need(module: str):
    """Import an optional peer, or raise NotImplementedError (asv and the smoke test: skip)."""
    try:
        return __import__(module, fromlist=["_"])
    except Exception as exc:  # ImportError, or a broken install
        raise NotImplementedError(f"{module} is not available: {exc}") from exc


def available(module: str) -> bool:
    try:
        return bool(need(module))
    except NotImplementedError:
        return False


# ------------------------------------------------------------------ timing
def calibrate(fn, min_time: float) -> int:
    """Calls of ``fn`` per sample so that a sample lasts at least ``min_time`` seconds."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or number >= 1 << 20:
            return number
        number = max(number * 2, int(number * min_time / max(dt, 1e-9) * 1.1))


def interleaved(fns: dict, repeat: int, min_time: float = 0.0, warmup: int = 1) -> dict:
    """``{name: array of seconds per call}``: ``repeat`` samples each, round ``r`` starting
    with the ``r``-th callable; ``min_time=0``: one call per sample (for percentiles)."""
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    number = {n: calibrate(fns[n], min_time) if min_time > 0 else 1 for n in names}
    out = {n: np.empty(repeat) for n in names}
    clock = time.perf_counter
    for r in range(repeat):
        for k in range(len(names)):
            n = names[(r + k) % len(names)]
            fn, m = fns[n], number[n]
            if m == 1:
                t0 = clock()
                fn()
                out[n][r] = clock() - t0
            else:
                t0 = clock()
                for _ in range(m):
                    fn()
                out[n][r] = (clock() - t0) / m
    return out


def ratio(samples: dict, a: str, b: str) -> float:
    """Median over rounds of ``samples[a][r] / samples[b][r]`` (interleaved samples)."""
    return float(np.median(np.asarray(samples[a]) / np.asarray(samples[b])))


def percentiles(samples, qs=(50, 90, 99)) -> dict:
    return {f"p{q}": float(np.percentile(samples, q)) for q in qs}


def best_of(fn, repeat: int):
    """Warm-up call, then ``repeat`` timed calls: ``(first, best, median, last result)``."""
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return first, min(times), statistics.median(times), out


def cuda_event_ms(cuda, fn, repeat: int) -> float:
    """Mean milliseconds of ``repeat`` back-to-back ``fn()`` between two CUDA events."""
    fn()
    cuda.synchronize()
    start, stop = cuda.event(), cuda.event()
    start.record()
    for _ in range(repeat):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / repeat


# ------------------------------------------------------------- environment
def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def bench_threads() -> int:
    """Threads the measured libraries may use: ``$BENCH_NUM_THREADS`` or all cores."""
    return int(os.environ.get("BENCH_NUM_THREADS") or n_cores())


def set_threads(n: int | None) -> None:
    """Pin every pool not started yet (numba, OpenMP, BLAS, torch) to ``n``; children inherit it."""
    if n:
        for var in THREAD_VARS:
            os.environ[var] = str(n)


_BURN = """
import sys, threading
import numpy as np
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
a = np.random.default_rng(0).random((64, 64))
print("busy", flush=True)
while not done.is_set():
    for _ in range(100):
        a = np.tanh(a @ a * 0.01)
"""


@contextlib.contextmanager
def busy_process():
    """A separate process burning one core (NumPy, one BLAS thread); stops when its stdin closes."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", _BURN],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        if proc.stdout.readline().strip() != "busy":
            raise RuntimeError("the busy process did not start")
        time.sleep(0.05)
        yield proc
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def rss_mb() -> float:
    """This process's resident memory now, MiB (``VmRSS``; psutil off Linux)."""
    try:
        return _status_mb("VmRSS")
    except OSError:  # pragma: no cover - not Linux
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """This process's peak resident memory, MiB (``VmHWM``: since start or
    :func:`reset_peak_rss`)."""
    try:
        return _status_mb("VmHWM")
    except OSError:  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the peak to the current RSS (Linux ``clear_refs``); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def child_env(cache_dir: str | None = None, **extra) -> dict:
    """This environment for a child interpreter that imports the same numba_rmsprop.

    Without ``PYTHONDONTWRITEBYTECODE``: a child writes this checkout's bytecode, as
    Python does by default, so the next one does not compile the package's sources
    again (40 ms of a first call, where a user's installed package has its ``.pyc``).
    """
    import numba_rmsprop

    env = dict(os.environ)
    for var in ("NUMBA_RMSPROP_NO_CACHE", "NUMBA_DISABLE_JIT", "PYTHONDONTWRITEBYTECODE"):
        env.pop(var, None)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(numba_rmsprop.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [pkg_root, ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_child(args, env=None, cwd=None, timeout: float = 900) -> dict:
    """Run ``python *args`` (``-c CODE ...`` or a script); the JSON of its last stdout line."""
    proc = subprocess.run(
        [sys.executable, *args],
        env=env or child_env(),
        cwd=cwd,
        timeout=timeout,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_call(func: str, env=None, **kw):
    """``benchmarks.<func>(**kw)`` (``"module.function"``) in a fresh interpreter: its JSON."""
    return run_child(["-m", "benchmarks.report", "--child", func, json.dumps(kw)], env, cwd=ROOT)


# ----------------------------------------------------------------- reports
def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "-C", ROOT, "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_description() -> list:
    """Markdown bullet lines: CPU, cores, load, versions, BLAS, thread settings, revision."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    versions = ", ".join(
        f"{d} {v}"
        for d in ("numba-rmsprop", "numpy", "scipy", "numba", "torch", "jax", "optax", "keras")
        if (v := _version(d))
    )
    lines = [
        f"- CPU: {cpu}; {n_cores()} cores available of {os.cpu_count()} "
        f"({platform.system()} {platform.release()}); load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- Python {platform.python_version()}; {versions}",
        "- threads: "
        + ", ".join(
            [f"{bench_threads()} for numba/torch"]
            + [f"{v}={os.environ[v]}" for v in THREAD_VARS[:-1] if v in os.environ]
        )
        + f"; NUMBA_CACHE_DIR={os.environ.get('NUMBA_CACHE_DIR', '(default)')}",
    ]
    try:
        from threadpoolctl import threadpool_info

        blas = [
            f"{i['internal_api']} {i.get('version')} ({i['num_threads']} threads)"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
        lines.append("- BLAS: " + (", ".join(blas) or "none loaded"))
    except ImportError:
        pass
    lines.append(f"- numba-rmsprop source: {_git_revision()}")
    return lines


def command_line() -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)  # set by python -m
    argv = ["-m", spec.name, *sys.argv[1:]] if spec and spec.name != "__main__" else sys.argv
    return shlex.join([sys.executable, *argv])


def fmt_time(s) -> str:
    if not isinstance(s, (int, float)) or s != s:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.3g} us"
    if s < 1.0:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def md_table(header, rows) -> list:
    out = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(map(str, r)) + " |" for r in rows]


def report_header(title: str) -> list:
    return [f"# {title}", "", *machine_description(), f"- Command: `{command_line()}`", ""]
