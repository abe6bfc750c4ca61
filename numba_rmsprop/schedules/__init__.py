"""Learning-rate schedules with the exact semantics of Keras 3.

Every class mirrors the schedule of the same name in
``keras.optimizers.schedules`` (argument names, defaults, formulas, edge
cases and ``get_config`` keys), with two deliberate differences:

* everything is evaluated in float64 with NumPy (Keras on the JAX backend
  evaluates in float32, even after ``keras.config.set_floatx("float64")``;
  with ``JAX_ENABLE_X64`` set it still evaluates ``cos`` in float32), and
* a schedule can be called with an integer array of steps, in which case the
  whole array is evaluated at once (no Python loop over steps), so that a
  compiled training loop can precompute ``schedule(np.arange(n_steps))``.
  Scalar calls return exactly the same values as the vectorised call.

A step may be anything Keras takes: a Python or NumPy integer or float,
negative ones included, a 0-d array or an array of steps; the value is
Keras's formula at that step (e.g. ``PiecewiseConstantDecay`` gives
``values[0]`` at a negative step, ``ExponentialDecay`` grows backwards).

Beyond Keras, constructor arguments are validated (``TypeError`` /
``ValueError`` naming the argument), steps must be finite and not bool
(Keras would compute NaN or treat ``True`` as 1), ``CosineDecayRestarts``
raises where its closed form has no period (Keras returns NaN there), and it
does not inherit a float64 rounding artifact of Keras at some restart steps
(see its docstring).

This package is pure Python + NumPy and does not depend on the rest of
``numba_rmsprop``: :mod:`.base` holds the base class and the argument checks,
:mod:`.decays` the six schedules, :mod:`.serialization` the config round trip.
"""

from .base import LearningRateSchedule
from .decays import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
)
from .serialization import deserialize, serialize

__all__ = [
    "LearningRateSchedule",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "CosineDecay",
    "CosineDecayRestarts",
    "serialize",
    "deserialize",
]
