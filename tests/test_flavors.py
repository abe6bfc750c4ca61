"""RMSprop as torch, optax and TF1 define it: ``RMSprop.like_torch / like_optax / like_tf1``.

* Golden trajectories recorded from ``torch==2.13.0``, ``optax`` (JAX x64 for
  float64) and ``tf.compat.v1.train.RMSPropOptimizer``
  (``tests/data/make_golden_flavors.py``), replayed with the hyperparameters
  the framework applied (the rule itself, to float64 rounding) and as a user
  would configure them (our schedules, our float64 hyperparameters).
* The constructors' names and defaults are the frameworks' own; a flavor is
  an ordinary ``RMSprop`` whose config round-trips, whose state resumes, and
  which ``minimize`` (both loops) runs bit for bit as ``apply`` does.
* The hypothesis tests of ``test_properties.py`` draw the variants too.
"""

import inspect
import math

import flavor_golden as fg
import numpy as np
import pytest

import numba_rmsprop as nr
from numba_rmsprop import schedules


class RecordedSchedule(schedules.LearningRateSchedule):
    """The learning rates a framework applied, step by step."""

    def __init__(self, values):
        self.values = [float(v) for v in values]

    def __call__(self, step):
        return self.values[int(step)]


def like(case, mode):
    kwargs = fg.arguments(case, mode, schedules.ExponentialDecay, RecordedSchedule)
    return getattr(nr.RMSprop, f"like_{case.framework}")(**kwargs)


CASES = fg.all_cases()


@pytest.mark.parametrize("case", CASES, ids=fg.Case.name)
def test_matches_the_framework(case):
    """The rule itself: with the hyperparameters the framework applied."""
    assert fg.error(fg.replay(like(case, "applied"), case), case) <= fg.TOLERANCE[case.dtype]


def configured_tolerance(case):
    """How close a user's port gets, and why it is not closer."""
    if case.framework == "tf1" and case.dtype == "float64":
        return 1e-4  # TF1 keeps its hyperparameters in float32 (measured: 1.3e-5)
    if case.framework == "optax" and case.schedule and case.dtype == "float64":
        return 1e-6  # optax evaluates the schedule in float32, we in float64 (3.2e-7)
    return fg.TOLERANCE[case.dtype]


@pytest.mark.parametrize("case", CASES, ids=fg.Case.name)
def test_matches_the_framework_as_configured(case):
    """A ported script: the framework's arguments, our schedules."""
    assert fg.error(fg.replay(like(case, "configured"), case), case) <= configured_tolerance(case)


def test_golden_data_covers_every_argument():
    """Each framework argument is exercised alone and in combination, in both dtypes."""
    expected = {
        "torch": {"momentum", "centered", "weight_decay", "eps", "alpha", "maximize"},
        "optax": {
            "eps_in_sqrt",
            "initial_scale",
            "centered",
            "momentum",
            "nesterov",
            "bias_correction",
            "eps",
            "decay",
        },
        "tf1": {"momentum", "centered", "epsilon", "decay"},
    }
    for fw, args in expected.items():
        cases = fg.load(fw)
        used = {k for c in cases for k in c.kwargs if k != fg.LR_NAME[fw]}
        assert args <= used, (fw, args - used)
        assert any(len(set(c.kwargs) - {fg.LR_NAME[fw]}) >= 3 for c in cases)
        assert any(c.schedule for c in cases)
        assert {c.dtype for c in cases} == {"float32", "float64"}


# ---------------------------------------------------------------- constructors
FRAMEWORK_SIGNATURES = {
    # torch.optim.RMSprop(params, lr=0.01, alpha=0.99, eps=1e-08, weight_decay=0, momentum=0,
    #                     centered=False, capturable=False, foreach=None, maximize=False, ...)
    "like_torch": dict(
        lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, maximize=False
    ),
    # optax.rmsprop(learning_rate, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True,
    #               centered=False, momentum=None, nesterov=False, bias_correction=False)
    "like_optax": dict(
        learning_rate=inspect.Parameter.empty,
        decay=0.9,
        eps=1e-8,
        initial_scale=0.0,
        eps_in_sqrt=True,
        centered=False,
        momentum=None,
        nesterov=False,
        bias_correction=False,
    ),
    # tf.compat.v1.train.RMSPropOptimizer(learning_rate, decay=0.9, momentum=0.0,
    #                                     epsilon=1e-10, use_locking=False, centered=False)
    "like_tf1": dict(
        learning_rate=inspect.Parameter.empty,
        decay=0.9,
        momentum=0.0,
        epsilon=1e-10,
        centered=False,
    ),
}


@pytest.mark.parametrize("name", sorted(FRAMEWORK_SIGNATURES))
def test_constructors_take_the_frameworks_names_and_defaults(name):
    params = inspect.signature(getattr(nr.RMSprop, name)).parameters
    for arg, default in FRAMEWORK_SIGNATURES[name].items():
        assert arg in params, arg
        assert params[arg].default == default or (
            default is None and params[arg].default is None
        ), (arg, params[arg].default)


def test_constructors_set_the_frameworks_math():
    t = nr.RMSprop.like_torch(weight_decay=0.1, momentum=0.9)
    assert type(t) is nr.RMSprop
    assert (t.rho, t.epsilon, t.weight_decay) == (0.99, 1e-8, 0.1)
    assert not t.epsilon_in_sqrt and not t.learning_rate_in_momentum
    assert not t.decoupled_weight_decay and t.initial_velocity == 0.0
    assert nr.RMSprop.like_torch().weight_decay is None  # torch's 0 means off
    o = nr.RMSprop.like_optax(
        0.1, initial_scale=0.5, momentum=0.9, nesterov=True, bias_correction=True
    )
    assert (o.rho, o.epsilon, o.initial_velocity) == (0.9, 1e-8, 0.5)
    assert o.epsilon_in_sqrt and o.learning_rate_in_momentum and o.nesterov
    assert o.bias_correction and o.momentum == 0.9
    assert nr.RMSprop.like_optax(0.1, nesterov=True).nesterov is False  # momentum=None: no trace
    f = nr.RMSprop.like_tf1(0.1)
    assert (f.rho, f.epsilon, f.initial_velocity, f.momentum) == (0.9, 1e-10, 1.0, 0.0)
    # Keras's defaults stay the defaults.
    k = nr.RMSprop()
    assert k.epsilon_in_sqrt and k.learning_rate_in_momentum and k.decoupled_weight_decay
    assert not k.nesterov and not k.bias_correction and k.initial_velocity == 0.0


def test_other_options_pass_through_the_constructors():
    opt = nr.RMSprop.like_torch(lr=0.1, clipnorm=1.0, use_ema=True, gradient_accumulation_steps=2)
    assert (opt.clipnorm, opt.use_ema, opt.gradient_accumulation_steps) == (1.0, True, 2)


def test_optax_and_torch_style_step_functions_are_schedules():
    """optax schedules (and torch-style lambdas) are functions of the step count."""
    opt = nr.RMSprop.like_optax(lambda count: 0.1 * 0.5**count)
    assert opt.learning_rate == 0.1
    x = np.zeros(3)
    opt.apply([np.ones(3)], [x])
    assert opt.learning_rate == 0.05
    with pytest.raises(TypeError, match="cannot be serialized"):
        opt.get_config()


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: nr.RMSprop.like_torch(alpha=1.5), ValueError, "`alpha`"),
        (lambda: nr.RMSprop.like_torch(lr=-1.0), ValueError, "`lr`"),
        (lambda: nr.RMSprop.like_torch(eps="x"), TypeError, "`eps`"),
        (lambda: nr.RMSprop.like_optax(0.1, decay=-0.1), ValueError, "`decay`"),
        (lambda: nr.RMSprop.like_optax(0.1, initial_scale=-1.0), ValueError, "`initial_scale`"),
        (lambda: nr.RMSprop.like_optax(0.1, eps_in_sqrt=1), TypeError, "`eps_in_sqrt`"),
        (lambda: nr.RMSprop.like_tf1(0.1, decay=2.0), ValueError, "`decay`"),
        (lambda: nr.RMSprop(nesterov=True), ValueError, "nesterov.*momentum"),
        (lambda: nr.RMSprop(initial_velocity=-1.0), ValueError, "initial_velocity"),
        (lambda: nr.RMSprop(initial_velocity=math.inf), ValueError, "initial_velocity"),
        (lambda: nr.RMSprop(bias_correction="yes"), TypeError, "bias_correction"),
        (
            lambda: nr.RMSprop(
                0.1,
                0.9,
                0.0,
                1e-7,
                False,
                None,
                None,
                None,
                None,
                False,
                0.99,
                None,
                None,
                None,
                "rms",
                "cpu",
            ),
            TypeError,
            "positional",
        ),
    ],
)
def test_bad_flavor_arguments_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: nr.RMSprop.like_torch(learning_rate=0.1), "takes torch's name `lr`"),
        (lambda: nr.RMSprop.like_torch(rho=0.9), "takes torch's name `alpha`"),
        (lambda: nr.RMSprop.like_torch(momentum=0.9, nesterov=True), "no Nesterov momentum"),
        (lambda: nr.RMSprop.like_torch(bias_correction=True), "no bias correction"),
        (lambda: nr.RMSprop.like_torch(epsilon_in_sqrt=True), "outside the square root"),
        (lambda: nr.RMSprop.like_optax(0.1, epsilon=1e-3), "takes optax's name `eps`"),
        (lambda: nr.RMSprop.like_optax(0.1, weight_decay=0.1), "has no weight decay"),
        (lambda: nr.RMSprop.like_optax(0.1, maximize=True), "optax.rmsprop minimizes"),
        (lambda: nr.RMSprop.like_tf1(0.1, initial_velocity=0.0), "starts at 1"),
        (lambda: nr.RMSprop.like_tf1(0.1, nesterov=True), "no Nesterov"),
        (
            lambda: nr.RMSprop.like_tf1(0.1, momentum=0.9, bogus=1),
            "unexpected keyword argument `bogus`",
        ),
    ],
)
def test_flavors_refuse_what_their_framework_defines_otherwise(call, match):
    """A flavor's own argument under our name, a switch the flavor sets itself, and
    anything that is not one of Keras's extra features: a TypeError saying which."""
    with pytest.raises(TypeError, match=match):
        call()
    opt = nr.RMSprop.like_tf1(0.1, clipnorm=1.0, use_ema=True, gradient_accumulation_steps=2)
    assert opt.clipnorm == 1.0 and opt.initial_velocity == 1.0  # Keras's extras pass


def test_a_checkpoint_records_its_flavor_and_refuses_another():
    x = np.ones(3)
    torch = nr.RMSprop.like_torch(lr=0.1, momentum=0.9)
    torch.apply([np.ones(3)], [x])
    state = torch.state_dict()
    assert state["flavor.epsilon_in_sqrt"] is False and state["flavor.initial_velocity"] == 0.0
    keras = nr.RMSprop(0.1, momentum=0.9)
    with pytest.raises(ValueError, match="another flavor.*epsilon_in_sqrt=False there, True here"):
        keras.load_state_dict(state)
    assert keras.iterations == 0 and not keras.built
    same = nr.RMSprop.like_torch(lr=0.1, momentum=0.9)
    same.load_state_dict(state)  # through np.savez too: 0-d arrays compare by value
    again = nr.RMSprop.like_torch(lr=0.1, momentum=0.9)
    again.load_state_dict({k: np.asarray(v) for k, v in state.items()})
    old = {k: v for k, v in state.items() if not k.startswith("flavor.")}
    nr.RMSprop(0.1, momentum=0.9).load_state_dict(old)  # made before flavors were recorded
    with pytest.raises(ValueError, match="unknown variant options"):
        same.load_state_dict(dict(state, **{"flavor.wobble": True}))


def test_reads_after_loading_reflect_the_state_and_later_settings_win():
    """On an optimizer not built yet: ``iterations`` and ``learning_rate`` read the loaded
    values at once, and a learning rate set after loading is the one used."""
    x = np.zeros(3)
    a = nr.RMSprop(0.1, momentum=0.9)
    for _ in range(4):
        a.apply([np.ones(3)], [x])
    a.learning_rate = 0.02
    state = a.state_dict()
    b = nr.RMSprop(0.5, momentum=0.9)
    b.load_state_dict(state)
    assert not b.built and b.iterations == 4 and b.learning_rate == 0.02
    b.learning_rate = 0.3
    y = x.copy()
    b.apply([np.ones(3)], [y])
    assert b.learning_rate == 0.3 and b.iterations == 5
    c = nr.RMSprop(0.3, momentum=0.9)
    c.load_state_dict(state)
    c.learning_rate = 0.3
    z = x.copy()
    c.apply([np.ones(3)], [z])
    np.testing.assert_array_equal(y, z)


def test_variant_options_are_keyword_only_and_settled_once():
    opt = nr.RMSprop.like_torch()
    with pytest.raises(AttributeError, match="fixed"):
        opt.epsilon_in_sqrt = True


# ---------------------------------------------------------------- an ordinary RMSprop
FLAVORS = {
    "torch": lambda lr: nr.RMSprop.like_torch(
        lr=lr, momentum=0.9, centered=True, weight_decay=0.01
    ),
    "optax": lambda lr: nr.RMSprop.like_optax(
        lr,
        momentum=0.9,
        nesterov=True,
        bias_correction=True,
        initial_scale=0.1,
        eps_in_sqrt=False,
        centered=True,
    ),
    "tf1": lambda lr: nr.RMSprop.like_tf1(lr, momentum=0.9, centered=True),
}


def _run(opt, steps, seed=0, xs=None, dtype=np.float64):
    rng = np.random.default_rng(seed)
    if xs is None:
        xs = [rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    for _ in range(steps):
        opt.apply([rng.standard_normal(x.shape).astype(x.dtype) for x in xs], xs)
    return xs


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
def test_config_round_trip_keeps_the_flavor(flavor):
    lr = schedules.ExponentialDecay(0.05, 3, 0.7)
    opt = FLAVORS[flavor](lr)
    twin = nr.RMSprop.from_config(opt.get_config())
    assert twin.get_config() == opt.get_config()
    a, b = _run(opt, 7), _run(twin, 7)
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
def test_checkpoint_resumes_bit_for_bit(flavor):
    """State and counters (bias correction's update count included) survive a checkpoint
    taken in the middle of an accumulation cycle."""

    def make():
        cfg = FLAVORS[flavor](0.05).get_config()
        cfg["gradient_accumulation_steps"] = 3
        return nr.RMSprop.from_config(cfg)

    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((4, 3)), rng.standard_normal(5)]
    grads = [[rng.standard_normal(x.shape) for x in xs] for _ in range(10)]
    straight, resumed = make(), make()
    a = [x.copy() for x in xs]
    for g in grads:
        straight.apply([gi.copy() for gi in g], a)
    b = [x.copy() for x in xs]
    for g in grads[:4]:
        resumed.apply([gi.copy() for gi in g], b)
    state = {k: np.array(v) for k, v in resumed.state_dict().items()}
    again = make()
    again.load_state_dict(state)
    for g in grads[4:]:
        again.apply([gi.copy() for gi in g], b)
    for x, y in zip(a, b, strict=False):
        np.testing.assert_array_equal(x, y)


def test_initial_velocity_is_the_state_until_the_first_update():
    opt = nr.RMSprop.like_tf1(0.1, gradient_accumulation_steps=2)
    x = np.zeros(3, np.float32)
    opt.apply([np.ones(3, np.float32)], [x])  # accumulates only
    np.testing.assert_array_equal(opt.state_dict()["velocity/0"], np.ones(3, np.float32))
    np.testing.assert_array_equal(x, 0)


@pytest.mark.parametrize("flavor", sorted(FLAVORS))
@pytest.mark.parametrize("compiled", [False, True])
def test_minimize_runs_the_flavor(flavor, compiled):
    """``nr.minimize`` with the flavor's options gives exactly its ``apply`` loop."""
    from numba import njit

    @njit
    def quad(x, c):
        return 0.5 * np.sum((x - c) ** 2), x - c

    c = np.linspace(-1, 1, 6)
    options = {k: v for k, v in FLAVORS[flavor](0.02).get_config().items() if k != "name"}
    res = nr.minimize(
        quad, np.zeros(6), args=(c,), jac=True, options=dict(options, maxiter=40, compiled=compiled)
    )
    opt = nr.RMSprop.from_config(FLAVORS[flavor](0.02).get_config())
    x = np.zeros(6)
    for _ in range(40):
        opt.apply([quad(x, c)[1]], [x])
    np.testing.assert_array_equal(res.x, x)
    assert res.nit == 40 and res.success
