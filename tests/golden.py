"""Golden RMSprop trajectories recorded from Keras 3 (JAX backend).

Shared by ``test_reference.py`` (the plain-NumPy reference) and
``test_keras_golden.py`` (the package).  The data file is produced by
``tests/data/make_golden_rmsprop.py``; see its docstring for the layout.
"""

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np

DATA_FILE = Path(__file__).resolve().parent / "data" / "keras_rmsprop.npz"

# Keras's JAX backend computes ``cos`` in float32 even with x64 enabled and
# floatx float64, so cosine-schedule learning rates are only float32-accurate
# in the float64 golden data.  Other float64 cases are exact to ~1e-13.
_FLOAT32_OPS_IN_KERAS = ("CosineDecay", "CosineDecayRestarts")

# Tightest round tolerances the plain-NumPy reference passes (largest errors
# observed against Keras 3.15.1: float32 abs 1.2e-7 = 1 ulp at 1.0;
# float64-cosine rel 6.4e-7; float64 otherwise rel 1.1e-13, abs 2.2e-16).
REFERENCE_TOLERANCES = {
    "float32": dict(rtol=1e-6, atol=1e-7),
    "float64-cosine": dict(rtol=1e-6, atol=1e-9),
    "float64": dict(rtol=1e-12, atol=1e-15),
}

# For numba_rmsprop: headroom for different (but valid) float association,
# FMA contraction and summation order in compiled kernels.
PACKAGE_TOLERANCES = {
    "float32": dict(rtol=1e-5, atol=1e-6),
    "float64-cosine": dict(rtol=1e-6, atol=1e-8),
    "float64": dict(rtol=1e-10, atol=1e-12),
}


def tolerance(case, table):
    """``table[key]`` for the case: "float32", "float64-cosine" or
    "float64"."""
    key = case.dtype
    lr = case.config["learning_rate"]
    if key == "float64" and isinstance(lr, dict) and lr["class_name"] in _FLOAT32_OPS_IN_KERAS:
        key = "float64-cosine"
    return dict(table[key])


@dataclasses.dataclass(frozen=True)
class GoldenCase:
    index: int
    config: dict  # Keras's opt.get_config()
    dtype: str
    exclude: tuple  # variable indices excluded from weight decay
    x0: list
    grads: list  # per variable: (steps, *shape)
    traj: list  # per variable: (steps, *shape), value after each step
    iterations: np.ndarray  # Keras's raw _iterations after each step
    final: list = None  # values after finalize_variable_values (EMA cases)

    @property
    def steps(self):
        return self.grads[0].shape[0]

    @property
    def n_vars(self):
        return len(self.x0)

    def config_copy(self):
        """A fresh (deep) copy of the config, safe to hand to from_config."""
        return json.loads(json.dumps(self.config))


@functools.cache
def load_cases():
    cases = []
    with np.load(DATA_FILE) as data:
        for i in range(int(data["n_cases"])):
            p = f"case{i}/"
            n_vars = int(data[p + "n_vars"])
            has_final = (p + "final_0") in data.files
            cases.append(
                GoldenCase(
                    index=i,
                    config=json.loads(str(data[p + "config"])),
                    dtype=str(data[p + "dtype"]),
                    exclude=tuple(int(k) for k in data[p + "exclude"]),
                    x0=[data[p + f"x0_{j}"] for j in range(n_vars)],
                    grads=[data[p + f"grads_{j}"] for j in range(n_vars)],
                    traj=[data[p + f"traj_{j}"] for j in range(n_vars)],
                    iterations=data[p + "iterations"],
                    final=([data[p + f"final_{j}"] for j in range(n_vars)] if has_final else None),
                )
            )
    return tuple(cases)


def keras_version():
    with np.load(DATA_FILE) as data:
        return str(data["keras_version"])


_DEFAULTS = [  # (config key, default, short name for ids)
    ("rho", 0.9, "rho"),
    ("momentum", 0.0, "momentum"),
    ("epsilon", 1e-7, "eps"),
    ("centered", False, "centered"),
    ("weight_decay", None, "wd"),
    ("clipnorm", None, "clipnorm"),
    ("global_clipnorm", None, "global_clipnorm"),
    ("clipvalue", None, "clipvalue"),
    ("loss_scale_factor", None, "loss_scale"),
    ("gradient_accumulation_steps", None, "accum"),
    ("use_ema", False, "ema"),
    ("ema_overwrite_frequency", None, "ema_overwrite"),
]


def case_id(case):
    """A readable pytest id derived from the case's Keras config."""
    c = case.config
    lr = c["learning_rate"]
    parts = [
        f"{case.index:02d}",
        case.dtype,
        lr["class_name"] if isinstance(lr, dict) else f"lr={lr:.3g}",
    ]
    for key, default, short in _DEFAULTS:
        value = c.get(key, default)
        if value == default or (key == "ema_overwrite_frequency" and not c.get("use_ema")):
            continue
        if value is True:
            parts.append(short)
        else:
            parts.append(f"{short}={value:g}")
        if key == "use_ema":
            parts[-1] += f"({c['ema_momentum']:g})"
    if case.exclude:
        parts.append("exclude=" + ",".join(map(str, case.exclude)))
    return "-".join(parts)


@dataclasses.dataclass
class Replay:
    traj: list
    iterations: list
    final: list


def replay(opt, case):
    """Drive ``opt`` (a fresh optimizer built from ``case.config``) through
    the case's gradients, exactly as the generator drove Keras."""
    variables = [np.array(x, dtype=case.dtype) for x in case.x0]
    originals = list(variables)
    if case.exclude:
        opt.exclude_from_weight_decay(var_list=[variables[k] for k in case.exclude])
    traj = [np.empty_like(t) for t in case.traj]
    iterations = []
    for step in range(case.steps):
        grads = [np.array(g[step]) for g in case.grads]
        opt.apply(grads, variables)
        for j, v in enumerate(variables):
            assert v is originals[j], "variables must be updated in place"
            assert v.dtype == case.dtype, (v.dtype, case.dtype)
            traj[j][step] = v
        iterations.append(int(opt.iterations))
    final = None
    if case.final is not None:
        opt.finalize_variable_values(variables)
        final = [np.array(v) for v in variables]
    return Replay(traj, iterations, final)


def errors(case, result):
    """(max absolute error, max relative error) of a replay vs Keras."""
    pairs = list(zip(result.traj, case.traj, strict=False))
    if case.final is not None:
        pairs += list(zip(result.final, case.final, strict=False))
    abs_err = max(float(np.max(np.abs(a - b))) for a, b in pairs)
    rel_err = max(float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30))) for a, b in pairs)
    return abs_err, rel_err


def assert_replay_matches(case, result, tol):
    """``tol``: ``dict(rtol=..., atol=...)``, e.g. from ``tolerance()``."""
    np.testing.assert_array_equal(
        result.iterations, case.iterations, err_msg="iterations (raw call count)"
    )
    for j in range(case.n_vars):
        for step in range(case.steps):
            np.testing.assert_allclose(
                result.traj[j][step],
                case.traj[j][step],
                **tol,
                err_msg=f"variable {j} after step {step}",
            )
    if case.final is not None:
        assert result.final is not None
        for j in range(case.n_vars):
            np.testing.assert_allclose(
                result.final[j],
                case.final[j],
                **tol,
                err_msg=f"variable {j} after finalize_variable_values",
            )
