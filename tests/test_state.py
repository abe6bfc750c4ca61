"""state_dict / load_state_dict: a resumed run continues bit for bit."""

import numpy as np
import pytest

import numba_rmsprop as nr

FLAVOR_KEYS = [  # the variant options every state dict records (they must match on load)
    f"flavor.{name}"
    for name in (
        "initial_velocity",
        "epsilon_in_sqrt",
        "learning_rate_in_momentum",
        "decoupled_weight_decay",
        "nesterov",
        "bias_correction",
        "maximize",
    )
]

CONFIG = dict(
    learning_rate=nr.schedules.CosineDecay(
        0.01, decay_steps=40, warmup_target=0.02, warmup_steps=5
    ),
    momentum=0.9,
    centered=True,
    weight_decay=1e-2,
    global_clipnorm=1.0,
    use_ema=True,
    ema_overwrite_frequency=3,
    gradient_accumulation_steps=3,
)


def grads_at(step, shapes, dtype):
    rng = np.random.default_rng(step)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def run(opt, variables, start, stop):
    shapes = [v.shape for v in variables]
    for step in range(start, stop):
        opt.apply(grads_at(step, shapes, variables[0].dtype), variables)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resume_through_npz_is_bit_identical(tmp_path, dtype):
    w0 = np.random.default_rng(0).standard_normal((6, 5)).astype(dtype)
    b0 = np.zeros(5, dtype)

    ref_w, ref_b = w0.copy(), b0.copy()
    ref = nr.RMSprop(**CONFIG)
    run(ref, [ref_w, ref_b], 0, 30)

    w, b = w0.copy(), b0.copy()
    first = nr.RMSprop(**CONFIG)
    run(first, [w, b], 0, 13)  # stop mid-accumulation
    np.savez(tmp_path / "ckpt.npz", w=w, b=b, **first.state_dict())

    data = dict(np.load(tmp_path / "ckpt.npz"))
    w2, b2 = data.pop("w"), data.pop("b")
    second = nr.RMSprop.from_config(first.get_config())
    second.load_state_dict(data)  # before build: restored by build
    second.build([w2, b2])
    assert second.iterations == 13
    run(second, [w2, b2], 13, 30)

    np.testing.assert_array_equal(w2, ref_w, strict=True)
    np.testing.assert_array_equal(b2, ref_b, strict=True)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(second.state_dict()[k], v, strict=True)


def test_state_dict_contents():
    w = np.zeros((2, 3), np.float32)
    opt = nr.RMSprop(momentum=0.5, centered=True, use_ema=True, gradient_accumulation_steps=2)
    opt.apply([np.ones_like(w)], [w])
    sd = opt.state_dict()
    assert set(sd) == {
        "iterations",
        "n_variables",
        "learning_rate",
        "velocity/0",
        "momentum/0",
        "average_gradient/0",
        "average/0",
        "accumulator/0",
        *FLAVOR_KEYS,
    }
    assert sd["iterations"] == 1
    np.testing.assert_array_equal(sd["accumulator/0"], 1.0)
    np.testing.assert_array_equal(sd["average/0"], 0.0)  # first EMA step copies w (still 0)
    sd["velocity/0"][...] = 5  # a copy, not a view of the state
    assert opt.state_dict()["velocity/0"].max() == 0


def test_plain_state_has_only_velocity():
    w = np.zeros(3)
    opt = nr.RMSprop()
    opt.apply([np.ones(3)], [w])
    assert set(opt.state_dict()) == {
        "iterations",
        "n_variables",
        "learning_rate",
        "velocity/0",
        *FLAVOR_KEYS,
    }


def test_learning_rate_set_by_user_is_restored():
    w = np.zeros(3)
    opt = nr.RMSprop(learning_rate=0.1)
    opt.apply([np.ones(3)], [w])
    opt.learning_rate = 0.025
    w2 = w.copy()
    fresh = nr.RMSprop(learning_rate=0.1)
    fresh.build([w2])
    fresh.load_state_dict(opt.state_dict())
    assert fresh.learning_rate == 0.025


def test_config_round_trip_with_schedule():
    opt = nr.RMSprop(**CONFIG)
    cfg = opt.get_config()
    assert cfg["learning_rate"]["class_name"] == "CosineDecay"
    again = nr.RMSprop.from_config(cfg)
    assert again.get_config() == cfg
    assert again.learning_rate == opt.learning_rate


def test_state_dict_before_build_raises():
    with pytest.raises(ValueError, match="not built"):
        nr.RMSprop().state_dict()


# ------------------------------------------------------------ reading the EMA
def test_moving_averages_reads_the_ema_without_touching_the_weights():
    rng = np.random.default_rng(3)
    w = np.asfortranarray(rng.standard_normal((4, 3)).astype(np.float32))
    b = np.zeros(3)
    opt = nr.RMSprop(learning_rate=0.05, use_ema=True, ema_momentum=0.9)
    for step in range(20):
        opt.apply(
            grads_at(step, [w.shape, b.shape], np.float32)[:1]
            + [grads_at(step, [b.shape], np.float64)[0]],
            [w, b],
        )
    trained = [w.copy(), b.copy()]
    avg_w, avg_b = opt.moving_averages()  # in build order
    sd = opt.state_dict()
    np.testing.assert_array_equal(avg_w, sd["average/0"], strict=True)
    np.testing.assert_array_equal(avg_b, sd["average/1"], strict=True)
    assert avg_w.dtype == np.float32 and avg_b.dtype == np.float64
    assert not np.array_equal(avg_w, w)
    np.testing.assert_array_equal(w, trained[0], strict=True)  # weights untouched
    np.testing.assert_array_equal(b, trained[1], strict=True)
    avg_w[...] = 7.0  # copies: the state does not change
    np.testing.assert_array_equal(opt.state_dict()["average/0"], sd["average/0"])
    # in the order of the variables passed; finalize_variable_values writes the same values
    rev = opt.moving_averages([b, w])
    np.testing.assert_array_equal(rev[0], sd["average/1"])
    opt.finalize_variable_values([w, b])
    np.testing.assert_array_equal(w, rev[1], strict=True)


def test_moving_averages_needs_ema_and_a_built_optimizer():
    with pytest.raises(ValueError, match="not built"):
        nr.RMSprop(use_ema=True).moving_averages()
    opt = nr.RMSprop()
    opt.apply([np.ones(3)], [np.zeros(3)])
    with pytest.raises(ValueError, match="use_ema"):
        opt.moving_averages()


def test_the_guide_documents_the_state_dict_keys_and_moving_averages():
    import os

    from numba_rmsprop.optimizer import STATE_KINDS

    readme = open(
        os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "optimizer.md"
        ),
        encoding="utf-8",
    ).read()
    for kind, _ in STATE_KINDS:
        assert f"`{kind}/i`" in readme, kind
    assert "moving_averages(" in readme
