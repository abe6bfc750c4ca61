"""numba_rmsprop against trajectories recorded from Keras 3 itself.

Each case was produced by ``tests/data/make_golden_rmsprop.py``: Keras's
``RMSprop`` (JAX backend) driven with pre-drawn gradients.  Here the same
gradients go through ``numba_rmsprop.RMSprop.from_config(keras_config)`` and
the variables (NumPy arrays, updated in place) must follow Keras's values
after every step, plus the values after ``finalize_variable_values`` for EMA
cases.  The same replay checks the plain-NumPy reference in
``test_reference.py``, with tighter tolerances.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import golden  # noqa: E402

import numba_rmsprop as nr  # noqa: E402

CASES = golden.load_cases()


@pytest.mark.parametrize("case", CASES, ids=golden.case_id)
def test_matches_keras(case):
    opt = nr.RMSprop.from_config(case.config_copy())
    result = golden.replay(opt, case)
    golden.assert_replay_matches(case, result, golden.tolerance(case, golden.PACKAGE_TOLERANCES))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_doc_example(dtype):
    # keras.optimizers.RMSprop docstring: lr 0.1, var 10.0, loss var**2 / 2.
    var = np.array(10.0, dtype=dtype)
    opt = nr.RMSprop(learning_rate=0.1)
    opt.apply([var.copy()], [var])  # d(loss)/d(var) = var
    assert var.dtype == np.dtype(dtype)
    assert abs(float(var) - 9.683772) < 1e-6
    assert int(opt.iterations) == 1
