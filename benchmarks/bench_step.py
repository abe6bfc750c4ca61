"""asv suites: one ``RMSprop.apply`` step on the CPU.

* :class:`TimeStep` -- time per step of one variable, sizes 10 .. 1e7,
  float32/float64, for each feature set in :data:`FEATURES`.
* :class:`TimeManyTensors` -- one ``apply`` over many small tensors
  (200 x 1k, 1000 x 100): the grouped path, one compiled call per dtype.
* :class:`PeakMemStep` -- peak memory of building the optimizer state and
  taking one step on 1e7 elements (the variable and its gradient are
  allocated in ``setup`` and count too).
* :class:`Bandwidth` -- achieved GB/s of the fused update (bytes it must
  move / time) and the fraction of the same-traffic bound: the trivial numba
  ``prange`` kernel of ``peers.bandwidth_stepper`` that moves exactly the same
  bytes. Only for the configurations ``peers.CONFIGS`` has such a kernel for
  (v, [mg], [m]: 1-3 state arrays).

Compilation and the first calls happen in ``setup`` (for accumulation, two
full accumulation cycles), so ``time_`` measures the steady state. With
``accumulation`` (``gradient_accumulation_steps=4``) a timed call is the mean
over accumulate-only calls and update calls, as a training loop sees it.

Memory: a 1e7 float64 run holds x, g and up to three state arrays (ema adds
one): < 0.5 GB per process.
"""

from __future__ import annotations


import numpy as np

import numba_rmsprop as nr

# compare_peers imports peers as a top-level module; use that one copy (its
# numba bandwidth kernels are compiled once per process and cached in it).
from . import compare_peers as _cp

_peers = _cp.P

SIZES = [10, 1_000, 100_000, 10_000_000]
DTYPES = ["float32", "float64"]

#: Feature set -> RMSprop keyword arguments (learning_rate=1e-3 always).
FEATURES = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "centered": {"centered": True},
    "clip": {"global_clipnorm": 1.0},
    "ema": {"use_ema": True},
    "accumulation": {"gradient_accumulation_steps": 4},
}

#: Calls made in setup before timing: two full accumulation cycles, so every
#: kernel a feature set uses is compiled (or loaded from the cache) and warm.
WARMUP_CALLS = 8


def make_arrays(size: int, dtype: str, n_tensors: int = 1, seed: int = 0):
    """``n_tensors`` variables of ``size`` elements and their gradients.

    Drawn directly in ``dtype`` (no float64 temporaries, which would inflate
    the peak memory of a 1e7 run). Gradients are ~N(0, 1e-2).
    """
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    xs, gs = [], []
    for _ in range(n_tensors):
        xs.append(rng.standard_normal(size, dtype=dt))
        g = rng.standard_normal(size, dtype=dt)
        g *= dt.type(1e-2)
        gs.append(g)
    return xs, gs


def make_optimizer(features: str) -> nr.RMSprop:
    return nr.RMSprop(learning_rate=1e-3, **FEATURES[features])


def warm_up(opt, grads, variables, calls: int = WARMUP_CALLS) -> None:
    for _ in range(calls):
        opt.apply(grads, variables)


class TimeStep:
    """Time of one ``apply`` on one variable of ``size`` elements."""

    params = [SIZES, DTYPES, list(FEATURES)]
    param_names = ["size", "dtype", "features"]
    timeout = 180

    def setup(self, size, dtype, features):
        self.x, self.g = make_arrays(size, dtype)
        self.opt = make_optimizer(features)
        warm_up(self.opt, self.g, self.x)

    def time_apply(self, size, dtype, features):
        self.opt.apply(self.g, self.x)


class TimeManyTensors:
    """Time of one ``apply`` over many small tensors at once."""

    params = [["200x1000", "1000x100"], DTYPES, list(FEATURES)]
    param_names = ["tensors", "dtype", "features"]
    timeout = 120

    def setup(self, tensors, dtype, features):
        count, size = (int(s) for s in tensors.split("x"))
        self.xs, self.gs = make_arrays(size, dtype, n_tensors=count)
        self.opt = make_optimizer(features)
        warm_up(self.opt, self.gs, self.xs)

    def time_apply(self, tensors, dtype, features):
        self.opt.apply(self.gs, self.xs)


class PeakMemStep:
    """Peak RSS of building the state and one step (x and g included)."""

    params = [[10_000_000], DTYPES, list(FEATURES)]
    param_names = ["size", "dtype", "features"]
    timeout = 180

    def setup(self, size, dtype, features):
        self.x, self.g = make_arrays(size, dtype)

    def peakmem_build_and_step(self, size, dtype, features):
        opt = make_optimizer(features)
        opt.apply(self.g, self.x)


class Bandwidth:
    """Achieved bandwidth of the fused update and the fraction of the same-traffic bound.

    Bytes per step: read x, g and each state array; write x and each state
    array -- ``(3 + 2 * n_state) * itemsize * size`` (the traffic of
    ``peers.bandwidth_stepper``'s kernel). Times are the minimum over
    repeats of batches of steps (``compare_peers.measure_stepper``), robust on a
    loaded machine.
    """

    params = [[100_000, 10_000_000], DTYPES, list(_peers.CONFIGS)]
    param_names = ["size", "dtype", "config"]
    timeout = 240
    repeat_rounds = 5
    min_time = 0.02

    def setup(self, size, dtype, config):
        cfg = _peers.CONFIGS[config]
        xs, self.grads = make_arrays(size, dtype)
        self.ours = _peers.ours_stepper(xs, cfg)
        self.same_traffic = _peers.bandwidth_stepper([x.copy() for x in xs], cfg, parallel=True)
        self.nbytes = (3 + 2 * cfg.n_state) * np.dtype(dtype).itemsize * size
        for stepper in (self.ours, self.same_traffic):  # compile and warm
            for _ in range(3):
                stepper.step(self.grads)

    def _seconds(self, stepper) -> float:
        return _cp.measure_stepper(stepper, self.grads, repeat=self.repeat_rounds,
                                min_time=self.min_time, warmup=1, stat="min")

    def track_gbps(self, size, dtype, config):
        return self.nbytes / self._seconds(self.ours) / 1e9

    track_gbps.unit = "GB/s"

    def track_fraction_of_bound(self, size, dtype, config):
        return self._seconds(self.same_traffic) / self._seconds(self.ours)

    track_fraction_of_bound.unit = "fraction"
