"""The device-neutral scalar helpers against Keras's array formulas, edge cases included."""

import math

import numpy as np
import pytest
from numba import njit

from numba_rmsprop import _math

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
    scale = njit(_math.global_clip_scale) if compiled else _math.global_clip_scale
    denom = njit(_math.clipnorm_denominator) if compiled else _math.clipnorm_denominator
    assert same(scale(sumsq, c), keras_global_scale(sumsq, c))
    assert same(denom(sumsq, c), keras_clipnorm_denominator(sumsq, c))


def test_centered_denominator_clamps_only_negative_values():
    f32 = np.float32
    assert _math.centered_denominator(f32(1.0), f32(0.5), f32(1e-7)) == f32(1.0) - f32(0.25) + f32(1e-7)
    d = _math.centered_denominator(f32(0.25), f32(0.5000001), f32(1e-7))
    assert d == f32(1e-7) and type(d) is np.float32
    assert math.isnan(_math.centered_denominator(f32(np.nan), f32(0.5), f32(1e-7)))


def test_clip_by_value_keeps_nan():
    assert _math.clip_by_value(5.0, 1.0) == 1.0
    assert _math.clip_by_value(-5.0, 1.0) == -1.0
    assert _math.clip_by_value(0.5, 1.0) == 0.5
    assert math.isnan(_math.clip_by_value(math.nan, 1.0))
