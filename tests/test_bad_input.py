"""Bad input raises a clear error naming the argument, before anything changes."""

import math

import numpy as np
import pytest
from helpers import assert_unchanged, snapshot

import numba_rmsprop as nr


# ------------------------------------------------------------ hyperparameters
@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"learning_rate": "0.1"}, TypeError, "learning_rate"),
        ({"learning_rate": -0.1}, ValueError, "learning_rate"),
        ({"learning_rate": math.nan}, ValueError, "learning_rate"),
        ({"learning_rate": math.inf}, ValueError, "learning_rate"),
        ({"learning_rate": True}, TypeError, "learning_rate"),
        ({"learning_rate": lambda step: 0.1}, TypeError, "learning_rate"),
        ({"rho": 1.5}, ValueError, "rho"),
        ({"rho": -0.1}, ValueError, "rho"),
        ({"rho": math.nan}, ValueError, "rho"),
        ({"rho": None}, TypeError, "rho"),
        ({"momentum": -0.5}, ValueError, "momentum"),
        ({"momentum": math.inf}, ValueError, "momentum"),
        ({"epsilon": -1e-7}, ValueError, "epsilon"),
        ({"epsilon": math.nan}, ValueError, "epsilon"),
        ({"centered": 1}, TypeError, "centered"),
        ({"weight_decay": -1e-4}, ValueError, "weight_decay"),
        ({"clipnorm": -1.0}, ValueError, "clipnorm"),
        ({"clipnorm": 0.0}, ValueError, "clipnorm"),
        ({"clipvalue": math.nan}, ValueError, "clipvalue"),
        ({"global_clipnorm": "1"}, TypeError, "global_clipnorm"),
        ({"clipnorm": 1.0, "clipvalue": 1.0}, ValueError, "Only one of"),
        ({"clipnorm": 1.0, "global_clipnorm": 1.0}, ValueError, "Only one of"),
        ({"clipvalue": 1.0, "global_clipnorm": 1.0}, ValueError, "Only one of"),
        ({"use_ema": "yes"}, TypeError, "use_ema"),
        ({"ema_momentum": 1.01}, ValueError, "ema_momentum"),
        ({"ema_momentum": -0.01}, ValueError, "ema_momentum"),
        ({"ema_overwrite_frequency": 0}, ValueError, "ema_overwrite_frequency"),
        ({"ema_overwrite_frequency": 2.0}, TypeError, "ema_overwrite_frequency"),
        ({"gradient_accumulation_steps": 1}, ValueError, "gradient_accumulation_steps"),
        ({"gradient_accumulation_steps": 0}, ValueError, "gradient_accumulation_steps"),
        ({"gradient_accumulation_steps": 2.5}, TypeError, "gradient_accumulation_steps"),
        ({"loss_scale_factor": 0.0}, ValueError, "loss_scale_factor"),
        ({"name": 3}, TypeError, "name"),
        ({"device": "tpu"}, ValueError, "device"),
        ({"betas": 0.9}, TypeError, "betas"),
    ],
)
def test_bad_hyperparameter(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        nr.RMSprop(**kwargs)


def test_valid_edge_hyperparameters_are_accepted():
    nr.RMSprop(learning_rate=0, rho=0.0, momentum=0.0, epsilon=0.0, ema_momentum=1.0)
    nr.RMSprop(learning_rate=1, rho=1.0, ema_overwrite_frequency=1, gradient_accumulation_steps=2)
    nr.RMSprop(learning_rate=np.float32(0.1), momentum=np.float64(0.5))
    nr.RMSprop(learning_rate=lambda: 0.1)


def test_learning_rate_setter():
    opt = nr.RMSprop(learning_rate=0.1)
    opt.learning_rate = 0.05
    assert opt.learning_rate == 0.05
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0
    assert opt.learning_rate == 0.05
    sched = nr.RMSprop(learning_rate=nr.schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match="not settable"):
        sched.learning_rate = 0.1


# ------------------------------------------------------------ apply: arrays
def built_optimizer(**kw):
    opt = nr.RMSprop(
        learning_rate=0.1,
        momentum=0.9,
        centered=True,
        use_ema=True,
        gradient_accumulation_steps=2,
        **kw,
    )
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    b = np.arange(5, dtype=np.float32)
    for _ in range(3):
        opt.apply([np.ones_like(w), np.ones_like(b)], [w, b])
    return opt, w, b


@pytest.mark.parametrize(
    "make_call, exc, match",
    [
        (lambda w, b: ([np.ones_like(w)], [w, b]), ValueError, "1 gradients for 2 variables"),
        (
            lambda w, b: ([np.ones((4, 3), np.float32), np.ones_like(b)], [w, b]),
            ValueError,
            r"grads\[0\] has shape",
        ),
        (
            lambda w, b: ([np.ones_like(w), np.ones(5, np.float64)], [w, b]),
            TypeError,
            r"grads\[1\] has dtype",
        ),
        (
            lambda w, b: ([np.ones_like(w), np.ones(5, np.int64)], [w, b]),
            TypeError,
            r"grads\[1\] has dtype",
        ),
        (
            lambda w, b: ([np.ones_like(w), np.ones_like(b)], [w, b.copy()]),
            ValueError,
            "Unknown variable",
        ),
        (lambda w, b: ([np.ones_like(w), np.ones_like(w)], [w, w]), ValueError, "more than once"),
        (lambda w, b: ([None, None], [w, b]), ValueError, "No gradients"),
        (lambda w, b: (np.ones(3, np.float32), [w, b]), TypeError, "grads"),
        (lambda w, b: ([np.ones_like(w), np.ones_like(b)], w), TypeError, "variables"),
    ],
)
def test_bad_apply_changes_nothing(make_call, exc, match):
    opt, w, b = built_optimizer()
    snap = snapshot(opt, [w, b])
    grads, variables = make_call(w, b)
    with pytest.raises(exc, match=match):
        opt.apply(grads, variables)
    assert_unchanged(opt, [w, b], snap)


def test_read_only_variable_changes_nothing():
    opt, w, b = built_optimizer()
    snap = snapshot(opt, [w, b])
    b.flags.writeable = False
    with pytest.raises(ValueError, match=r"variables\[1\] is read-only"):
        opt.apply([np.ones_like(w), np.ones_like(b)], [w, b])
    assert_unchanged(opt, [w, b], snap)


def test_wrong_count_without_variables():
    opt, w, b = built_optimizer()
    snap = snapshot(opt, [w, b])
    with pytest.raises(ValueError, match="tracks 2 variables"):
        opt.apply([np.ones_like(w)])
    assert_unchanged(opt, [w, b], snap)


def test_first_call_failure_leaves_optimizer_unbuilt():
    opt = nr.RMSprop()
    w = np.zeros(3, np.float32)
    b = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match=r"grads\[1\] has shape"):
        opt.apply([np.ones(3, np.float32), np.ones(3, np.float32)], [w, b])
    assert not opt.built and opt.iterations == 0
    np.testing.assert_array_equal(w, 0)


@pytest.mark.parametrize(
    "variables, exc, match",
    [
        ([np.zeros(3, np.int32)], TypeError, r"variables\[0\] must have dtype float32 or float64"),
        ([np.zeros(3, np.float16)], TypeError, r"variables\[0\] must have dtype"),
        ([[0.0, 1.0]], TypeError, r"variables\[0\] must be a numpy.ndarray"),
        ([np.asmatrix(np.zeros((1, 3)))], TypeError, r"variables\[0\] is a numpy.matrix, not"),
        ([np.zeros(2), np.ma.zeros(3)], TypeError, r"variables\[1\] .*MaskedArray.*mask"),
    ],
)
def test_bad_variables_at_build(variables, exc, match):
    opt = nr.RMSprop()
    with pytest.raises(exc, match=match):
        opt.build(variables)
    assert not opt.built


@pytest.mark.parametrize("build", [True, False])
def test_matrices_and_overlapping_views_change_nothing(build):
    """Refused at build and at a first apply, with nothing updated and nothing bound."""
    buf = np.zeros(10)
    cases = [
        ([np.asmatrix(np.zeros((1, 3)))], TypeError, "numpy.matrix"),
        ([buf[0:6], buf[4:10]], ValueError, r"variables\[0\] and variables\[1\] share memory"),
        (
            [buf[:, None][2:5, 0], np.ones(2), buf[3:4]],
            ValueError,
            r"variables\[0\] and variables\[2\]",
        ),
    ]
    for variables, exc, match in cases:
        opt = nr.RMSprop(0.1)
        with pytest.raises(exc, match=match):
            if build:
                opt.build(variables)
            else:
                opt.apply([np.ones(np.shape(v)) for v in variables], variables)
        assert not opt.built and not buf.any()
    # interleaved views of one buffer do not overlap: they are fine
    opt = nr.RMSprop(0.1)
    opt.apply([np.ones(5), np.ones(5)], [buf[0::2], buf[1::2]])
    assert (buf < 0).all()


UNSUPPORTED_DTYPES = [np.float16, np.longdouble, np.int64, np.complex128, np.bool_]


@pytest.mark.parametrize("method", ["apply", "build"])
@pytest.mark.parametrize("dtype", UNSUPPORTED_DTYPES, ids=lambda d: np.dtype(d).name)
def test_unsupported_variable_dtype_names_the_allowed_ones(method, dtype):
    """Variables are float32 or float64 (README, "The optimizer"); anything else,
    float16 included, is a TypeError naming both, before anything changes."""
    w = np.zeros(3, np.float32)
    x = np.zeros(3, dtype)
    opt = nr.RMSprop(0.1, momentum=0.5)
    want = rf"variables\[1\] must have dtype float32 or float64; got {np.dtype(dtype).name}\."
    with pytest.raises(TypeError, match=want):
        if method == "apply":
            opt.apply([np.ones(3, np.float32), np.ones(3, dtype)], [w, x])
        else:
            opt.build([w, x])
    assert not opt.built and opt.iterations == 0
    np.testing.assert_array_equal(w, 0)
    np.testing.assert_array_equal(x, 0)


def test_read_only_variable_at_build():
    x = np.zeros(3)
    x.flags.writeable = False
    opt = nr.RMSprop()
    with pytest.raises(ValueError, match="read-only"):
        opt.apply([np.ones(3)], [x])
    assert not opt.built


def test_apply_without_variables_before_build():
    with pytest.raises(ValueError, match="must already be built"):
        nr.RMSprop().apply([np.ones(3)])


def test_callable_learning_rate_returning_garbage_changes_nothing():
    opt = nr.RMSprop(learning_rate=lambda: "fast")
    x = np.ones(3)
    with pytest.raises(TypeError, match="learning_rate"):
        opt.apply([np.ones(3)], [x])
    np.testing.assert_array_equal(x, 1.0)
    assert opt.iterations == 0


def test_schedule_failure_changes_nothing():
    class Broken(nr.schedules.LearningRateSchedule):
        def __call__(self, step):
            if step >= 2:
                raise RuntimeError("schedule broke")
            return 0.1

        def get_config(self):
            return {}

    opt = nr.RMSprop(learning_rate=Broken(), momentum=0.5)
    x = np.ones(4)
    opt.apply([np.ones(4)], [x])
    opt.apply([np.ones(4)], [x])
    snap = snapshot(opt, [x])
    with pytest.raises(RuntimeError, match="schedule broke"):
        opt.apply([np.ones(4)], [x])
    assert_unchanged(opt, [x], snap)


def test_exclude_from_weight_decay_after_build_raises():
    opt, w, b = built_optimizer(weight_decay=0.1)
    with pytest.raises(ValueError, match="before the optimizer is built"):
        opt.exclude_from_weight_decay(var_list=[w])


def test_load_state_dict_mismatch_changes_nothing():
    opt, w, b = built_optimizer()
    other = nr.RMSprop(momentum=0.0, centered=True, use_ema=True, gradient_accumulation_steps=2)
    other.build([np.zeros_like(w), np.zeros_like(b)])
    snap = snapshot(other, other.variables)
    with pytest.raises(ValueError, match="missing|unexpected"):
        other.load_state_dict(opt.state_dict())
    assert_unchanged(other, other.variables, snap)
    state = opt.state_dict()
    state["velocity/0"] = state["velocity/0"].astype(np.float64)
    snap = snapshot(opt, [w, b])
    with pytest.raises(ValueError, match="velocity/0"):
        opt.load_state_dict(state)
    assert_unchanged(opt, [w, b], snap)


def test_nan_gradients_propagate():
    x = np.ones(3, np.float32)
    nr.RMSprop().apply([np.array([np.nan, 1.0, np.inf], np.float32)], [x])
    assert np.isnan(x[0]) and np.isfinite(x[1]) and np.isnan(x[2])
