"""Tests of ``numba_rmsprop.schedules`` against Keras 3 and closed forms.

Golden data: ``tests/data/keras_schedules.npz`` (see
``tests/data/make_golden_schedules.py``). It holds, per configuration, the
Keras-serialized schedule, the steps, Keras's values computed in float64
(``f64``, JAX x64 with Keras's float64->float32 demotion switched off) and the
values stock Keras computes on JAX (``f32``: float32).
"""

import json
import math
import pathlib
import pickle
import sys
from fractions import Fraction

import numpy as np
import pytest

from numba_rmsprop import schedules

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference  # noqa: E402  (tests/reference.py)

from numba_rmsprop.schedules import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    PolynomialDecay,
    deserialize,
    serialize,
)

DATA = pathlib.Path(__file__).parent / "data" / "keras_schedules.npz"
CLASSES = [
    ExponentialDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
    InverseTimeDecay,
    CosineDecay,
    CosineDecayRestarts,
]


def _load_golden():
    with np.load(DATA) as d:
        keys = sorted(k[len("config_") :] for k in d.files if k.startswith("config_"))
        return [
            (
                key,
                json.loads(str(d[f"config_{key}"])),
                d[f"steps_{key}"],
                d[f"f64_{key}"],
                d[f"f32_{key}"],
            )
            for key in keys
        ]


GOLDEN = _load_golden()
GOLDEN_IDS = [f"{key}-{cfg['class_name']}-{cfg['config']['name']}" for key, cfg, *_ in GOLDEN]


def test_golden_file_covers_every_class_and_option():
    seen = {}
    for _, cfg, steps, _, _ in GOLDEN:
        seen.setdefault(cfg["class_name"], []).append((cfg["config"], steps.dtype.kind))
    assert set(seen) == {c.__name__ for c in CLASSES}
    assert len(GOLDEN) >= 30
    opts = {name: [c for c, _ in v] for name, v in seen.items()}
    assert {c["staircase"] for c in opts["ExponentialDecay"]} == {True, False}
    assert {c["staircase"] for c in opts["InverseTimeDecay"]} == {True, False}
    assert {c["cycle"] for c in opts["PolynomialDecay"]} == {True, False}
    assert {c["warmup_target"] is None for c in opts["CosineDecay"]} == {True, False}
    assert any(c["alpha"] > 0 for c in opts["CosineDecay"])
    assert {c["t_mul"] == 1.0 for c in opts["CosineDecayRestarts"]} == {True, False}
    assert any(c["m_mul"] != 1.0 for c in opts["CosineDecayRestarts"])
    assert any(c["t_mul"] < 1.0 for c in opts["CosineDecayRestarts"])
    pw = seen["PiecewiseConstantDecay"]
    # float and int boundaries, each with integer and real steps
    assert {(isinstance(c["boundaries"][0], float), k) for c, k in pw} >= {
        (True, "i"),
        (True, "f"),
        (False, "i"),
        (False, "f"),
    }


# --------------------------------------------------------------------------
# exact (rational-arithmetic) restart structure of CosineDecayRestarts
# --------------------------------------------------------------------------
def _restart_position(step, first_decay_steps, t_mul):
    """(restart index, fraction of the period, period length in steps), exactly.

    Uses rational arithmetic on the double values of the arguments.
    """
    cf = Fraction(step) / Fraction(first_decay_steps)
    t = Fraction(t_mul)
    if t == 1:
        i = math.floor(cf)
        return i, cf - i, Fraction(first_decay_steps)
    start, length, i = Fraction(0), Fraction(1), 0
    while cf >= start + length:
        start += length
        length *= t
        i += 1
    return i, (cf - start) / length, length * Fraction(first_decay_steps)


def _cdr_exact(step, c):
    i, frac, _ = _restart_position(step, c["first_decay_steps"], c["t_mul"])
    lr, alpha = c["initial_learning_rate"], c["alpha"]
    return lr * (
        (1 - alpha) * 0.5 * c["m_mul"] ** i * (1 + math.cos(math.pi * float(frac))) + alpha
    )


def _near_restart(cfg, steps, tol_steps):
    """Masks (near, exact): steps within ``tol_steps`` of a restart / exactly on one."""
    near = np.zeros(steps.shape, dtype=bool)
    exact = np.zeros(steps.shape, dtype=bool)
    if cfg["class_name"] != "CosineDecayRestarts":
        return near, exact
    c = cfg["config"]
    for k, s in enumerate(steps):
        s = int(s) if steps.dtype.kind == "i" else float(s)
        i, frac, length = _restart_position(s, c["first_decay_steps"], c["t_mul"])
        exact[k] = i > 0 and frac == 0
        near[k] = s > 0 and min(frac, 1 - frac) * length < tol_steps
    return near, exact


def _restart_candidates(step, c):
    """Values Keras may give near a restart: the end of a period or a peak."""
    i, _, _ = _restart_position(step, c["first_decay_steps"], c["t_mul"])
    lr, alpha, m = c["initial_learning_rate"], c["alpha"], c["m_mul"]
    return [lr * alpha] + [lr * ((1 - alpha) * m**j + alpha) for j in (i, i + 1)]


def _is_one_of(values, candidates, rtol):
    return np.array(
        [
            any(math.isclose(v, w, rel_tol=rtol, abs_tol=1e-300) for w in cands)
            for v, cands in zip(values, candidates, strict=False)
        ]
    )


# --------------------------------------------------------------------------
# golden values from Keras
# --------------------------------------------------------------------------
@pytest.mark.parametrize("key,cfg,steps,f64,f32", GOLDEN, ids=GOLDEN_IDS)
def test_golden_float64(key, cfg, steps, f64, f32):
    sched = deserialize(cfg)
    assert type(sched).__name__ == cfg["class_name"]
    ours = sched(steps)
    assert ours.dtype == np.float64 and ours.shape == steps.shape
    near, exact = _near_restart(cfg, steps, tol_steps=1e-6)
    # Away from restarts: Keras's own float64 arithmetic, up to a few ulp.
    np.testing.assert_allclose(ours[~near], f64[~near], rtol=1e-13, atol=0)
    if not near.any():
        return
    # At (or within rounding of) a restart, Keras float64 may floor
    # log(.)/log(t_mul) to the wrong period and return the old period's end
    # (lr * alpha) instead of the new peak. We return the exact-arithmetic value.
    c = cfg["config"]
    want = np.array([_cdr_exact(s.item(), c) for s in steps[near]])
    np.testing.assert_allclose(ours[near], want, rtol=1e-9, atol=0)
    cands = [_restart_candidates(s.item(), c) for s in steps[near]]
    assert _is_one_of(f64[near], cands, 1e-12).all()
    artifact = ~np.isclose(f64[near], ours[near], rtol=1e-9, atol=0)
    if c["name"] != "knife_edge":
        np.testing.assert_allclose(ours[near], f64[near], rtol=1e-13, atol=0)
        return
    # The knife_edge configurations were chosen because Keras float64 hits the
    # artifact there; and where the step is exactly on a restart, stock
    # (float32) Keras restarts correctly.
    assert artifact.any()
    np.testing.assert_allclose(
        f64[near][artifact], c["initial_learning_rate"] * c["alpha"], rtol=1e-12
    )
    on_tie = artifact & exact[near]
    np.testing.assert_allclose(f32[near][on_tie], ours[near][on_tie], rtol=1e-6)


# Stock Keras on JAX computes in float32. 1.001 is not a float32 number and
# the exponent (up to 1024 here) amplifies its rounding error ~1000 times.
F32_TOL = {"growth": 1e-4}


@pytest.mark.parametrize("key,cfg,steps,f64,f32", GOLDEN, ids=GOLDEN_IDS)
def test_golden_float32_stock_keras(key, cfg, steps, f64, f32):
    # Beyond ~1000 steps float32 step / decay_steps loses the fraction.
    sel = steps <= 1024
    ours = deserialize(cfg)(steps[sel])
    scale = np.max(np.abs(f64[sel]))
    tol = F32_TOL.get(cfg["config"]["name"], 1e-5)
    # t_mul rounded to float32 moves restarts by up to ~1e-3 steps here; at a
    # step that close to a restart float32 Keras may be in either period.
    near, _ = _near_restart(cfg, steps[sel], tol_steps=1e-3)
    np.testing.assert_allclose(ours[~near], f32[sel][~near], rtol=0, atol=tol * scale)
    if near.any():
        cands = [_restart_candidates(s.item(), cfg["config"]) for s in steps[sel][near]]
        assert _is_one_of(f32[sel][near], cands, 1e-5).all()


@pytest.mark.parametrize("key,cfg,steps,f64,f32", GOLDEN, ids=GOLDEN_IDS)
def test_get_config_matches_keras(key, cfg, steps, f64, f32):
    sched = deserialize(cfg)
    config = sched.get_config()
    assert list(config) == list(cfg["config"])  # same keys, same order
    assert config == cfg["config"]
    # types survive too (ints stay ints: Keras's JSON keeps them apart)
    assert [type(v) for v in config.values()] == [type(v) for v in cfg["config"].values()]
    assert serialize(sched) == {"class_name": cfg["class_name"], "config": cfg["config"]}


@pytest.mark.parametrize("key,cfg,steps,f64,f32", GOLDEN, ids=GOLDEN_IDS)
def test_vectorised_equals_scalar(key, cfg, steps, f64, f32):
    sched = deserialize(cfg)
    vec = sched(steps)
    conv = int if steps.dtype.kind == "i" else float
    scal = [sched(conv(s)) for s in steps]
    assert all(type(v) is float for v in scal)
    np.testing.assert_array_equal(vec, np.array(scal))
    # NumPy scalars behave like Python scalars; 2-D arrays keep their shape.
    assert sched(steps[-1]) == scal[-1] and type(sched(steps[-1])) is float
    n = (len(steps) // 2) * 2
    np.testing.assert_array_equal(sched(steps[:n].reshape(2, -1)), vec[:n].reshape(2, -1))


# --------------------------------------------------------------------------
# independent closed forms (math, float64)
# --------------------------------------------------------------------------
STEPS = [0, 1, 2, 5, 9, 10, 11, 17, 29, 30, 31, 60, 99, 100, 101, 250, 12345]


def _check(sched, ref, steps=STEPS):
    got = np.array([sched(s) for s in steps])
    want = np.array([ref(s) for s in steps])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(sched(np.array(steps)), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize("decay_steps", [10, 7.5])
def test_exponential_closed_form(staircase, decay_steps):
    lr, rate = 0.3, 0.85

    def ref(s):
        p = s / decay_steps
        return lr * rate ** (math.floor(p) if staircase else p)

    _check(ExponentialDecay(lr, decay_steps, rate, staircase=staircase), ref)


@pytest.mark.parametrize("staircase", [False, True])
def test_inverse_time_closed_form(staircase):
    lr, ds, rate = 0.2, 9, 0.7

    def ref(s):
        p = math.floor(s / ds) if staircase else s / ds
        return lr / (1 + rate * p)

    _check(InverseTimeDecay(lr, ds, rate, staircase=staircase), ref)


@pytest.mark.parametrize("cycle", [False, True])
@pytest.mark.parametrize("power", [1.0, 0.5, 2.5])
def test_polynomial_closed_form(cycle, power):
    lr, ds, end = 0.1, 30, 0.002

    def ref(s):
        if cycle:
            d = ds * max(1, math.ceil(s / ds))
        else:
            d, s = ds, min(s, ds)
        return (lr - end) * (1 - s / d) ** power + end

    _check(PolynomialDecay(lr, ds, end, power=power, cycle=cycle), ref)


def test_piecewise_closed_form():
    bounds, vals = [10, 30, 100], [0.5, 0.25, 0.125, 0.01]

    def ref(s):
        for b, v in zip(bounds, vals, strict=False):
            if s <= b:
                return v
        return vals[-1]

    _check(PiecewiseConstantDecay(bounds, vals), ref)


@pytest.mark.parametrize("alpha", [0.0, 0.25])
def test_cosine_closed_form(alpha):
    lr, ds = 0.1, 60

    def ref(s):
        s = min(s, ds)
        return lr * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / ds)) + alpha)

    _check(CosineDecay(lr, ds, alpha=alpha), ref)


def test_cosine_warmup_closed_form():
    lr, ds, target, ws, alpha = 0.01, 60, 0.2, 17, 0.1

    def ref(s):
        if s < ws:
            return lr + (target - lr) * s / ws
        s = min(s - ws, ds)
        return target * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / ds)) + alpha)

    _check(CosineDecay(lr, ds, alpha=alpha, warmup_target=target, warmup_steps=ws), ref)


def test_cosine_warmup_ends_in_decay_branch():
    # step == warmup_steps is already in the decay branch (`step < warmup_steps`
    # selects warmup), which gives warmup_target exactly; the warmup formula
    # would give (0.3 - 0.03) * 1 + 0.03 = 0.30000000000000004.
    lr, target, ws = 0.03, 0.3, 10
    assert (target - lr) * (ws / ws) + lr != target
    s = CosineDecay(lr, 50, warmup_target=target, warmup_steps=ws)
    assert s(ws) == target
    assert s(ws - 1) == (target - lr) * ((ws - 1) / ws) + lr


@pytest.mark.parametrize(
    "fds,t_mul,m_mul,alpha",
    [
        (10, 2.0, 1.0, 0.0),
        (7, 1.5, 0.9, 0.1),
        (10, 1.0, 0.5, 0.05),
        (1, 3.0, 0.5, 0.0),
        (4, 0.9, 0.8, 0.1),
    ],
)
def test_cosine_restarts_closed_form(fds, t_mul, m_mul, alpha):
    c = dict(
        initial_learning_rate=0.3, first_decay_steps=fds, t_mul=t_mul, m_mul=m_mul, alpha=alpha
    )
    steps = list(range(0, 200)) + [364, 1093, 3280]  # incl. restarts for t_mul=3
    if t_mul < 1:
        steps = list(range(0, 40))  # horizon 4 / 0.1 = 40
    _check(CosineDecayRestarts(**c), lambda s: _cdr_exact(s, c), steps)


# --------------------------------------------------------------------------
# documented edge cases
# --------------------------------------------------------------------------
def test_piecewise_low_high_interval_semantics():
    s = PiecewiseConstantDecay([10, 20], [1.0, 2.0, 3.0])
    assert [s(x) for x in (0, 9, 10, 11, 19, 20, 21)] == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0]
    assert [s(x) for x in (10.0, 10.5, 20.0, 20.25)] == [1.0, 2.0, 2.0, 3.0]


def test_piecewise_boundaries_cast_to_step_dtype():
    # Keras casts boundaries to the step's dtype: -0.5 truncates to 0 for an
    # integer step, so step 0 is "<= boundary" there but not for a float step.
    s = PiecewiseConstantDecay([-0.5, 5.0], [1.0, 2.0, 3.0])
    assert s(0) == 1.0 and s(np.int32(0)) == 1.0
    assert s(0.0) == 2.0
    np.testing.assert_array_equal(s(np.array([0, 1, 5, 6])), [1.0, 2.0, 2.0, 3.0])
    np.testing.assert_array_equal(s(np.array([0.0, 1.0, 5.0, 6.0])), [2.0, 2.0, 2.0, 3.0])


def test_piecewise_integer_values_give_float_output():
    s = PiecewiseConstantDecay([3], [1, 2])
    assert type(s(5)) is float and s(5) == 2.0
    assert s(np.arange(6)).dtype == np.float64


def test_polynomial_cycle_at_step_zero_uses_multiplier_one():
    s = PolynomialDecay(1.0, 10, 0.0, power=1.0, cycle=True)
    assert s(0) == 1.0
    # ceil(step / decay_steps): step 10 ends the first cycle, 11 starts the second
    assert s(10) == 0.0
    assert s(11) == pytest.approx(1 - 11 / 20, rel=1e-15)
    assert s(20) == 0.0


def test_polynomial_without_cycle_clamps():
    s = PolynomialDecay(0.5, 10, 0.1, power=2.0)
    assert s(10) == pytest.approx(0.1, rel=1e-15) and s(10**6) == s(10)


def test_cosine_warmup_target_with_zero_warmup_steps_ignores_initial_lr():
    a = CosineDecay(0.05, 60, warmup_target=0.1, warmup_steps=0)
    b = CosineDecay(0.1, 60)
    np.testing.assert_array_equal(a(np.arange(100)), b(np.arange(100)))


def test_cosine_warmup_steps_ignored_without_target():
    a = CosineDecay(0.1, 30, alpha=0.2, warmup_steps=10)
    b = CosineDecay(0.1, 30, alpha=0.2)
    np.testing.assert_array_equal(a(np.arange(50)), b(np.arange(50)))


def test_cosine_restarts_alpha_not_scaled_by_m_mul():
    s = CosineDecayRestarts(1.0, 10, t_mul=1.0, m_mul=0.5, alpha=0.2)
    # the value just before a restart approaches alpha, not alpha * m_mul**i
    assert s(19.9999) == pytest.approx(0.2, abs=1e-8)
    assert s(19.9999) != pytest.approx(0.2 * 0.5, abs=1e-3)
    assert s(20) == pytest.approx(0.8 * 0.25 + 0.2, rel=1e-15)


def test_cosine_restarts_knife_edge_restarts_at_peak():
    # log(243) / log(3) rounds to 4.999...; Keras float64 would give alpha here.
    s = CosineDecayRestarts(1.0, 1, t_mul=3.0, m_mul=0.5, alpha=0.1)
    assert math.floor(math.log(1 + 121 * 2) / math.log(3.0)) == 4  # the trap is real
    assert s(121) == pytest.approx(0.9 * 0.5**5 + 0.1, rel=1e-15)
    assert s(120) == pytest.approx(
        0.9 * 0.5**4 * 0.5 * (1 + math.cos(math.pi * 80 / 81)) + 0.1, rel=1e-12
    )


def test_cosine_restarts_t_mul_below_one_horizon():
    # periods add up to 9 / (1 - 0.8) = 45 steps (45.0000000000001 for the
    # double nearest 0.8, so step 45 itself is still inside)
    s = CosineDecayRestarts(0.1, 9, t_mul=0.8)
    assert np.all(np.isfinite(s(np.arange(46))))
    with pytest.raises(ValueError, match="step"):
        s(46)
    with pytest.raises(ValueError, match="step"):
        s(np.arange(50))
    with pytest.raises(ValueError, match="step"):
        s(10**6)


def test_float64_not_float32():
    s = ExponentialDecay(0.1, 100, 0.96)
    exact = 0.1 * 0.96**0.37
    f32 = float(np.float32(0.1) * np.float32(0.96) ** np.float32(0.37))
    assert abs(f32 - exact) > 1e-10  # float32 evaluation would be visibly off
    assert s(37) == pytest.approx(exact, rel=1e-15, abs=0)
    c = CosineDecay(0.1, 7)
    exact = 0.1 * (0.5 * (1.0 + math.cos(math.pi * (3 / 7))))
    f32 = float(
        np.float32(0.1) * (np.float32(0.5) * (1 + np.cos(np.float32(math.pi) * np.float32(3 / 7))))
    )
    assert abs(f32 - exact) > 1e-10
    assert c(3) == pytest.approx(exact, rel=1e-15, abs=0)


# --------------------------------------------------------------------------
# step handling
# --------------------------------------------------------------------------
@pytest.mark.parametrize("step", [3, np.int64(3), np.int32(3), np.uint8(3), 3.0, np.float32(3.0)])
def test_scalar_step_types_return_python_float(step):
    s = ExponentialDecay(0.1, 10, 0.5)
    v = s(step)
    assert type(v) is float and v == 0.1 * 0.5**0.3


def test_array_step_returns_float64_array_of_same_shape():
    s = CosineDecay(0.1, 10)
    for arr in (np.arange(12, dtype=np.int32).reshape(3, 4), np.array(4), np.arange(0), [1, 2, 3]):
        out = s(arr)
        assert isinstance(out, np.ndarray) and out.dtype == np.float64
        assert out.shape == np.shape(arr)
    np.testing.assert_array_equal(s(np.array(4)), np.array(s(4)))


def test_vectorised_call_does_not_loop_in_python():
    calls = []

    class Spy(ExponentialDecay):
        def _evaluate(self, step, integer_step):
            calls.append(step.shape)
            return super()._evaluate(step, integer_step)

    Spy(0.1, 10, 0.5)(np.arange(1000))
    assert calls == [(1000,)]


# Keras evaluates its formula at any step it is given; negative and
# fractional steps included (tests/reference.py: the same formulas, IEEE
# float64, one step at a time).
KERAS_STEP_CASES = [
    ExponentialDecay(0.1, 10, 0.5),
    ExponentialDecay(0.1, 7.5, 0.5, staircase=True),
    ExponentialDecay(0.1, 10, 0.0),  # 0 ** negative: inf, as in Keras
    PiecewiseConstantDecay([0, 10], [1.0, 0.5, 0.1]),
    PiecewiseConstantDecay([-2.5, -0.5, 3.5], [1.0, 0.5, 0.25, 0.1]),  # truncated for int steps
    PolynomialDecay(0.1, 10, 0.001, power=0.5),
    PolynomialDecay(0.1, 10, 0.001, power=2.0, cycle=True),  # -inf / NaN in (-10, 0), like Keras
    InverseTimeDecay(0.1, 10, 0.5),  # 1 / 0 at step -20
    InverseTimeDecay(0.1, 10, 0.5, staircase=True),
    CosineDecay(0.1, 10, alpha=0.1),
    CosineDecay(0.01, 10, alpha=0.1, warmup_target=0.1, warmup_steps=4),
    CosineDecay(0.01, 10, warmup_target=0.1, warmup_steps=0),  # Keras's warmup branch at step < 0
    CosineDecay(0.1, 10, warmup_target=0.1, warmup_steps=0),  # ... 0 * -inf: NaN
    CosineDecayRestarts(0.1, 10, t_mul=1.0, m_mul=0.5, alpha=0.1),
    CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.5, alpha=0.1),
    CosineDecayRestarts(0.1, 4, t_mul=0.9, m_mul=0.8),
]
KERAS_STEPS = [-25, -20, -19, -10, -9, -5, -3, -2, -1, 0, 1, 3, 9, 10, 11, 25]
KERAS_REAL_STEPS = [-25.5, -12.25, -9.999, -2.5, -0.5, -1e-9, 0.0, 0.5, 9.75, 10.5]


def _reference_schedule(sched):
    return reference.schedule_from_config(serialize(sched))


@pytest.mark.parametrize("sched", KERAS_STEP_CASES, ids=repr)
def test_every_step_keras_accepts_gives_keras_formula(sched):
    ref = _reference_schedule(sched)
    for steps, conv in ((KERAS_STEPS, int), (KERAS_REAL_STEPS, float)):
        if isinstance(sched, CosineDecayRestarts) and sched.t_mul == 2.0:
            steps = [s for s in steps if s > -10]  # the periods before 0 last 10 steps
        want = np.array([ref(conv(s)) for s in steps])
        scalar = np.array([sched(conv(s)) for s in steps])
        np.testing.assert_allclose(scalar, want, rtol=1e-13, atol=0)  # inf and NaN must match too
        np.testing.assert_array_equal(sched(np.array(steps)), scalar)
        np.testing.assert_array_equal(sched(list(steps)), scalar)
        assert np.array(steps).dtype.kind == ("i" if conv is int else "f")
        # NumPy scalars of other widths and 0-d arrays give the same values.
        types = (np.int8, np.int32, np.int64) if conv is int else (np.float32, np.float64)
        for t in types:
            exact = [s for s in steps if conv(t(s)) == s]
            got = [sched(t(s)) for s in exact]
            assert all(type(v) is float for v in got)
            np.testing.assert_array_equal(got, [sched(conv(s)) for s in exact])
        zero_d = sched(np.array(steps[0]))
        assert isinstance(zero_d, np.ndarray) and zero_d.shape == ()
        np.testing.assert_array_equal(zero_d, scalar[0])
    assert type(sched(np.uint8(3))) is float and sched(np.uint8(3)) == sched(3)
    np.testing.assert_array_equal(sched(np.float16(-2.5)), sched(-2.5))


def test_negative_steps_by_hand():
    # Keras's formulas, worked out by hand.
    assert PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])(-5) == 1.0
    assert PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])(-0.5) == 1.0
    np.testing.assert_array_equal(
        PiecewiseConstantDecay([10], [1.0, 0.5])(np.array([-3, 0, 11])), [1.0, 1.0, 0.5]
    )
    assert ExponentialDecay(0.1, 10, 0.5)(-10) == pytest.approx(0.2, rel=1e-15)
    assert ExponentialDecay(0.1, 10, 0.5, staircase=True)(-1) == pytest.approx(0.2, rel=1e-15)
    assert InverseTimeDecay(0.1, 10, 0.5)(-10) == pytest.approx(0.2, rel=1e-15)
    assert InverseTimeDecay(0.1, 10, 0.5)(-20) == math.inf
    assert PolynomialDecay(0.1, 10, 0.0)(-10) == pytest.approx(0.2, rel=1e-15)
    assert PolynomialDecay(0.1, 10, 0.0, cycle=True)(-5) == -math.inf  # 1 - (-5 / -0.0)
    # ceil(-1.5) = -1: decay_steps -10, p = 1.5
    assert PolynomialDecay(0.1, 10, 0.0, cycle=True)(-15) == pytest.approx(
        0.1 * (1 - 1.5), rel=1e-15
    )
    assert CosineDecay(0.1, 10)(-5) == pytest.approx(0.05, rel=1e-15)
    assert CosineDecay(0.0, 10, warmup_target=0.1, warmup_steps=5)(-5) == pytest.approx(
        -0.1, rel=1e-15
    )
    assert CosineDecay(0.05, 10, warmup_target=0.1, warmup_steps=0)(-1) == -math.inf
    assert CosineDecay(0.05, 10, warmup_target=0.1, warmup_steps=0)(0) == pytest.approx(
        0.1, rel=1e-15
    )
    assert CosineDecayRestarts(1.0, 10, t_mul=1.0)(-5) == pytest.approx(0.5, rel=1e-15)
    # t_mul=2: period -1 is [-5, 0) (half as long), period -2 is [-7.5, -5), ...
    assert CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)(-5) == pytest.approx(2.0, rel=1e-15)
    assert CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)(-2.5) == pytest.approx(1.0, rel=1e-15)


def test_cosine_restarts_t_mul_above_one_has_a_start():
    # Before step 0 the periods shrink: 10 / (2 - 1) = 10 steps in all. Keras
    # gives NaN at and before -10; this raises, as beyond the end for t_mul < 1.
    s = CosineDecayRestarts(0.1, 10, t_mul=2.0)
    assert np.all(np.isfinite(s(np.arange(-9, 1))))
    assert np.isnan(_reference_schedule(s)(-10))
    for bad in (-10, -11.5, np.arange(-12, 3)):
        with pytest.raises(ValueError, match="before the start of this schedule.*step=-1[012]"):
            s(bad)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.array([1.0, np.nan])])
def test_non_finite_step_raises(bad):
    with pytest.raises(ValueError, match="`step`"):
        InverseTimeDecay(0.1, 10, 0.5)(bad)


@pytest.mark.parametrize(
    "bad", [True, np.bool_(False), "3", np.array([1 + 2j]), np.array([True]), None]
)
def test_step_of_wrong_type_raises(bad):
    with pytest.raises(TypeError, match="`step`"):
        ExponentialDecay(0.1, 10, 0.5)(bad)


# --------------------------------------------------------------------------
# config / serialization round trips
# --------------------------------------------------------------------------
EXAMPLES = [
    ExponentialDecay(0.1, 100, 0.96, staircase=True, name="e"),
    PiecewiseConstantDecay([10, 20.5], [0.1, 0.05, 1], name=None),
    PolynomialDecay(0.1, 50, 0.001, power=0.5, cycle=True),
    InverseTimeDecay(0.2, 7.5, 0.1, staircase=True),
    CosineDecay(0.0, 100, alpha=0.1, warmup_target=0.1, warmup_steps=20),
    CosineDecayRestarts(0.1, 7, t_mul=1.5, m_mul=0.9, alpha=0.1),
]


@pytest.mark.parametrize("sched", EXAMPLES, ids=lambda s: type(s).__name__)
def test_config_round_trips(sched):
    steps = np.arange(300)
    again = type(sched).from_config(sched.get_config())
    assert again == sched and hash(again) == hash(sched)
    np.testing.assert_array_equal(again(steps), sched(steps))
    ser = serialize(sched)
    assert set(ser) == {"class_name", "config"} and ser["class_name"] == type(sched).__name__
    via_json = deserialize(json.loads(json.dumps(ser)))
    assert via_json == sched and type(via_json) is type(sched)
    np.testing.assert_array_equal(via_json(steps), sched(steps))
    assert pickle.loads(pickle.dumps(sched)) == sched
    # Keras's own format (extra keys)
    keras_fmt = {"module": "keras.optimizers.schedules", **ser, "registered_name": None}
    assert deserialize(keras_fmt) == sched
    r = repr(sched)
    assert r.startswith(type(sched).__name__ + "(")
    assert all(f"{k}=" in r for k in sched.get_config())


def test_equality_depends_on_class_and_config():
    a = ExponentialDecay(0.1, 10, 0.5)
    assert a == ExponentialDecay(0.1, 10, 0.5)
    assert a != ExponentialDecay(0.1, 10, 0.5, staircase=True)
    assert a != InverseTimeDecay(0.1, 10, 0.5, name="ExponentialDecay")
    assert a != "ExponentialDecay"


def test_deserialize_unwraps_keras_tuple_and_numpy_wrappers():
    cfg = {
        "module": "keras.optimizers.schedules",
        "class_name": "PiecewiseConstantDecay",
        "config": {
            "boundaries": {
                "class_name": "__numpy__",
                "config": {"value": [10, 20], "dtype": "int64"},
            },
            "values": {"class_name": "__tuple__", "config": {"value": [1.0, 0.5, 0.1]}},
            "name": "PiecewiseConstant",
        },
        "registered_name": None,
    }
    s = deserialize(cfg)
    assert s.get_config() == {
        "boundaries": [10, 20],
        "values": [1.0, 0.5, 0.1],
        "name": "PiecewiseConstant",
    }
    assert s(15) == 0.5


def test_deserialize_fills_defaults_like_keras():
    s = deserialize(
        {
            "class_name": "PolynomialDecay",
            "config": {"initial_learning_rate": 0.1, "decay_steps": 10},
        }
    )
    assert s.get_config() == {
        "initial_learning_rate": 0.1,
        "decay_steps": 10,
        "end_learning_rate": 0.0001,
        "power": 1.0,
        "cycle": False,
        "name": "PolynomialDecay",
    }


def test_deserialize_custom_objects():
    class MySchedule(ExponentialDecay):
        pass

    s = MySchedule(0.1, 10, 0.5)
    ser = serialize(s)
    assert ser["class_name"] == "MySchedule"
    with pytest.raises(ValueError, match="MySchedule"):
        deserialize(ser)
    assert deserialize(ser, custom_objects={"MySchedule": MySchedule}) == s
    keras_fmt = {
        "module": None,
        "class_name": "MySchedule",
        "config": ser["config"],
        "registered_name": "MySchedule",
    }
    assert deserialize(keras_fmt, custom_objects={"MySchedule": MySchedule}) == s
    # registered with keras.saving.register_keras_serializable(package="my_pkg")
    keras_fmt["registered_name"] = "my_pkg>MySchedule"
    assert deserialize(keras_fmt, custom_objects={"my_pkg>MySchedule": MySchedule}) == s


@pytest.mark.parametrize(
    "bad,exc,match",
    [
        ({"class_name": "StepDecay", "config": {}}, ValueError, "StepDecay"),
        ({"config": {}}, ValueError, "class_name"),
        ({"class_name": "ExponentialDecay"}, ValueError, "config"),
        ({"class_name": "ExponentialDecay", "config": [1]}, ValueError, "config"),
        ("ExponentialDecay", TypeError, "config"),
        (
            {
                "class_name": "ExponentialDecay",
                "config": {
                    "initial_learning_rate": 0.1,
                    "decay_steps": 1,
                    "decay_rate": 0.5,
                    "bogus": 1,
                },
            },
            TypeError,
            "bogus",
        ),
    ],
)
def test_deserialize_errors(bad, exc, match):
    with pytest.raises(exc, match=match):
        deserialize(bad)


def test_serialize_rejects_non_schedule():
    with pytest.raises(TypeError, match="schedule"):
        serialize(lambda step: 0.1)


def test_base_class_requires_override():
    base = LearningRateSchedule()
    with pytest.raises(NotImplementedError, match="__call__"):
        base(1)
    with pytest.raises(NotImplementedError, match="get_config"):
        base.get_config()

    class KerasStyle(LearningRateSchedule):
        def __init__(self, lr):
            self.lr = lr

        def __call__(self, step):
            return self.lr / (step + 1)

        def get_config(self):
            return {"lr": self.lr}

    k = KerasStyle.from_config({"lr": 1.0})
    assert k(3) == 0.25 and k == KerasStyle(1.0)
    with pytest.raises(TypeError, match="config"):
        KerasStyle.from_config([("lr", 1.0)])


def test_module_exports():
    assert set(schedules.__all__) == {c.__name__ for c in CLASSES} | {
        "LearningRateSchedule",
        "serialize",
        "deserialize",
    }
    for name in schedules.__all__:
        assert getattr(schedules, name).__doc__


# --------------------------------------------------------------------------
# argument validation
# --------------------------------------------------------------------------
INVALID = [
    # (class, kwargs, exception, argument name in the message)
    (
        ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=0, decay_rate=0.5),
        ValueError,
        "decay_steps",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=-3, decay_rate=0.5),
        ValueError,
        "decay_steps",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=float("inf"), decay_rate=0.5),
        ValueError,
        "decay_steps",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps="10", decay_rate=0.5),
        TypeError,
        "decay_steps",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=10**400, decay_rate=0.5),
        ValueError,
        "decay_steps",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=True, decay_rate=0.5),
        TypeError,
        "decay_steps",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=float("nan"), decay_steps=10, decay_rate=0.5),
        ValueError,
        "initial_learning_rate",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=None, decay_steps=10, decay_rate=0.5),
        TypeError,
        "initial_learning_rate",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=-0.5),
        ValueError,
        "decay_rate",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=float("inf")),
        ValueError,
        "decay_rate",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=1),
        TypeError,
        "staircase",
    ),
    (
        ExponentialDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, name=3),
        TypeError,
        "name",
    ),
    (PiecewiseConstantDecay, dict(boundaries=[1, 2], values=[0.1, 0.2]), ValueError, "boundaries"),
    (PiecewiseConstantDecay, dict(boundaries=[], values=[0.1]), ValueError, "boundaries"),
    (
        PiecewiseConstantDecay,
        dict(boundaries=[5, 5], values=[0.1, 0.2, 0.3]),
        ValueError,
        "boundaries",
    ),
    (
        PiecewiseConstantDecay,
        dict(boundaries=[5, 3], values=[0.1, 0.2, 0.3]),
        ValueError,
        "boundaries",
    ),
    (
        PiecewiseConstantDecay,
        dict(boundaries=[1, float("nan")], values=[0.1, 0.2, 0.3]),
        ValueError,
        r"boundaries\[1\]",
    ),
    (
        PiecewiseConstantDecay,
        dict(boundaries=[1], values=[0.1, float("inf")]),
        ValueError,
        r"values\[1\]",
    ),
    (PiecewiseConstantDecay, dict(boundaries=[1], values=[0.1, "x"]), TypeError, r"values\[1\]"),
    (PiecewiseConstantDecay, dict(boundaries=5, values=[0.1, 0.2]), TypeError, "boundaries"),
    (PiecewiseConstantDecay, dict(boundaries=[1], values="ab"), TypeError, "values"),
    (
        PiecewiseConstantDecay,
        dict(boundaries=np.array([[1]]), values=[0.1, 0.2]),
        ValueError,
        "boundaries",
    ),
    (PolynomialDecay, dict(initial_learning_rate=0.1, decay_steps=0), ValueError, "decay_steps"),
    (
        PolynomialDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, end_learning_rate=float("inf")),
        ValueError,
        "end_learning_rate",
    ),
    (
        PolynomialDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, power=-1.0),
        ValueError,
        "power",
    ),
    (
        PolynomialDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, cycle="yes"),
        TypeError,
        "cycle",
    ),
    (
        InverseTimeDecay,
        dict(initial_learning_rate=0.1, decay_steps=-1, decay_rate=0.5),
        ValueError,
        "decay_steps",
    ),
    (
        InverseTimeDecay,
        dict(initial_learning_rate=0.1, decay_steps=1, decay_rate=-0.5),
        ValueError,
        "decay_rate",
    ),
    (
        InverseTimeDecay,
        dict(initial_learning_rate=0.1, decay_steps=1, decay_rate=0.5, staircase=None),
        TypeError,
        "staircase",
    ),
    (CosineDecay, dict(initial_learning_rate=0.1, decay_steps=0), ValueError, "decay_steps"),
    (
        CosineDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, alpha=float("nan")),
        ValueError,
        "alpha",
    ),
    (
        CosineDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, warmup_target=float("inf"), warmup_steps=5),
        ValueError,
        "warmup_target",
    ),
    (
        CosineDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, warmup_target="0.1"),
        TypeError,
        "warmup_target",
    ),
    (
        CosineDecay,
        dict(initial_learning_rate=0.1, decay_steps=10, warmup_target=0.2, warmup_steps=-1),
        ValueError,
        "warmup_steps",
    ),
    (
        CosineDecayRestarts,
        dict(initial_learning_rate=0.1, first_decay_steps=0),
        ValueError,
        "first_decay_steps",
    ),
    (
        CosineDecayRestarts,
        dict(initial_learning_rate=0.1, first_decay_steps=10, t_mul=0.0),
        ValueError,
        "t_mul",
    ),
    (
        CosineDecayRestarts,
        dict(initial_learning_rate=0.1, first_decay_steps=10, t_mul=float("inf")),
        ValueError,
        "t_mul",
    ),
    (
        CosineDecayRestarts,
        dict(initial_learning_rate=0.1, first_decay_steps=10, m_mul=-0.5),
        ValueError,
        "m_mul",
    ),
    (
        CosineDecayRestarts,
        dict(initial_learning_rate=0.1, first_decay_steps=10, alpha=None),
        TypeError,
        "alpha",
    ),
]


@pytest.mark.parametrize(
    "cls,kwargs,exc,arg",
    INVALID,
    ids=[f"{c.__name__}-{a}-{i}" for i, (c, _, _, a) in enumerate(INVALID)],
)
def test_invalid_arguments(cls, kwargs, exc, arg):
    with pytest.raises(exc, match=arg):
        cls(**kwargs)


def test_valid_edge_arguments_accepted():
    # the boundaries of what is allowed
    assert ExponentialDecay(0.1, 1e-3, 0.0)(0) == 0.1
    assert PolynomialDecay(0.1, 10, power=0.0)(10) == 0.1
    assert CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=0)(0) == 0.2
    assert CosineDecayRestarts(0.1, 10, m_mul=0.0)(10) == 0.0
    assert PiecewiseConstantDecay(np.array([1, 2]), (0.3, 0.2, 0.1)).get_config()["boundaries"] == [
        1,
        2,
    ]
    assert ExponentialDecay(np.float32(0.5), np.int64(10), np.float64(0.5)).get_config() == {
        "initial_learning_rate": 0.5,
        "decay_steps": 10,
        "decay_rate": 0.5,
        "staircase": False,
        "name": "ExponentialDecay",
    }


def test_signatures_match_keras():
    import inspect

    expected = {
        ExponentialDecay: "(initial_learning_rate, decay_steps, decay_rate, staircase=False, "
        "name='ExponentialDecay')",
        PiecewiseConstantDecay: "(boundaries, values, name='PiecewiseConstant')",
        PolynomialDecay: "(initial_learning_rate, decay_steps, end_learning_rate=0.0001, "
        "power=1.0, cycle=False, name='PolynomialDecay')",
        InverseTimeDecay: "(initial_learning_rate, decay_steps, decay_rate, staircase=False, "
        "name='InverseTimeDecay')",
        CosineDecay: "(initial_learning_rate, decay_steps, alpha=0.0, name='CosineDecay', "
        "warmup_target=None, warmup_steps=0)",
        CosineDecayRestarts: "(initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, "
        "alpha=0.0, name='SGDRDecay')",
    }
    for cls, sig in expected.items():
        params = inspect.signature(cls).parameters.values()
        got = (
            "("
            + ", ".join(
                p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params
            )
            + ")"
        )
        assert got == sig, cls.__name__
