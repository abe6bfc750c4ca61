"""The plain-NumPy reference RMSprop (tests/reference.py) against Keras's own
trajectories and against hand-computed values of each rule."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import flavor_golden  # noqa: E402
import golden  # noqa: E402
from reference import (  # noqa: E402
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    PiecewiseConstantDecay,
    PolynomialDecay,
    ReferenceRMSprop,
    schedule_from_config,
)

CASES = golden.load_cases()
F64 = np.float64


def arr(*values, dtype=F64):
    return np.array(values if len(values) > 1 else values[0], dtype=dtype)


# ---------------------------------------------------------------------------
# Golden data from Keras.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=golden.case_id)
def test_reference_matches_keras(case):
    opt = ReferenceRMSprop.from_config(case.config_copy())
    result = golden.replay(opt, case)
    golden.assert_replay_matches(case, result, golden.tolerance(case, golden.REFERENCE_TOLERANCES))


@pytest.mark.parametrize("case", flavor_golden.all_cases(), ids=flavor_golden.Case.name)
def test_reference_matches_torch_optax_and_tf1(case):
    """The reference's variants against the frameworks' own trajectories."""
    kwargs = flavor_golden.arguments(case, "applied", ExponentialDecay)
    result = flavor_golden.replay(ReferenceRMSprop.like(case.framework, **kwargs), case)
    assert flavor_golden.error(result, case) <= flavor_golden.TOLERANCE[case.dtype]


def test_golden_file_covers_the_brief():
    assert golden.DATA_FILE.stat().st_size < 1_000_000
    assert golden.keras_version() == "3.15.1"
    assert 40 <= len(CASES) <= 70
    configs = [json.dumps(c.config, sort_keys=True) for c in CASES]
    # Every configuration is recorded in both dtypes.
    assert [c.dtype for c in CASES[0::2]] == ["float32"] * (len(CASES) // 2)
    assert [c.dtype for c in CASES[1::2]] == ["float64"] * (len(CASES) // 2)
    schedules = {
        c.config["learning_rate"]["class_name"]
        for c in CASES
        if isinstance(c.config["learning_rate"], dict)
    }
    assert schedules == {
        "ExponentialDecay",
        "PiecewiseConstantDecay",
        "PolynomialDecay",
        "InverseTimeDecay",
        "CosineDecay",
        "CosineDecayRestarts",
    }

    def seen(key):
        return any(c.config.get(key) not in (None, False, 0.0) for c in CASES)

    for key in (
        "momentum",
        "centered",
        "weight_decay",
        "clipnorm",
        "global_clipnorm",
        "clipvalue",
        "loss_scale_factor",
        "use_ema",
        "ema_overwrite_frequency",
        "gradient_accumulation_steps",
    ):
        assert seen(key), key
    assert {c.config.get("gradient_accumulation_steps") for c in CASES} >= {2, 3, 4}
    assert any(c.exclude for c in CASES)
    assert any(c.final is not None for c in CASES)
    assert len(set(configs)) > 20
    for c in CASES:
        assert c.config["use_ema"] == (c.final is not None)
        for x0, g, t in zip(c.x0, c.grads, c.traj, strict=False):
            assert x0.dtype == g.dtype == t.dtype == np.dtype(c.dtype)
            assert g.shape == t.shape == (c.steps,) + x0.shape
        np.testing.assert_array_equal(c.iterations, np.arange(1, c.steps + 1))


def test_user_story_case_is_recorded():
    story = [
        c
        for c in CASES
        if isinstance(c.config["learning_rate"], dict)
        and c.config["learning_rate"]["class_name"] == "CosineDecay"
        and c.config["momentum"] == 0.9
        and c.config["centered"]
        and c.config["weight_decay"]
        and c.config["global_clipnorm"]
        and c.config["use_ema"]
        and c.config["gradient_accumulation_steps"] == 4
    ]
    assert [c.dtype for c in story] == ["float32", "float64"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_keras_doc_example(dtype):
    # keras.optimizers.RMSprop docstring: lr 0.1, var 10.0, loss var**2 / 2.
    var = np.array(10.0, dtype=dtype)
    opt = ReferenceRMSprop(learning_rate=0.1)
    opt.apply([var.copy()], [var])  # d(loss)/d(var) = var
    assert var.dtype == np.dtype(dtype)
    assert abs(float(var) - 9.683772) < 1e-6
    doc = [c for c in CASES if c.n_vars == 1 and c.dtype == dtype]
    assert len(doc) == 1 and float(doc[0].traj[0][0]) == pytest.approx(9.683772, abs=1e-6)


# ---------------------------------------------------------------------------
# Hand-computed checks of the individual rules (float64, closed forms).
# ---------------------------------------------------------------------------


def test_plain_two_steps():
    x = arr(1.0, -2.0)
    g1, g2 = arr(2.0, 0.5), arr(-1.0, 3.0)
    opt = ReferenceRMSprop(learning_rate=0.1)
    opt.apply([g1], [x])
    v1 = 0.1 * g1**2
    x1 = arr(1.0, -2.0) - 0.1 * g1 / np.sqrt(v1 + 1e-7)
    np.testing.assert_allclose(opt.state["velocity"][0], v1, rtol=1e-15)
    np.testing.assert_allclose(x, x1, rtol=1e-15)
    opt.apply([g2], [x])
    v2 = 0.9 * v1 + 0.1 * g2**2
    np.testing.assert_allclose(x, x1 - 0.1 * g2 / np.sqrt(v2 + 1e-7), rtol=1e-15)
    assert opt.iterations == 2
    assert set(opt.state) == {"velocity"}


def test_rho_and_epsilon():
    x = arr(0.0)
    opt = ReferenceRMSprop(learning_rate=0.5, rho=0.25, epsilon=0.75)
    opt.apply([arr(2.0)], [x])
    assert float(x) == pytest.approx(-0.5 * 2.0 / np.sqrt(0.75 * 4 + 0.75), rel=1e-15)


def test_momentum():
    x = arr(1.0)
    opt = ReferenceRMSprop(learning_rate=0.1, momentum=0.9)
    opt.apply([arr(1.0)], [x])
    v1 = 0.1
    m1 = 0.1 / np.sqrt(v1 + 1e-7)
    assert float(x) == pytest.approx(1.0 - m1, rel=1e-15)
    opt.apply([arr(2.0)], [x])
    v2 = 0.9 * v1 + 0.1 * 4.0
    m2 = 0.9 * m1 + 0.1 * 2.0 / np.sqrt(v2 + 1e-7)
    assert float(x) == pytest.approx(1.0 - m1 - m2, rel=1e-15)
    assert float(opt.state["momentum"][0]) == pytest.approx(m2, rel=1e-15)


def test_centered_first_step():
    g = arr(3.0, -0.5)
    x = np.zeros(2)
    opt = ReferenceRMSprop(learning_rate=0.1, centered=True)
    opt.apply([g], [x])
    # v = 0.1 g^2, mg = 0.1 g, v - mg^2 = 0.09 g^2.
    np.testing.assert_allclose(opt.state["average_gradient"][0], 0.1 * g, rtol=1e-15)
    np.testing.assert_allclose(x, -0.1 * g / np.sqrt(0.09 * g**2 + 1e-7), rtol=1e-12)


def test_centered_clamps_negative_variance():
    # Deliberate difference: Keras would take sqrt(v - mg^2 + eps) < 0 -> NaN.
    x = arr(0.0)
    opt = ReferenceRMSprop(learning_rate=0.1, centered=True, epsilon=1e-4)
    opt.build([x])
    opt.state["average_gradient"][0][...] = 1.0  # v = 0 < mg^2
    opt.apply([arr(1e-3)], [x])
    assert float(x) == pytest.approx(-0.1 * 1e-3 / np.sqrt(1e-4), rel=1e-15)


def test_weight_decay_and_exclusion():
    a, b = arr(2.0, -4.0), arr(3.0)
    zero_a, zero_b = np.zeros(2), arr(0.0)  # RMSprop increment is 0
    opt = ReferenceRMSprop(learning_rate=0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_list=[b])
    opt.apply([zero_a, zero_b], [a, b])
    np.testing.assert_allclose(a, [2.0 - 2.0 * 0.5 * 0.1, -4.0 + 4.0 * 0.5 * 0.1], rtol=1e-15)
    assert float(b) == 3.0


def test_weight_decay_uses_scheduled_lr_at_raw_count():
    x = arr(1.0)
    lr = lambda step: [0.1, 0.2, 0.3, 0.4][step]  # noqa: E731
    opt = ReferenceRMSprop(learning_rate=lr, weight_decay=1.0, gradient_accumulation_steps=2)
    for _ in range(4):
        opt.apply([arr(0.0)], [x])
    assert float(x) == pytest.approx((1 - 0.2) * (1 - 0.4), rel=1e-15)


def test_accumulation_timing():
    g = [arr(1.0, 2.0), arr(3.0, -6.0), arr(2.0, 1.0)]
    x = arr(5.0, 5.0)
    opt = ReferenceRMSprop(learning_rate=0.1, gradient_accumulation_steps=3)
    opt.apply([g[0]], [x])
    opt.apply([g[1]], [x])
    np.testing.assert_array_equal(x, [5.0, 5.0])  # not yet
    np.testing.assert_array_equal(opt.state["velocity"][0], [0.0, 0.0])
    np.testing.assert_array_equal(opt.state["gradient_accumulator"][0], g[0] + g[1])
    opt.apply([g[2]], [x])
    mean = (g[0] + g[1] + g[2]) / 3
    np.testing.assert_allclose(x, 5.0 - 0.1 * mean / np.sqrt(0.1 * mean**2 + 1e-7), rtol=1e-15)
    np.testing.assert_array_equal(opt.state["gradient_accumulator"][0], 0.0)
    assert opt.iterations == 3  # raw call count
    # The schedule sees the raw count: the update on call 5 uses lr(5).
    y = arr(0.0)
    opt = ReferenceRMSprop(learning_rate=lambda step: 0.1 * step, gradient_accumulation_steps=3)
    for _ in range(6):
        opt.apply([arr(1.0)], [y])
    v1, v2 = 0.1, 0.9 * 0.1 + 0.1
    expected = -0.2 / np.sqrt(v1 + 1e-7) - 0.5 / np.sqrt(v2 + 1e-7)
    assert float(y) == pytest.approx(expected, rel=1e-14)
    assert opt.iterations == 6


def test_loss_scale_factor_divides_before_accumulation_and_clipping():
    x = arr(0.0)
    opt = ReferenceRMSprop(
        learning_rate=0.1, loss_scale_factor=128.0, clipvalue=3.0, gradient_accumulation_steps=2
    )
    opt.apply([arr(256.0)], [x])
    opt.apply([arr(1024.0)], [x])  # unscaled 2 and 8 -> mean 5 -> clip 3
    assert float(opt.state["velocity"][0]) == pytest.approx(0.1 * 9.0, rel=1e-15)


def test_clipnorm():
    a, b = np.zeros(2), np.zeros(3)
    opt = ReferenceRMSprop(learning_rate=0.1, clipnorm=1.0)
    with np.errstate(all="raise"):
        opt.apply([arr(3.0, 4.0), np.zeros(3)], [a, b])
    np.testing.assert_allclose(
        opt.state["velocity"][0], 0.1 * np.array([0.6, 0.8]) ** 2, rtol=1e-15
    )
    np.testing.assert_array_equal(opt.state["velocity"][1], 0.0)
    np.testing.assert_array_equal(b, 0.0)  # all-zero gradient stays zero
    # A norm below clipnorm is left alone.
    opt = ReferenceRMSprop(learning_rate=0.1, clipnorm=10.0)
    opt.apply([arr(3.0, 4.0)], [np.zeros(2)])
    np.testing.assert_allclose(opt.state["velocity"][0], [0.9, 1.6], rtol=1e-15)


def test_global_clipnorm():
    a, b = np.zeros(2), arr(0.0)
    opt = ReferenceRMSprop(learning_rate=0.1, global_clipnorm=1.0)
    opt.apply([arr(3.0, 4.0), arr(12.0)], [a, b])  # global norm 13
    np.testing.assert_allclose(
        opt.state["velocity"][0], 0.1 * (np.array([3.0, 4.0]) / 13) ** 2, rtol=1e-14
    )
    assert float(opt.state["velocity"][1]) == pytest.approx(0.1 * (12 / 13) ** 2, rel=1e-14)
    # All-zero gradients: no NaN.
    opt = ReferenceRMSprop(learning_rate=0.1, global_clipnorm=1.0)
    x = arr(1.0, 1.0)
    opt.apply([np.zeros(2)], [x])
    np.testing.assert_array_equal(x, [1.0, 1.0])


def test_clipvalue():
    opt = ReferenceRMSprop(learning_rate=0.1, clipvalue=0.5)
    opt.apply([arr(-2.0, 0.1, 3.0)], [np.zeros(3)])
    np.testing.assert_allclose(
        opt.state["velocity"][0], 0.1 * np.array([0.25, 0.01, 0.25]), rtol=1e-15
    )


@pytest.mark.parametrize("option", ["clipnorm", "global_clipnorm", "clipvalue"])
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_non_positive_clip_disables_clipping(option, value):
    opt = ReferenceRMSprop(learning_rate=0.1, **{option: value})
    opt.apply([arr(30.0, 40.0)], [np.zeros(2)])
    np.testing.assert_allclose(opt.state["velocity"][0], [90.0, 160.0], rtol=1e-15)


def test_only_one_clip_option():
    with pytest.raises(ValueError):
        ReferenceRMSprop(clipnorm=1.0, clipvalue=1.0)


def test_ema_first_step_copies_then_averages():
    x = arr(1.0, 2.0)
    opt = ReferenceRMSprop(learning_rate=0.1, use_ema=True, ema_momentum=0.9)
    opt.apply([arr(1.0, 1.0)], [x])
    np.testing.assert_array_equal(opt.state["average"][0], x)  # mom = 0
    x1 = x.copy()
    opt.apply([arr(1.0, 1.0)], [x])
    np.testing.assert_allclose(opt.state["average"][0], 0.9 * x1 + 0.1 * x, rtol=1e-15)
    x2 = x.copy()
    opt.finalize_variable_values([x])
    np.testing.assert_allclose(x, 0.9 * x1 + 0.1 * x2, rtol=1e-15)


def test_ema_with_accumulation_uses_floor_divided_count():
    x = arr(1.0)
    opt = ReferenceRMSprop(
        learning_rate=0.1, use_ema=True, ema_momentum=0.5, gradient_accumulation_steps=2
    )
    opt.apply([arr(1.0)], [x])
    assert float(opt.state["average"][0]) == 1.0
    opt.apply([arr(1.0)], [x])  # update; k = 1 // 2 = 0 -> still a copy
    assert float(x) < 1.0
    assert float(opt.state["average"][0]) == float(x)
    x_after_update = float(x)
    opt.apply([arr(1.0)], [x])  # k = 1: average of x with itself
    assert float(opt.state["average"][0]) == pytest.approx(x_after_update)
    opt.apply([arr(1.0)], [x])  # update, k = 1
    assert float(opt.state["average"][0]) == pytest.approx(
        0.5 * x_after_update + 0.5 * float(x), rel=1e-15
    )


def test_ema_overwrite_timing():
    x = arr(1.0)
    opt = ReferenceRMSprop(
        learning_rate=0.1, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=3
    )
    for it in range(7):
        opt.apply([arr(1.0)], [x])
        avg = float(opt.state["average"][0])
        if it in (2, 5):  # (it + 1) % 3 == 0
            assert float(x) == avg
        elif it != 0:  # on call 0 the average is a copy anyway
            assert float(x) != avg


def test_ema_overwrite_with_accumulation_uses_floor_divided_count():
    # k = it // 2; overwrite on every call with (k + 1) % 2 == 0, i.e. calls
    # 2, 3 and 6, 7 -- including the non-update calls 2 and 6.
    x = arr(1.0)
    opt = ReferenceRMSprop(
        learning_rate=0.1,
        use_ema=True,
        ema_momentum=0.5,
        ema_overwrite_frequency=2,
        gradient_accumulation_steps=2,
    )
    history = []
    for _ in range(8):
        before = float(x)
        opt.apply([arr(1.0)], [x])
        history.append((before, float(x), float(opt.state["average"][0])))
    for it in (2, 3, 6, 7):
        assert history[it][1] == history[it][2]
    assert history[5][1] != history[5][2]  # update, no overwrite
    assert history[6][1] != history[6][0]  # non-update call moved x (EMA)
    assert history[4][1] == history[4][0]  # non-update call, no overwrite


def test_none_gradient_subset_and_order():
    a, b = arr(1.0, 2.0), arr(3.0)
    opt = ReferenceRMSprop(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    opt.apply([arr(1.0, 1.0), None], [a, b])
    assert float(b) == 3.0
    assert float(opt.state["velocity"][1]) == 0.0
    assert float(opt.state["average"][1]) == 3.0  # EMA covers all variables
    # Any order, matched by identity, and subsets.
    a2, b2 = a.copy(), b.copy()
    opt2 = ReferenceRMSprop(learning_rate=0.1)
    opt2.build([a2, b2])
    opt3 = ReferenceRMSprop(learning_rate=0.1)
    opt3.build([a, b])
    opt2.apply([arr(2.0), arr(1.0, -1.0)], [b2, a2])
    opt3.apply([arr(1.0, -1.0), arr(2.0)], [a, b])
    np.testing.assert_array_equal(a2, a)
    np.testing.assert_array_equal(b2, b)
    opt3.apply([arr(5.0)], [b])
    assert opt3.iterations == 2
    with pytest.raises(ValueError):
        opt3.apply([arr(1.0)], [arr(1.0)])  # unknown (equal but not same)
    with pytest.raises(ValueError):
        opt3.apply([None, None], [a, b])


def test_none_gradient_accumulator_is_reset_on_update():
    # Generic Keras BaseOptimizer behaviour (Keras's JAX backend differs).
    a, b = arr(1.0), arr(1.0)
    opt = ReferenceRMSprop(learning_rate=0.1, gradient_accumulation_steps=2)
    opt.apply([arr(1.0), arr(5.0)], [a, b])
    opt.apply([arr(1.0), None], [a, b])
    assert float(b) == 1.0
    assert float(opt.state["gradient_accumulator"][1]) == 0.0


def test_dtype_is_preserved():
    x = np.ones((2, 3), dtype=np.float32)
    opt = ReferenceRMSprop(
        learning_rate=0.1, momentum=0.9, centered=True, use_ema=True, gradient_accumulation_steps=2
    )
    for _ in range(3):
        opt.apply([np.full((2, 3), 0.5)], [x])  # float64 gradient
    assert x.dtype == np.float32
    for states in opt.state.values():
        assert all(s.dtype == np.float32 for s in states)


def test_finalize_without_ema_is_a_no_op():
    x = arr(1.0)
    opt = ReferenceRMSprop(learning_rate=0.1)
    opt.apply([arr(1.0)], [x])
    before = float(x)
    opt.finalize_variable_values([x])
    assert float(x) == before


# ---------------------------------------------------------------------------
# Reference schedules (Keras formulas, evaluated in float64).
# ---------------------------------------------------------------------------


def test_schedules_by_hand():
    assert ExponentialDecay(0.1, 2, 0.5, staircase=True)(5) == pytest.approx(0.1 * 0.25)
    assert ExponentialDecay(0.1, 2, 0.5)(5) == pytest.approx(0.1 * 0.5**2.5)
    pw = PiecewiseConstantDecay([2, 4], [1.0, 0.5, 0.1])
    assert [pw(s) for s in range(6)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.1]
    poly = PolynomialDecay(0.1, 4, end_learning_rate=0.0, power=1.0, cycle=True)
    assert [poly(s) for s in (0, 2, 4, 6)] == pytest.approx([0.1, 0.05, 0.0, 0.025])
    assert PolynomialDecay(0.1, 4, 0.0)(8) == pytest.approx(0.0)
    assert InverseTimeDecay(0.1, 2, 0.5)(4) == pytest.approx(0.05)
    cos = CosineDecay(0.0, 10, alpha=0.0, warmup_target=0.1, warmup_steps=4)
    assert [cos(s) for s in (0, 2, 4, 9, 14, 20)] == pytest.approx(
        [0.0, 0.05, 0.1, 0.05, 0.0, 0.0], abs=1e-15
    )
    sgdr = CosineDecayRestarts(0.1, 2, t_mul=2.0, m_mul=0.5)
    assert [sgdr(s) for s in (0, 1, 2, 4, 6)] == pytest.approx(
        [0.1, 0.05, 0.05, 0.025, 0.025], abs=1e-15
    )
    assert isinstance(
        schedule_from_config(
            {
                "class_name": "CosineDecay",
                "config": {
                    "initial_learning_rate": 0.1,
                    "decay_steps": 10,
                    "alpha": 0.0,
                    "name": "CosineDecay",
                    "warmup_target": None,
                    "warmup_steps": 0,
                },
            }
        ),
        CosineDecay,
    )
