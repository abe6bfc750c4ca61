"""Record golden RMSprop trajectories from torch, optax and TF1 themselves.

Writes ``tests/data/golden_<framework>.npz``, which ``tests/test_flavors.py``
replays through ``RMSprop.like_torch`` / ``like_optax`` / ``like_tf1`` and
``tests/test_reference.py`` through the NumPy reference. None of these
frameworks is a dependency of the package or of its tests; run each part in
a throwaway virtual environment::

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchenv/bin/python tests/data/make_golden_flavors.py torch

    python3 -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install jax==0.10.2 optax==0.2.8
    /tmp/jaxenv/bin/python tests/data/make_golden_flavors.py optax

    python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0
    /tmp/tfenv/bin/python tests/data/make_golden_flavors.py tf1

(The recorded files were produced with exactly those versions, on CPU.)

Each case drives the framework's own optimizer with gradients drawn from a
seeded RNG ahead of time (mixed scales) on three variables (shapes (3, 4),
(5,) and ()), in float32 and float64, for ``STEPS`` steps; float64 runs use
``torch.float64``, JAX's x64 mode (``optax`` runs itself in a subprocess with
``JAX_ENABLE_X64=1``) and ``tf.float64``. Every case stores the arguments of
the matching ``RMSprop.like_<framework>(...)`` call, so the replay needs no
mapping of its own. A learning-rate schedule is the exponential decay
``lr0 * gamma**step`` in each framework's own form (torch's
``ExponentialLR`` stepped after every ``optimizer.step()``, optax's
``exponential_decay``, a TF1 callable of a step counter) and Keras's
``ExponentialDecay(lr0, 1, gamma)`` on our side. The learning rate each step
actually used is recorded too (``lr``): optax evaluates its schedules in
float32 even in x64 mode, and TF1 turns every hyperparameter (the learning
rate included) into a float32 tensor before casting it to the variable's
dtype, so in float64 those two are float32-accurate in their hyperparameters
only.

Layout of each npz file::

    n_cases, framework, version
    case{i}/config      JSON: {"kwargs": like_<framework> keyword arguments,
                               "schedule": null or {"lr0": ..., "gamma": ...}}
    case{i}/dtype       "float32" | "float64"
    case{i}/n_vars      int
    case{i}/x0_{j}      initial value of variable j
    case{i}/grads_{j}   (steps, *shape_j) gradients fed at each step
    case{i}/traj_{j}    (steps, *shape_j) variable value after each step
    case{i}/lr          (steps,) the learning rate the framework applied at each step
"""

import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = ("float32", "float64")
SHAPES = [(3, 4), (5,), ()]
STEPS = 12
SCHEDULE = {"lr0": 0.02, "gamma": 0.9}

#: Arguments of each case, in each framework's own names (those of like_<framework>).
CASES = {
    "torch": [
        {},
        {"momentum": 0.9},
        {"centered": True},
        {"centered": True, "momentum": 0.5},
        {"weight_decay": 0.1},
        {"maximize": True},
        {"eps": 1e-3, "alpha": 0.5},
        {"momentum": 0.9, "centered": True, "weight_decay": 0.05, "maximize": True, "eps": 1e-4},
        {"momentum": 0.9, "schedule": True},
        {"centered": True, "momentum": 0.9, "weight_decay": 0.01, "schedule": True},
    ],
    "optax": [
        {},
        {"eps_in_sqrt": False},
        {"initial_scale": 1.0},
        {"centered": True},
        {"momentum": 0.9},
        {"momentum": 0.9, "nesterov": True},
        {"bias_correction": True},
        {"bias_correction": True, "centered": True, "eps": 1e-4},
        {
            "centered": True,
            "momentum": 0.9,
            "nesterov": True,
            "bias_correction": True,
            "initial_scale": 0.5,
            "eps_in_sqrt": False,
            "decay": 0.8,
        },
        {"momentum": 0.9, "nesterov": True, "schedule": True},
    ],
    "tf1": [
        {},
        {"momentum": 0.9},
        {"centered": True},
        {"centered": True, "momentum": 0.5},
        {"epsilon": 1e-3, "decay": 0.5},
        {"centered": True, "momentum": 0.9, "epsilon": 1e-4, "decay": 0.8},
        {"momentum": 0.9, "schedule": True},
        {"centered": True, "momentum": 0.9, "schedule": True},
    ],
}

#: The learning rate when a case does not set it.
LEARNING_RATE = 0.01


def draw(seed, dtype):
    """Initial values and gradients: a mix of scales, so the averages move."""
    rng = np.random.default_rng(seed)
    x0 = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = []
    for s in SHAPES:
        scale = np.exp(rng.uniform(-3, 1, size=(STEPS,) + (1,) * len(s)))
        grads.append((rng.standard_normal((STEPS,) + s) * scale).astype(dtype))
    return x0, grads


def split(case):
    """``(kwargs, schedule)``: the framework's arguments and the schedule, if any."""
    kwargs = {k: v for k, v in case.items() if k != "schedule"}
    return kwargs, (SCHEDULE if case.get("schedule") else None)


# ------------------------------------------------------------------ frameworks
def run_torch(case, dtype, x0, grads):
    import torch

    kwargs, schedule = split(case)
    params = [torch.tensor(x, dtype=getattr(torch, dtype)) for x in x0]
    lr = schedule["lr0"] if schedule else kwargs.pop("lr", LEARNING_RATE)
    opt = torch.optim.RMSprop(params, lr=lr, **kwargs)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, schedule["gamma"]) if schedule else None
    traj = [[] for _ in params]
    lrs = []
    for t in range(STEPS):
        for p, g in zip(params, grads, strict=False):
            p.grad = torch.tensor(g[t], dtype=p.dtype)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
        for j, p in enumerate(params):
            traj[j].append(p.detach().numpy().copy())
    return traj, lrs, torch.__version__


def run_optax(case, dtype, x0, grads):
    import jax
    import jax.numpy as jnp
    import optax

    assert jax.config.jax_enable_x64 == (dtype == "float64")
    kwargs, schedule = split(case)
    if schedule:
        lr = optax.exponential_decay(
            schedule["lr0"], transition_steps=1, decay_rate=schedule["gamma"]
        )
        lrs = [float(lr(jnp.asarray(t, jnp.int32))) for t in range(STEPS)]
    else:
        lr = LEARNING_RATE
        lrs = [lr] * STEPS
    opt = optax.rmsprop(lr, **kwargs)
    params = [jnp.asarray(x, dtype=dtype) for x in x0]
    state = opt.init(params)
    traj = [[] for _ in params]
    for t in range(STEPS):
        g = [jnp.asarray(gr[t], dtype=dtype) for gr in grads]
        updates, state = opt.update(g, state, params)
        params = optax.apply_updates(params, updates)
        for j, p in enumerate(params):
            assert p.dtype == np.dtype(dtype)
            traj[j].append(np.asarray(p).copy())
    return traj, lrs, optax.__version__


def run_tf1(case, dtype, x0, grads):
    import tensorflow as tf

    kwargs, schedule = split(case)
    variables = [tf.Variable(x, dtype=dtype) for x in x0]
    step = {"t": 0}
    if schedule:

        def lr():
            return schedule["lr0"] * schedule["gamma"] ** step["t"]
    else:
        lr = LEARNING_RATE
    opt = tf.compat.v1.train.RMSPropOptimizer(lr, **kwargs)
    traj = [[] for _ in variables]
    lrs = []
    for t in range(STEPS):
        lrs.append(float(np.float32(lr() if callable(lr) else lr)))  # TF1's float32 tensor
        opt.apply_gradients(
            [(tf.constant(g[t], dtype=dtype), v) for g, v in zip(grads, variables, strict=False)]
        )
        step["t"] += 1
        for j, v in enumerate(variables):
            traj[j].append(v.numpy().copy())
    return traj, lrs, tf.__version__


RUNNERS = {"torch": run_torch, "optax": run_optax, "tf1": run_tf1}


def like_kwargs(framework, case, schedule):
    """The ``RMSprop.like_<framework>`` arguments of ``case``."""
    kwargs = dict(case)
    name = {"torch": "lr", "optax": "learning_rate", "tf1": "learning_rate"}[framework]
    if schedule is None:
        kwargs.setdefault(name, LEARNING_RATE)
    return kwargs


def record(framework, dtypes=DTYPES):
    """Run every case of ``framework`` in ``dtypes``; returns the npz entries."""
    out = {}
    version = None
    index = 0
    for k, case in enumerate(CASES[framework]):
        kwargs, schedule = split(case)
        for d, dtype in enumerate(DTYPES):
            if dtype not in dtypes:
                index += 1
                continue
            x0, grads = draw(1000 * k + d, dtype)
            traj, lrs, version = RUNNERS[framework](case, dtype, x0, grads)
            for t in traj:
                assert np.all(np.isfinite(np.stack(t))), (framework, case, dtype)
            p = f"case{index}/"
            out[p + "config"] = json.dumps(
                {"kwargs": like_kwargs(framework, kwargs, schedule), "schedule": schedule}
            )
            out[p + "dtype"] = dtype
            out[p + "n_vars"] = len(x0)
            out[p + "lr"] = np.asarray(lrs, dtype=np.float64)
            for j, (x, g, t) in enumerate(zip(x0, grads, traj, strict=False)):
                out[p + f"x0_{j}"] = x
                out[p + f"grads_{j}"] = g
                out[p + f"traj_{j}"] = np.stack(t)
            index += 1
    out["n_cases"] = index
    out["framework"] = framework
    out["version"] = version
    return out


def main(argv):
    framework = argv[1]
    path = os.path.join(HERE, f"golden_{framework}.npz")
    if framework == "optax" and len(argv) == 2:
        # JAX's 64-bit mode is a process-wide switch: one child per dtype.
        parts = {}
        for dtype in DTYPES:
            tmp = path + f".{dtype}.npz"
            env = dict(
                os.environ, JAX_ENABLE_X64="1" if dtype == "float64" else "0", JAX_PLATFORMS="cpu"
            )
            subprocess.run([sys.executable, __file__, framework, dtype, tmp], env=env, check=True)
            with np.load(tmp) as f:
                parts[dtype] = dict(f)
            os.remove(tmp)
        merged = dict(parts["float32"])  # each child recorded its dtype's cases only
        merged.update({k: v for k, v in parts["float64"].items() if k.startswith("case")})
        np.savez_compressed(path, **merged)
    elif framework == "optax":
        np.savez_compressed(argv[3], **record(framework, dtypes=(argv[2],)))
        return
    else:
        np.savez_compressed(path, **record(framework))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(sys.argv)
