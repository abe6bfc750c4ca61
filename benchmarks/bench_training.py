"""asv suites: RMSprop inside a real training loop, not alone.

The loop: the 784-128-10 MLP of ``problems.py`` in float32, batches of 64 from
seeded MNIST-like data, forward and backward in NumPy (so OpenBLAS threads run
between the updates), updated with ``RMSprop(learning_rate=1e-3,
momentum=0.9, centered=True)`` (:data:`CONFIG`) by one of

* ``ours``: ``numba_rmsprop.RMSprop(...).apply(grads, params)``, package defaults;
* ``handwritten``: the minimal serial ``@njit`` kernel of the same math
  (``peers.keras_rmsprop``, one call per variable);
* ``torch``: ``torch.optim.RMSprop(foreach=True)`` on ``torch.from_numpy`` views
  of the same NumPy weights, gradients copied into ``.grad`` each step (counted
  in its update time). torch adds eps outside the square root; it runs with
  ``eps_mode="shift"`` (``peers``): its ``square_avg`` holds ``v + eps`` -- the
  Keras math exactly, at the cost of one extra ``_foreach_add_`` per step.

Every variant has its own weights (same initialisation) and sees the same
batches in the same order. :func:`train` runs them interleaved: each round
runs ``steps`` steps of every variant, the order rotated per round, and
records the whole-loop time and the summed update time per variant.

:func:`agreement` checks that ours and the hand-written kernel agree: one
step from the same state (max difference in float32 ulps), and the weights
after a whole run.
"""

from __future__ import annotations

import time

import numpy as np

from . import common as C
from . import peers as P
from . import problems as Q

CONFIG = P.Config(learning_rate=1e-3, momentum=0.9, centered=True)
VARIANTS = ("ours", "handwritten", "torch")
FACTORIES = {
    "ours": P.ours_stepper,
    "handwritten": P.handwritten_stepper,
    "torch": lambda x, c: P.torch_stepper(x, c, eps_mode="shift", grads="copy"),
}


class Trainer:
    """One variant of the loop: its own weights, optimizer state and batch stream."""

    def __init__(self, variant: str, data, batch: int = 64, seed: int = 0):
        if variant == "torch":
            C.need("torch")
        self.X, self.y = data
        self.params = Q.mlp_init(seed)
        self.grads = [np.zeros_like(p) for p in self.params]
        self.stepper = FACTORIES[variant](self.params, CONFIG)
        self.batches = Q.minibatches(self.y.size, batch, seed)
        self.losses = []

    def run(self, steps: int):
        """``steps`` steps; returns (seconds for the whole loop, seconds inside the update)."""
        clock, upd = time.perf_counter, 0.0
        X, y, params, grads, step = self.X, self.y, self.params, self.grads, self.stepper.step
        t_start = clock()
        for _ in range(steps):
            idx = next(self.batches)
            self.losses.append(Q.mlp_loss_and_grads(params, X[idx], y[idx], grads))
            t0 = clock()
            step(grads)
            upd += clock() - t0
        return clock() - t_start, upd


def train(steps=1000, repeat=5, variants=VARIANTS, n_samples=8192, warmup=20) -> dict:
    """Interleaved rounds; per variant the lists of loop and update seconds, and the losses."""
    data = Q.mnist_like(n_samples)
    trainers, out = {}, {}
    for v in variants:
        try:
            trainers[v] = Trainer(v, data)
        except NotImplementedError as exc:
            out[v] = str(exc)
    for t in trainers.values():  # compile / load, start thread pools
        t.run(warmup)
    names = list(trainers)
    res = {v: {"loop": [], "update": []} for v in names}
    for r in range(repeat):
        for k in range(len(names)):
            v = names[(r + k) % len(names)]
            loop, upd = trainers[v].run(steps)
            res[v]["loop"].append(loop)
            res[v]["update"].append(upd)
    for v, t in trainers.items():
        losses = np.array(t.losses)
        k = min(100, max(1, losses.size // 4))
        res[v].update(
            first_losses=float(losses[:k].mean()),
            last_losses=float(losses[-k:].mean()),
            finite=bool(np.isfinite(losses).all()),
            params=t.params,
        )
        res[v]["decreasing"] = res[v]["finite"] and res[v]["last_losses"] < res[v]["first_losses"]
    out.update(res)
    if "ours" in res and "handwritten" in res:
        for key in ("loop", "update"):
            out[f"ratio_{key}"] = C.ratio({v: res[v][key] for v in res}, "ours", "handwritten")
    return out


def measure(steps=1000, repeat=5, n_samples=8192, warmup=20) -> dict:
    """:func:`train` and :func:`agreement`, without the weights (for ``report.py``)."""
    r = train(steps, repeat, n_samples=n_samples, warmup=warmup)
    r["agreement"] = agreement(r)
    for v in VARIANTS:
        if isinstance(r.get(v), dict):
            del r[v]["params"]
    return r


def agreement(result: dict) -> dict:
    """Ours vs hand-written: one step from the same state (float32 ulps), and after the run."""
    rng = np.random.default_rng(1)
    x0 = Q.mlp_init(1)
    g = [rng.standard_normal(p.shape, dtype=np.float32) * np.float32(1e-2) for p in x0]
    a = P.ours_stepper([p.copy() for p in x0], CONFIG)
    b = P.handwritten_stepper([p.copy() for p in x0], CONFIG)
    ulps = 0
    for _ in range(3):  # three steps: momentum and centered state in play
        a.step(g)
        b.step(g)
        ulps = max(
            ulps,
            max(
                int(
                    np.max(
                        np.abs(
                            p.view(np.int32).astype(np.int64) - q.view(np.int32).astype(np.int64)
                        )
                    )
                )
                for p, q in zip(a.params(), b.params(), strict=False)
            ),
        )
    out = {"one_step_max_ulps": ulps}
    for v in ("handwritten", "torch"):
        if isinstance(result.get(v), dict) and isinstance(result.get("ours"), dict):
            diff = max(
                float(np.max(np.abs(p - q)))
                for p, q in zip(result["ours"]["params"], result[v]["params"], strict=False)
            )
            scale = max(float(np.max(np.abs(p))) for p in result["ours"]["params"])
            out[f"run_max_rel_diff_{v}"] = diff / scale
    return out


# ------------------------------------------------------------------ suites
class MLPTraining(C.Benchmark):
    """``STEPS`` steps of the training loop with each variant's update."""

    params = [list(VARIANTS)]
    param_names = ["update"]
    STEPS = 200
    timeout = 300

    def setup(self, variant):
        self.steps = C.sized(self.STEPS, 5)
        self.trainer = Trainer(variant, Q.mnist_like(C.sized(4096, 256)))
        self.trainer.run(C.sized(20, 2))

    def time_loop(self, variant):
        self.trainer.run(self.steps)

    def track_update_time_per_step(self, variant):
        return self.trainer.run(self.steps)[1] / self.steps

    track_update_time_per_step.unit = "s"


class MLPRatio(C.Benchmark):
    """Ours over the hand-written kernel: whole loop, update alone; interleaved rounds."""

    params = [["loop", "update"]]
    param_names = ["time"]
    timeout = 300
    unit = "ours / hand-written"

    def setup_cache(self):
        r = train(
            steps=C.sized(200, 5),
            repeat=C.sized(5, 1),
            variants=("ours", "handwritten"),
            n_samples=C.sized(4096, 256),
            warmup=C.sized(20, 2),
        )
        return {k: r["ratio_" + k] for k in self.params[0]}

    def track_ratio(self, res, what):
        return res[what]
