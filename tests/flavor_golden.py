"""Golden RMSprop trajectories recorded from torch, optax and TF1 (``tests/data/golden_*.npz``).

Shared by ``test_flavors.py`` (the package, through ``RMSprop.like_<framework>``)
and ``test_reference.py`` (the NumPy reference, through ``ReferenceRMSprop.like``).
``tests/data/make_golden_flavors.py`` writes the files; see its docstring.

A case is replayed in one of two ways:

``"applied"``
    With the hyperparameters as the framework applied them: the learning
    rate of each step as recorded, and for TF1 every hyperparameter rounded
    to float32 first (TF1 converts them to float32 tensors, then casts to
    the variable's dtype). This checks the update rule itself, to float64
    rounding.
``"configured"``
    With the framework's arguments as given and our own schedule
    (``ExponentialDecay(lr0, 1, gamma)``, evaluated in float64). This is
    what a user porting a script gets.
"""

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np

FRAMEWORKS = ("torch", "optax", "tf1")
DATA = Path(__file__).resolve().parent / "data"
LR_NAME = {"torch": "lr", "optax": "learning_rate", "tf1": "learning_rate"}
#: TF1's hyperparameters, each a float32 tensor before its cast to the variable's dtype.
TF1_FLOAT32 = ("learning_rate", "decay", "momentum", "epsilon")

#: Agreement required with the "applied" replay: float32 to rounding; float64 to
#: 1e-10 relative to the variable's scale.
TOLERANCE = {"float32": 1e-5, "float64": 1e-10}


@dataclasses.dataclass(frozen=True)
class Case:
    framework: str
    index: int
    kwargs: dict
    schedule: dict
    dtype: str
    x0: list
    grads: list
    traj: list
    lr: np.ndarray

    @property
    def steps(self):
        return self.grads[0].shape[0]

    def name(self):
        args = ",".join(f"{k}={v}" for k, v in self.kwargs.items() if k != LR_NAME[self.framework])
        return f"{self.framework}-{self.index}-{self.dtype}-{args or 'defaults'}" + (
            "-schedule" if self.schedule else ""
        )


@functools.cache
def load(framework):
    cases = []
    with np.load(DATA / f"golden_{framework}.npz") as f:
        d = dict(f)
    for i in range(int(d["n_cases"])):
        p = f"case{i}/"
        cfg = json.loads(str(d[p + "config"]))
        n = int(d[p + "n_vars"])
        cases.append(
            Case(
                framework,
                i,
                cfg["kwargs"],
                cfg["schedule"],
                str(d[p + "dtype"]),
                [d[p + f"x0_{j}"] for j in range(n)],
                [d[p + f"grads_{j}"] for j in range(n)],
                [d[p + f"traj_{j}"] for j in range(n)],
                d[p + "lr"],
            )
        )
    return cases


def all_cases():
    return [c for fw in FRAMEWORKS for c in load(fw)]


class Recorded:
    """A learning-rate schedule that replays recorded values (``rate(step)``)."""

    def __init__(self, values):
        self.values = [float(v) for v in values]

    def __call__(self, step):
        return self.values[int(step)]


def arguments(case, mode, schedule_class, recorded_class=Recorded):
    """The ``like_<framework>`` keyword arguments of ``case`` for a replay ``mode``.

    ``schedule_class`` builds ``ExponentialDecay(lr0, 1, gamma)``;
    ``recorded_class`` wraps recorded rates (it must be a schedule type the
    optimizer accepts).
    """
    kwargs = dict(case.kwargs)
    lr_name = LR_NAME[case.framework]
    if mode == "applied":
        if case.schedule or case.framework == "tf1":
            kwargs[lr_name] = recorded_class(case.lr)
        if case.framework == "tf1":
            for k in TF1_FLOAT32[1:]:
                if k in kwargs:
                    kwargs[k] = float(np.float32(kwargs[k]))
            defaults = {"decay": 0.9, "momentum": 0.0, "epsilon": 1e-10}
            for k, v in defaults.items():
                kwargs.setdefault(k, float(np.float32(v)))
    elif case.schedule:
        s = case.schedule
        kwargs[lr_name] = schedule_class(s["lr0"], 1, s["gamma"])
    return kwargs


def replay(opt, case):
    """Apply the case's gradients with ``opt`` (an ``apply(grads, variables)`` object)."""
    xs = [np.array(x, copy=True) for x in case.x0]
    out = [[] for _ in xs]
    for t in range(case.steps):
        opt.apply([g[t].copy() for g in case.grads], xs)
        for j, x in enumerate(xs):
            out[j].append(x.copy())
    return [np.stack(o) for o in out]


def error(result, case):
    """Largest ``|ours - theirs| / max|theirs|`` over steps and variables (scale-relative)."""
    worst = 0.0
    for r, t in zip(result, case.traj, strict=False):
        for k in range(case.steps):
            scale = float(np.max(np.abs(t[k]))) or 1.0
            worst = max(worst, float(np.max(np.abs(r[k].astype(np.float64) - t[k]))) / scale)
    return worst
