"""Record golden RMSprop trajectories from Keras 3 itself.

Writes ``tests/data/keras_rmsprop.npz``, which ``tests/test_reference.py`` and
``tests/test_keras_golden.py`` replay.  Keras is *not* a dependency of the
package or of its tests; run this script in a throwaway virtual environment::

    python3 -m venv /tmp/kerasenv
    /tmp/kerasenv/bin/pip install "keras==3.15.1" "jax[cpu]==0.10.2"
    KERAS_BACKEND=jax /tmp/kerasenv/bin/python tests/data/make_golden_rmsprop.py

(The recorded file was produced with Keras 3.15.1 and JAX 0.10.2 on CPU.)

The script runs itself twice in subprocesses, because JAX's 64-bit mode is a
process-wide switch:

* float32 cases: JAX defaults (``JAX_ENABLE_X64`` off), ``floatx`` float32 --
  what a typical Keras user gets.
* float64 cases: ``JAX_ENABLE_X64=1`` and ``keras.config.set_floatx("float64")``.
  Without x64 JAX silently stores float64 variables as float32.  Even then
  Keras's JAX backend evaluates ``cos``/``floor``/``ceil`` (used by several
  schedules) in float32, so float64 golden data is only ~1e-7 accurate where
  a schedule is involved.

Each case drives ``keras.optimizers.RMSprop.apply`` with gradients drawn from
a seeded RNG ahead of time (a mix of scales, so that clipping triggers on some
steps only).  Layout of the npz file::

    n_cases, keras_version
    case{i}/config      JSON of opt.get_config()
    case{i}/dtype       "float32" | "float64"
    case{i}/n_vars      int
    case{i}/exclude     int array: variable indices excluded from weight decay
    case{i}/x0_{j}      initial value of variable j
    case{i}/grads_{j}   (steps, *shape_j) gradients fed at each step
    case{i}/traj_{j}    (steps, *shape_j) variable value after each step
    case{i}/iterations  (steps,) Keras's raw ``_iterations`` after each step
    case{i}/final_{j}   (use_ema cases only) value after
                        ``finalize_variable_values``

For centered cases the script asserts that Keras's ``v - mg**2`` stays
``>= 0`` (where ``numba_rmsprop``'s clamp ``max(v - mg**2, 0)`` could differ).
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "keras_rmsprop.npz")
DTYPES = ("float32", "float64")
SHAPES = [(3, 4), (5,), ()]

# Schedules: (class name, kwargs).
COSINE_WARMUP = (
    "CosineDecay",
    dict(initial_learning_rate=0.0, decay_steps=16, alpha=0.1, warmup_target=0.05, warmup_steps=4),
)
EXPONENTIAL = (
    "ExponentialDecay",
    dict(initial_learning_rate=0.05, decay_steps=3, decay_rate=0.7, staircase=True),
)
PIECEWISE = (
    "PiecewiseConstantDecay",
    dict(boundaries=[3, 7, 11], values=[0.05, 0.02, 0.01, 0.004]),
)
POLYNOMIAL = (
    "PolynomialDecay",
    dict(initial_learning_rate=0.05, decay_steps=5, end_learning_rate=0.005, power=2.0, cycle=True),
)
INVERSE_TIME = ("InverseTimeDecay", dict(initial_learning_rate=0.05, decay_steps=2, decay_rate=0.5))
RESTARTS = (
    "CosineDecayRestarts",
    dict(initial_learning_rate=0.05, first_decay_steps=3, t_mul=2.0, m_mul=0.8, alpha=0.05),
)


def spec(name, lr=0.05, steps=16, exclude=(), zero=(), grad_factor=1.0, **opt_kwargs):
    """``zero``: (step, var) pairs whose gradient is set to all zeros;
    ``grad_factor``: multiplies every gradient (for loss_scale_factor)."""
    return dict(
        name=name,
        lr=lr,
        steps=steps,
        exclude=list(exclude),
        zero=list(zero),
        grad_factor=grad_factor,
        kwargs=opt_kwargs,
    )


SPECS = [
    # Defaults (learning rate 0.001) and each option alone.
    spec("defaults", lr=None),
    spec("rho", rho=0.5),
    spec("momentum", momentum=0.9),
    spec("epsilon", epsilon=1e-2),
    spec("centered", centered=True),
    spec("centered_momentum", centered=True, momentum=0.5),
    spec("weight_decay", weight_decay=0.5),
    spec("weight_decay_exclude", weight_decay=0.5, exclude=[1]),
    spec("clipnorm", clipnorm=1.0, zero=[(0, 1), (4, 1), (5, 0), (5, 2)]),
    spec("global_clipnorm", global_clipnorm=2.0, zero=[(2, 0)]),
    spec("clipvalue", clipvalue=0.5),
    spec("loss_scale_factor", loss_scale_factor=128.0, grad_factor=128.0),
    spec("use_ema", use_ema=True, ema_momentum=0.8),
    spec("use_ema_overwrite", use_ema=True, ema_momentum=0.7, ema_overwrite_frequency=3),
    spec("accumulate2", gradient_accumulation_steps=2),
    spec("accumulate3", steps=18, gradient_accumulation_steps=3),
    # Every schedule alone.
    spec("exponential_staircase", lr=EXPONENTIAL),
    spec("piecewise", lr=PIECEWISE),
    spec("polynomial_cycle", lr=POLYNOMIAL, steps=18),
    spec("inverse_time", lr=INVERSE_TIME),
    spec("cosine_warmup", lr=COSINE_WARMUP, steps=24),
    spec("cosine_restarts", lr=RESTARTS, steps=24),
    # Schedules combined with the other options.
    spec("exponential_momentum_clipvalue", lr=EXPONENTIAL, momentum=0.9, clipvalue=1.0),
    spec(
        "polynomial_centered_accumulate2",
        lr=POLYNOMIAL,
        steps=20,
        centered=True,
        gradient_accumulation_steps=2,
    ),
    spec(
        "restarts_ema_overwrite_accumulate3",
        lr=RESTARTS,
        steps=24,
        use_ema=True,
        ema_momentum=0.6,
        ema_overwrite_frequency=2,
        gradient_accumulation_steps=3,
    ),
    spec(
        "inverse_time_clipnorm_weight_decay",
        lr=INVERSE_TIME,
        clipnorm=2.0,
        weight_decay=0.3,
        exclude=[2],
    ),
    spec(
        "piecewise_global_clipnorm_wd_accumulate2",
        lr=PIECEWISE,
        global_clipnorm=1.5,
        weight_decay=0.2,
        exclude=[0],
        gradient_accumulation_steps=2,
    ),
    spec(
        "cosine_loss_scale_accumulate2_clipnorm",
        lr=("CosineDecay", dict(initial_learning_rate=0.05, decay_steps=12, alpha=0.2)),
        loss_scale_factor=64.0,
        grad_factor=64.0,
        gradient_accumulation_steps=2,
        clipnorm=1.0,
    ),
    spec(
        "ema_accumulate2_overwrite2",
        use_ema=True,
        ema_momentum=0.5,
        ema_overwrite_frequency=2,
        gradient_accumulation_steps=2,
    ),
    # The user story.
    spec(
        "user_story",
        lr=(
            "CosineDecay",
            dict(
                initial_learning_rate=0.0,
                decay_steps=20,
                alpha=0.05,
                warmup_target=0.05,
                warmup_steps=4,
            ),
        ),
        steps=24,
        momentum=0.9,
        centered=True,
        weight_decay=0.01,
        global_clipnorm=1.0,
        use_ema=True,
        ema_momentum=0.9,
        gradient_accumulation_steps=4,
    ),
]


def make_inputs(index, spec_, dtype):
    """Initial values and gradients; identical (up to rounding) for both
    dtypes of a spec."""
    rng = np.random.default_rng(1000 + index)
    steps = spec_["steps"]
    x0 = [rng.standard_normal(s) for s in SHAPES]
    grads = []
    for shape in SHAPES:
        scale = rng.choice([0.02, 0.3, 1.0, 4.0], size=steps)
        g = rng.standard_normal((steps,) + shape)
        g = g * scale.reshape((steps,) + (1,) * len(shape))
        grads.append(g * spec_["grad_factor"])
    for step, j in spec_["zero"]:
        grads[j][step] = 0.0
    return ([np.asarray(x, dtype=dtype) for x in x0], [np.asarray(g, dtype=dtype) for g in grads])


def worker(dtype, out_path):
    import jax
    import keras

    assert keras.backend.backend() == "jax", "run with KERAS_BACKEND=jax"
    assert jax.config.jax_enable_x64 == (dtype == "float64")
    keras.config.set_floatx(dtype)
    schedules = keras.optimizers.schedules

    def run_case(lr, kwargs, x0, grads, exclude):
        variables = [keras.Variable(x, dtype=dtype) for x in x0]
        opt = keras.optimizers.RMSprop(learning_rate=lr, **kwargs)
        config = opt.get_config()
        if exclude:
            opt.exclude_from_weight_decay(var_list=[variables[k] for k in exclude])
        steps = grads[0].shape[0]
        traj = [np.zeros_like(g) for g in grads]
        iterations = np.zeros(steps, dtype=np.int64)
        for step in range(steps):
            opt.apply([jax.numpy.asarray(g[step]) for g in grads], variables)
            for j, v in enumerate(variables):
                value = np.asarray(v.value)
                assert value.dtype == dtype, (value.dtype, dtype)
                traj[j][step] = value
            iterations[step] = int(opt._iterations.numpy())
            if opt.centered:
                for vel, mg in zip(opt._velocities, opt._average_gradients, strict=False):
                    vel, mg = np.asarray(vel.value), np.asarray(mg.value)
                    assert np.all(vel - np.square(mg) >= 0), "centered < 0"
        final = None
        if opt.use_ema:
            opt.finalize_variable_values(variables)
            final = [np.asarray(v.value) for v in variables]
        return config, traj, iterations, final

    out = {}
    cases = []
    for index, s in enumerate(SPECS):
        x0, grads = make_inputs(index, s, dtype)
        if s["lr"] is None:
            lr_kwargs = {}
        elif isinstance(s["lr"], tuple):
            cls_name, sched_kwargs = s["lr"]
            lr_kwargs = dict(learning_rate=getattr(schedules, cls_name)(**sched_kwargs))
        else:
            lr_kwargs = dict(learning_rate=s["lr"])
        config, traj, iterations, final = run_case(
            lr_kwargs.get("learning_rate", 0.001), s["kwargs"], x0, grads, s["exclude"]
        )
        cases.append((s["name"], s["exclude"], config, x0, grads, traj, iterations, final))

    # The example from Keras's RMSprop docstring: lr 0.1, var 10.0,
    # loss var**2 / 2, so the gradient is var itself -> 9.683772.
    x0 = [np.asarray(10.0, dtype=dtype)]
    grads = [np.asarray([10.0], dtype=dtype)]
    config, traj, iterations, final = run_case(0.1, {}, x0, grads, [])
    assert abs(float(traj[0][0]) - 9.683772) < 1e-6, traj
    cases.append(("doc_example", [], config, x0, grads, traj, iterations, final))

    for i, (name, exclude, config, x0, grads, traj, iterations, final) in enumerate(cases):
        p = f"case{i}/"
        out[p + "name"] = name
        out[p + "config"] = json.dumps(config)
        out[p + "exclude"] = np.asarray(exclude, dtype=np.int64)
        out[p + "n_vars"] = len(x0)
        out[p + "iterations"] = iterations
        for j in range(len(x0)):
            out[p + f"x0_{j}"] = x0[j]
            out[p + f"grads_{j}"] = grads[j]
            out[p + f"traj_{j}"] = traj[j]
            if final is not None:
                out[p + f"final_{j}"] = final[j]
    out["n_cases"] = len(cases)
    out["keras_version"] = keras.__version__
    np.savez(out_path, **out)


def main():
    parts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in DTYPES:
            path = os.path.join(tmp, dtype + ".npz")
            env = dict(os.environ, KERAS_BACKEND="jax")
            env.pop("JAX_ENABLE_X64", None)
            if dtype == "float64":
                env["JAX_ENABLE_X64"] = "1"
            subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--worker", dtype, path],
                env=env,
                check=True,
            )
            with np.load(path) as data:
                parts[dtype] = {k: data[k] for k in data.files}

    # Interleave: case 2k is spec k in float32, case 2k+1 the same in float64.
    out = {}
    n = int(parts["float32"]["n_cases"])
    assert n == int(parts["float64"]["n_cases"])
    i = 0
    for k in range(n):
        for dtype in DTYPES:
            src = parts[dtype]
            prefix = f"case{k}/"
            for key, value in src.items():
                if key.startswith(prefix) and key != prefix + "name":
                    out[f"case{i}/" + key[len(prefix) :]] = value
            out[f"case{i}/dtype"] = dtype
            print(f"case{i}: {dtype} {src[prefix + 'name']}")
            i += 1
    out["n_cases"] = i
    assert parts["float32"]["keras_version"] == parts["float64"]["keras_version"]
    out["keras_version"] = parts["float32"]["keras_version"]
    np.savez_compressed(OUTPUT, **out)
    print(f"wrote {i} cases to {OUTPUT} ({os.path.getsize(OUTPUT)} bytes)")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
    else:
        main()
