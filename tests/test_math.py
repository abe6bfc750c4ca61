"""The device-neutral formulas and element rule against Keras's array formulas, edge cases
included."""

import math

import numpy as np
import pytest
from numba import njit

from numba_rmsprop.engine import clipping, layout, rule

SUMSQ = [0.0, 1e-300, 0.25, 1.0, 4.0, 1e300, math.inf, math.nan]
CLIPS = [0.5, 1.0, 3.0]


def keras_global_scale(sumsq, c):
    """``clip_by_global_norm`` from keras/src/optimizers/base_optimizer.py."""
    with np.errstate(all="ignore"):
        n = np.sqrt(np.float64(sumsq))
        return float(c * np.minimum(1.0 / n, 1.0 / c) + (n - n))


def keras_clipnorm_denominator(sumsq, c):
    """``_clip_by_norm``'s ``maximum(l2norm, clipnorm)``."""
    l2sum = np.float64(sumsq)
    pred = l2sum > 0
    l2norm = np.where(pred, np.sqrt(np.where(pred, l2sum, 1.0)), l2sum)
    return float(np.maximum(l2norm, c))


def same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("compiled", [False, True], ids=["python", "numba"])
@pytest.mark.parametrize("c", CLIPS)
@pytest.mark.parametrize("sumsq", SUMSQ)
def test_clip_formulas_match_keras(sumsq, c, compiled):
    scale = njit(clipping.global_clip_scale) if compiled else clipping.global_clip_scale
    denom = njit(clipping.clipnorm_denominator) if compiled else clipping.clipnorm_denominator
    assert same(scale(sumsq, c), keras_global_scale(sumsq, c))
    assert same(denom(sumsq, c), keras_clipnorm_denominator(sumsq, c))


def _centered_step(v, mg, g, eps, dtype=np.float32):
    """One centered update of a single element through the plain-Python rule (rho=0.5, lr=1)."""
    t = np.dtype(dtype).type
    x, ga, va, mga = (np.array([t(a)]) for a in (0.0, g, v, mg))
    s = np.zeros(layout.N_SLOTS, dtype)
    s[layout.RHO], s[layout.ONE_MINUS_RHO], s[layout.EPSILON] = 0.5, 0.5, eps
    s[layout.LEARNING_RATE] = 1
    rule.update_element(
        0,
        x,
        ga,
        va,
        mga,
        None,
        None,
        None,
        tuple(s),
        (None,) * len(rule.SWITCHES),
        None,
        None,
        True,
        False,
    )
    return x[0], va[0], mga[0]


def test_centered_denominator_clamps_only_negative_values():
    f32 = np.float32
    # v - mg**2 > 0: exactly Keras's v - mg**2 + eps under the square root.
    x, v, mg = _centered_step(2.0, 1.0, 0.0, 1e-7)
    assert type(x) is np.float32 and v == f32(1.0) and mg == f32(0.5)
    assert x == -(f32(0.0) / np.sqrt(v - mg * mg + f32(1e-7)))
    x, v, mg = _centered_step(2.0, 1.0, 1.0, 1e-7)
    assert x == -(f32(1.0) / np.sqrt(v - mg * mg + f32(1e-7)))
    # Rounding makes v - mg**2 negative (Keras: sqrt of a negative, NaN): clamped at
    # 0, leaving sqrt(eps).
    x, v, mg = _centered_step(1 - 4 * 2.0**-24, 1.0, 1.0, 1e-7)
    assert v - mg * mg < 0 and v - mg * mg + f32(1e-7) < 0
    assert x == -(f32(1.0) / np.sqrt(f32(1e-7)))
    x, v, mg = _centered_step(np.nan, 0.5, 1.0, 1e-7)
    assert math.isnan(x)


def test_clip_by_value_keeps_nan():
    assert clipping.clip_by_value(5.0, 1.0) == 1.0
    assert clipping.clip_by_value(-5.0, 1.0) == -1.0
    assert clipping.clip_by_value(0.5, 1.0) == 0.5
    assert math.isnan(clipping.clip_by_value(math.nan, 1.0))
