"""Generate ``keras_schedules.npz``: golden learning-rate schedule values from Keras 3.

Keras is not a dependency of the package or its tests. Run this script with a
throwaway virtual environment that has Keras 3 and JAX (recorded with Keras
3.15.1, JAX 0.10.2, CPU), from the repository root::

    python3 -m venv /tmp/kerasenv
    /tmp/kerasenv/bin/pip install "keras==3.15.1" "jax[cpu]==0.10.2"
    KERAS_BACKEND=jax /tmp/kerasenv/bin/python tests/data/make_golden_schedules.py

It takes about 15 minutes (every step is a separate eager call, and the
``ops.cond`` in ``CosineDecay``/``CosineDecayRestarts`` is re-traced per call).

For every configuration below the script stores, under a zero-padded index
``NNN``:

* ``config_NNN``  -- JSON string of ``keras.optimizers.schedules.serialize(sched)``
* ``steps_NNN``   -- the steps (int64 for integer steps, float64 for real steps)
* ``f64_NNN``     -- Keras values computed in float64: JAX with ``jax_enable_x64``
  on, ``keras.config.set_floatx("float64")`` and Keras's JAX/NumPy-specific
  demotion of float64 results to float32 (``BIT64_TO_BIT32_DTYPE`` in
  ``keras/src/backend/common/dtypes.py``) switched off for float64 (that
  mapping already keeps float64 when the backend is TensorFlow)
* ``f32_NNN``     -- Keras values as a default Keras/JAX install computes them
  (``jax_enable_x64`` off: float32, whatever ``floatx`` says)

plus ``keras_version`` and ``jax_version``. Every step is evaluated by a
separate scalar call ``sched(step)`` (as Keras's optimizers call schedules),
with the step passed as a Python ``int`` (integer steps) or ``float``.

Finding: on the JAX backend ``keras.config.set_floatx("float64")`` alone does
*not* make schedules compute in float64 -- JAX silently keeps float32 unless
``jax_enable_x64`` is on. Even with x64 on, ``keras.ops.cos`` (and every op
whose dtype goes through ``keras.backend.result_type``) maps float64 to
float32 on non-TensorFlow backends, so ``CosineDecay`` returns float32 and
``CosineDecayRestarts`` returns float64 computed from a float32 cosine. Hence
the patch above for the float64 reference. The script asserts the result
dtypes it expects.

The three ``knife_edge`` configurations record a Keras float64 rounding
artifact: at some restart steps ``floor(log(.) / log(t_mul))`` rounds down and
``CosineDecayRestarts`` returns the old period's end value ``lr * alpha``
instead of the new peak. ``numba_rmsprop.schedules`` deliberately returns the
exact-arithmetic value there; ``tests/test_schedules.py`` checks both facts.
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras.src.backend.common import dtypes as kdtypes  # noqa: E402

S = keras.optimizers.schedules

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_schedules.npz")

INT_STEPS = np.concatenate(
    [np.arange(0, 201), [255, 256, 1000, 1023, 1024, 4096, 10_000, 123_457, 1_000_000, 10_000_001]]
).astype(np.int64)
FLOAT_STEPS = np.concatenate(
    [
        np.arange(0, 201, dtype=np.float64),
        [0.25, 0.5, 9.5, 10.25, 10.5, 10.75, 20.5, 33.3, 149.9, 150.0, 150.1, 1e6 + 0.5],
    ]
)

# (keras schedule, steps) -- 47 configurations covering every class and option.
CONFIGS = [
    # ExponentialDecay
    (S.ExponentialDecay(0.1, 100, 0.96), INT_STEPS),
    (S.ExponentialDecay(0.1, 10, 0.5, staircase=True), INT_STEPS),
    (S.ExponentialDecay(1.0, 7, 0.9), INT_STEPS),
    (S.ExponentialDecay(0.05, 3.5, 0.8, staircase=True, name="exp_float_steps"), INT_STEPS),
    # growth; 1.001 is not a float32 number, so stock Keras drifts (test tolerance keyed on
    # the name)
    (S.ExponentialDecay(0.01, 1, 1.001, name="growth"), INT_STEPS[INT_STEPS <= 10_000]),
    (S.ExponentialDecay(0.1, 10, 0.5, staircase=True), FLOAT_STEPS),
    # PiecewiseConstantDecay
    (S.PiecewiseConstantDecay([10, 50, 100], [1.0, 0.5, 0.1, 0.01]), INT_STEPS),
    (S.PiecewiseConstantDecay([10, 50, 100], [1.0, 0.5, 0.1, 0.01]), FLOAT_STEPS),
    (S.PiecewiseConstantDecay([10.5, 20.5, 150.0], [0.1, 0.05, 0.02, 0.001]), INT_STEPS),
    (S.PiecewiseConstantDecay([10.5, 20.5, 150.0], [0.1, 0.05, 0.02, 0.001]), FLOAT_STEPS),
    (S.PiecewiseConstantDecay([0], [0.3, 0.2]), INT_STEPS),
    (S.PiecewiseConstantDecay([100], [1, 2], name="int_values"), INT_STEPS),
    (S.PiecewiseConstantDecay([-0.5, 5.0], [1.0, 2.0, 3.0]), INT_STEPS),  # trunc edge
    (S.PiecewiseConstantDecay([-0.5, 5.0], [1.0, 2.0, 3.0]), FLOAT_STEPS),
    # PolynomialDecay
    (S.PolynomialDecay(0.1, 100), INT_STEPS),
    (S.PolynomialDecay(0.1, 50, 0.01, power=0.5), INT_STEPS),
    (S.PolynomialDecay(0.1, 30, 0.001, power=2.0, cycle=True), INT_STEPS),
    (S.PolynomialDecay(1.0, 7, 0.0, power=1.0, cycle=True), INT_STEPS),
    (S.PolynomialDecay(0.5, 40, 0.05, power=3.0, cycle=False), INT_STEPS),
    (S.PolynomialDecay(0.1, 2.5, 0.01, power=1.5, cycle=True), INT_STEPS),
    (S.PolynomialDecay(0.1, 0.3, 0.01, power=1.0, cycle=True), INT_STEPS[:60]),
    (S.PolynomialDecay(0.2, 20, 0.02, power=0.0), INT_STEPS),
    (S.PolynomialDecay(0.1, 30, 0.001, power=2.0, cycle=True), FLOAT_STEPS),
    # InverseTimeDecay
    (S.InverseTimeDecay(0.1, 1.0, 0.5), INT_STEPS),
    (S.InverseTimeDecay(0.1, 10, 0.5, staircase=True), INT_STEPS),
    (S.InverseTimeDecay(1.0, 3, 2.0), INT_STEPS),
    (S.InverseTimeDecay(0.2, 7.5, 0.1, staircase=True), INT_STEPS),
    (S.InverseTimeDecay(0.2, 7.5, 0.1, staircase=True), FLOAT_STEPS),
    # CosineDecay
    (S.CosineDecay(0.1, 100), INT_STEPS),
    (S.CosineDecay(0.1, 50, alpha=0.1), INT_STEPS),
    (S.CosineDecay(0.0, 100, warmup_target=0.1, warmup_steps=20), INT_STEPS),
    (S.CosineDecay(0.01, 80, alpha=0.05, warmup_target=0.2, warmup_steps=30), INT_STEPS),
    (S.CosineDecay(0.05, 60, warmup_target=0.1, warmup_steps=0), INT_STEPS),
    (S.CosineDecay(0.1, 1000), INT_STEPS),
    (S.CosineDecay(0.1, 30, alpha=0.2, warmup_target=None, warmup_steps=10), INT_STEPS),
    (S.CosineDecay(0.3, 12.5, alpha=0.1, warmup_target=0.5, warmup_steps=7.5), FLOAT_STEPS),
    # CosineDecayRestarts
    (S.CosineDecayRestarts(0.1, 10), INT_STEPS),
    (S.CosineDecayRestarts(0.1, 20, t_mul=1.0, m_mul=0.5), INT_STEPS),
    (S.CosineDecayRestarts(0.1, 7, t_mul=1.5, m_mul=0.9, alpha=0.1), INT_STEPS),
    (S.CosineDecayRestarts(1.0, 13, t_mul=3.0, m_mul=0.8, alpha=0.05), INT_STEPS),
    (S.CosineDecayRestarts(0.1, 5, t_mul=1.0, m_mul=1.0, alpha=0.0), INT_STEPS),
    (S.CosineDecayRestarts(0.1, 4, t_mul=2.0, m_mul=0.7, alpha=0.1), INT_STEPS),
    # t_mul < 1: the periods add up to 9 / (1 - 0.8) = 45 steps; Keras gives NaN from there on
    (
        S.CosineDecayRestarts(0.1, 9, t_mul=0.8, m_mul=1.0, alpha=0.0, name="tmul_below_one"),
        INT_STEPS[:45],
    ),
    # restart steps where float64 floor(log(.)/log(t_mul)) lands just below an integer
    # (steps 121, 111 and 91 respectively), see tests/test_schedules.py
    (S.CosineDecayRestarts(1.0, 1, t_mul=3.0, m_mul=0.5, name="knife_edge"), INT_STEPS),
    (
        S.CosineDecayRestarts(0.1, 1, t_mul=10.0, m_mul=0.5, alpha=0.01, name="knife_edge"),
        INT_STEPS,
    ),
    (S.CosineDecayRestarts(0.1, 25, t_mul=1.2, m_mul=0.5, alpha=0.1, name="knife_edge"), INT_STEPS),
    (S.CosineDecayRestarts(0.1, 10), FLOAT_STEPS),
]


def evaluate(sched, steps, x64):
    jax.config.update("jax_enable_x64", x64)
    keras.config.set_floatx("float64" if x64 else "float32")
    kdtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64" if x64 else "float32"
    want = np.float64 if x64 else np.float32
    out = np.empty(len(steps), dtype=np.float64)
    for k, s in enumerate(steps):
        step = int(s) if steps.dtype.kind == "i" else float(s)
        v = np.asarray(sched(step))
        # integer `values` make PiecewiseConstantDecay return an integer dtype
        assert v.dtype == want or v.dtype.kind == "i", (sched, v.dtype)
        out[k] = float(v)
    return out


def main():
    arrays = {
        "keras_version": np.array(keras.__version__),
        "jax_version": np.array(jax.__version__),
    }
    for k, (sched, steps) in enumerate(CONFIGS):
        cfg = S.serialize(sched)
        key = f"{k:03d}"
        arrays[f"config_{key}"] = np.array(json.dumps(cfg))
        arrays[f"steps_{key}"] = steps
        arrays[f"f64_{key}"] = evaluate(sched, steps, x64=True)
        arrays[f"f32_{key}"] = evaluate(sched, steps, x64=False)
        print(key, cfg["class_name"], json.dumps(cfg["config"]), file=sys.stderr)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {len(CONFIGS)} configurations to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
