"""asv suites: one ``RMSprop.apply`` step on the CPU, and the measurements behind them.

* :class:`TimeStep`: one variable, 10 .. 1e7 elements, float32/float64, each
  feature set of :data:`FEATURES` (``user_story``: all at once);
  :class:`TimeManyTensors`: 200 x 1k or 1000 x 100 tensors in one call;
  :class:`PeakMemStep`: building the state and a step on 1e7 elements.
* :class:`Bandwidth`: GB/s, and the fraction of the same-traffic bound
  (``peers.bandwidth_stepper``: the same bytes, trivial math), interleaved.
* :class:`Latency`: p50/p90/p99 of single calls on one 256x128 float32
  variable (momentum 0.9, centered), alone and beside a busy process, ours
  and the hand-written serial kernel (``peers.keras_rmsprop``).
* :class:`SmallApply`: one 10-element float32 variable: ours, hand-written,
  optax (``jax.jit``, donated buffers), torch (skipped when not installed).

``report.py`` calls the same functions (:func:`bandwidth`, :func:`latency`,
:func:`small_apply`, :func:`many_tensors`, :func:`threshold`) at full size.
``setup`` compiles and warms (two accumulation cycles): ``time_`` sees the steady state.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np

import numba_rmsprop as nr

from . import common as C
from . import peers as P

SIZES = [10, 1_000, 100_000, 10_000_000]
DTYPES = ["float32", "float64"]

#: Feature set -> RMSprop keyword arguments (learning_rate=1e-3 unless given).
FEATURES = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "centered": {"centered": True},
    "clip": {"global_clipnorm": 1.0},
    "ema": {"use_ema": True},
    "accumulation": {"gradient_accumulation_steps": 4},
    "user_story": {
        "learning_rate": ("CosineDecay", 0.01, 1000),
        "momentum": 0.9,
        "centered": True,
        "weight_decay": 1e-4,
        "global_clipnorm": 1.0,
        "use_ema": True,
        "gradient_accumulation_steps": 4,
    },
}
WARMUP_CALLS = 8  # two accumulation cycles: every kernel compiled (or loaded) and warm


def make_arrays(size: int, dtype: str, n_tensors: int = 1, seed: int = 0):
    """``n_tensors`` variables of ``size`` elements and gradients ~N(0, 1e-2), in ``dtype``."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    xs = [rng.standard_normal(size, dtype=dt) for _ in range(n_tensors)]
    gs = [rng.standard_normal(size, dtype=dt) * dt.type(1e-2) for _ in range(n_tensors)]
    return xs, gs


def make_optimizer(features: str) -> nr.RMSprop:
    kw = dict(FEATURES[features])
    lr = kw.pop("learning_rate", 1e-3)
    if isinstance(lr, tuple):
        lr = getattr(nr.schedules, lr[0])(*lr[1:])
    return nr.RMSprop(learning_rate=lr, **kw)


def warm_up(opt, grads, variables, calls: int = WARMUP_CALLS) -> None:
    for _ in range(calls):
        opt.apply(grads, variables)


# ------------------------------------------------------------ measurements
def bandwidth(size, dtype, config, repeat=7, min_time=0.02, with_numpy=False) -> dict:
    """Ours against the same-traffic kernel (and NumPy), interleaved; seconds and GB/s."""
    cfg = P.CONFIGS[config]
    xs, gs = make_arrays(size, dtype)
    steppers = {
        "ours": P.ours_stepper(xs, cfg),
        "bound": P.bandwidth_stepper([x.copy() for x in xs], cfg, parallel=True),
    }
    if with_numpy:
        steppers["numpy"] = P.numpy_stepper([x.copy() for x in xs], cfg)
    samples = C.interleaved(
        {k: (lambda s=s: s.step(gs)) for k, s in steppers.items()}, repeat, min_time, warmup=3
    )
    out = {k: float(np.min(v)) for k, v in samples.items()}
    out["fraction_of_bound"] = C.ratio(samples, "bound", "ours")
    out["GBps"] = (3 + 2 * cfg.n_state) * np.dtype(dtype).itemsize * size / out["ours"] / 1e9
    return out


def bandwidth_table(
    n_large=10_000_000,
    repeat=15,
    min_time=0.05,
    dtypes=DTYPES,
    configs=("plain", "centered+momentum"),
) -> dict:
    return {
        f"{dt}/{cfg}": bandwidth(n_large, dt, cfg, repeat, min_time, with_numpy=True)
        for dt in dtypes
        for cfg in configs
    }


def latency(calls=2000, shape=(256, 128)) -> dict:
    """``{alone|busy: {ours|handwritten: {p50, p90, p99}}}`` (seconds) of single calls,
    interleaved."""
    cfg, rng, out = P.CONFIGS["centered+momentum"], np.random.default_rng(0), {}
    x0 = rng.standard_normal(shape, dtype=np.float32)
    g = [rng.standard_normal(shape, dtype=np.float32) * np.float32(1e-2)]
    for neighbour in ("alone", "busy"):
        steppers = {
            "ours": P.ours_stepper([x0.copy()], cfg),
            "handwritten": P.handwritten_stepper([x0.copy()], cfg),
        }
        with C.busy_process() if neighbour == "busy" else contextlib.nullcontext():
            samples = C.interleaved(
                {k: (lambda s=s: s.step(g)) for k, s in steppers.items()}, calls, warmup=50
            )
        out[neighbour] = {k: C.percentiles(v) for k, v in samples.items()}
    return out


def small_apply(
    peers=("ours", "handwritten", "optax", "torch"), repeat=15, min_time=0.02, extras=True
) -> dict:
    """Seconds per step on one 10-element float32 variable (plain config), interleaved.

    Also ours with every feature (``user_story``) in float32 and float64, and
    plain float64. Peers whose library is missing are reported as strings.
    """
    xs, gs = make_arrays(10, "float32")
    fns, out = {}, {}
    for name in peers:
        factory, _, module = P.PEERS[name]
        if not C.available(module):
            out[name] = f"{module} not installed"
            continue
        s = factory([x.copy() for x in xs], P.CONFIGS["plain"])
        fns[name] = lambda s=s: s.step(gs)
    for dtype in DTYPES if extras else ():
        for feat in ("plain", "user_story"):
            if (dtype, feat) != ("float32", "plain"):
                x, g = make_arrays(10, dtype)
                opt = make_optimizer(feat)
                fns[f"ours {feat} {dtype}"] = lambda opt=opt, g=g, x=x: opt.apply(g, x)
    samples = C.interleaved(fns, repeat, min_time, warmup=WARMUP_CALLS)
    out.update({k: float(np.median(v)) for k, v in samples.items()})
    return out


def many_tensors(repeat=15, min_time=0.05) -> dict:
    """Ours and torch foreach (when installed) on 200 x 1k and 1000 x 100 float32, interleaved."""
    out = {}
    for count, size in ((200, 1000), (1000, 100)):
        xs, gs = make_arrays(size, "float32", n_tensors=count)
        ours = P.ours_stepper(xs, "plain")
        fns = {"ours": lambda s=ours, gs=gs: s.step(gs)}
        if C.available("torch"):
            s = P.torch_stepper([x.copy() for x in xs], "plain")
            fns["torch"] = lambda s=s, gs=gs: s.step(gs)
        for k, v in C.interleaved(fns, repeat, min_time, warmup=3).items():
            out[f"{k} {count}x{size}"] = float(np.median(v))
    return out


def apply_times(sizes, repeat=15, blas=False) -> dict:
    """Median seconds per ``apply`` (float32, momentum + centered) for each size.

    With ``blas``, every call follows a 256x512 @ 512x512 float32 matmul, as in
    a training loop: OpenBLAS's threads then still spin on the other cores.
    ``threshold`` runs this in children.
    """
    rng = np.random.default_rng(0)
    A = rng.standard_normal((256, 512), dtype=np.float32)
    B = rng.standard_normal((512, 512), dtype=np.float32)
    out = {}
    for n in sizes:
        x, g = make_arrays(n, "float32")
        opt = nr.RMSprop(learning_rate=1e-3, momentum=0.9, centered=True)
        warm_up(opt, g, x)
        calls = max(10, min(400, int(4e8 // (n * 4 * 6))))
        samples = []
        for _ in range(repeat):
            t = 0.0
            for _ in range(calls):
                if blas:
                    A @ B
                t0 = time.perf_counter()
                opt.apply(g, x)
                t += time.perf_counter() - t0
            samples.append(t / calls)
        out[n] = float(np.median(samples))
    return out


#: Threading layers the crossover is measured with (each where it loads).
LAYERS = ("tbb", "omp")


def threshold(
    sizes=(16_000, 64_000, 250_000, 1_000_000, 4_000_000, 8_000_000, 16_000_000),
    repeat=7,
    layers=LAYERS,
    blas_modes=(False, True),
) -> dict:
    """``apply`` per size, every variable serial or every one parallel, alone and in a loop
    with BLAS between the calls, per threading layer: one child per (layer, mode), with
    ``NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES`` at its extremes. The crossover in the loop
    places the package default."""
    out = {}
    for layer in layers:
        for label, limit in (("serial", 1 << 62), ("parallel", 0)):
            for blas in blas_modes:
                env = C.child_env(
                    NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES=limit, NUMBA_THREADING_LAYER=layer
                )
                try:
                    res = C.child_call(
                        "bench_step.apply_times", env, sizes=list(sizes), repeat=repeat, blas=blas
                    )
                except RuntimeError as exc:
                    out.setdefault("unavailable", {})[layer] = str(exc).splitlines()[-1]
                    break
                for n, t in res.items():
                    key = f"{layer} {label}" + (" +BLAS" if blas else "")
                    out.setdefault(n, {})[key] = t
    return out


# ------------------------------------------------------------------ suites
class TimeStep(C.Benchmark):
    """Time of one ``apply`` on one variable of ``size`` elements."""

    params = [SIZES, DTYPES, list(FEATURES)]
    param_names = ["size", "dtype", "features"]

    def setup(self, size, dtype, features):
        self.x, self.g = make_arrays(size, dtype)
        self.opt = make_optimizer(features)
        warm_up(self.opt, self.g, self.x)

    def time_apply(self, size, dtype, features):
        self.opt.apply(self.g, self.x)


class TimeManyTensors(C.Benchmark):
    """Time of one ``apply`` over many small tensors at once."""

    params = [["200x1000", "1000x100"], DTYPES, list(FEATURES)]
    param_names = ["tensors", "dtype", "features"]

    def setup(self, tensors, dtype, features):
        count, size = (int(s) for s in tensors.split("x"))
        self.xs, self.gs = make_arrays(size, dtype, n_tensors=count)
        self.opt = make_optimizer(features)
        warm_up(self.opt, self.gs, self.xs)

    def time_apply(self, tensors, dtype, features):
        self.opt.apply(self.gs, self.xs)


class PeakMemStep(C.Benchmark):
    """Peak RSS of building the state and one step (x and g included)."""

    params = [[10_000_000], DTYPES, list(FEATURES)]
    param_names = ["size", "dtype", "features"]

    def setup(self, size, dtype, features):
        self.x, self.g = make_arrays(size, dtype)

    def peakmem_build_and_step(self, size, dtype, features):
        make_optimizer(features).apply(self.g, self.x)


class Bandwidth(C.Benchmark):
    """GB/s of the fused update (bytes it must move / time) and the fraction of the bound."""

    params = [[100_000, 10_000_000], DTYPES, list(P.CONFIGS)]
    param_names = ["size", "dtype", "config"]
    timeout = 240

    def setup(self, size, dtype, config):
        self.result = bandwidth(size, dtype, config, C.sized(5, 2), C.sized(0.02, 0.001))

    def track_gbps(self, size, dtype, config):
        return self.result["GBps"]

    def track_fraction_of_bound(self, size, dtype, config):
        return self.result["fraction_of_bound"]

    track_gbps.unit, track_fraction_of_bound.unit = "GB/s", "fraction"


class Latency(C.Benchmark):
    """Single-call latency percentiles, alone and beside a busy process (measured once)."""

    params = [["alone", "busy"], ["ours", "handwritten"], ["p50", "p90", "p99"]]
    param_names = ["neighbour", "implementation", "percentile"]
    unit = "s"

    def setup_cache(self):
        return latency(C.sized(2000, 30))

    def track_latency(self, res, neighbour, impl, percentile):
        return res[neighbour][impl][percentile]


class SmallApply(C.Benchmark):
    """One step on a 10-element float32 variable (plain config)."""

    params = [["ours", "handwritten", "optax", "torch"]]
    param_names = ["implementation"]

    def setup(self, impl):
        factory, _, module = P.PEERS[impl]
        C.need(module)
        self.xs, self.gs = make_arrays(10, "float32")
        self.stepper = factory(self.xs, P.CONFIGS["plain"])
        for _ in range(WARMUP_CALLS):
            self.stepper.step(self.gs)

    def time_step(self, impl):
        self.stepper.step(self.gs)
