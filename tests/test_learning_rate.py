"""The learning rate each call uses: schedules (tabulated in blocks), callables, constants."""

import numpy as np
import pytest

import numba_rmsprop as nr
from numba_rmsprop.schedules import LearningRateSchedule

SCHEDULES = [
    nr.schedules.ExponentialDecay(0.1, 7, 0.5, staircase=True),
    nr.schedules.PiecewiseConstantDecay([3, 300], [0.1, 0.05, 0.01]),
    nr.schedules.PolynomialDecay(0.1, 50, cycle=True),
    nr.schedules.InverseTimeDecay(0.1, 5, 0.3),
    nr.schedules.CosineDecay(0.1, 400, alpha=0.1, warmup_target=0.2, warmup_steps=20),
    nr.schedules.CosineDecayRestarts(0.1, 7, t_mul=1.5, m_mul=0.9, alpha=0.1),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_schedule_rate_equals_scalar_call_at_every_step(schedule):
    opt = nr.RMSprop(learning_rate=schedule)
    x = np.zeros(3)
    for step in range(600):  # crosses several table blocks
        assert opt.learning_rate == schedule(step)
        opt.apply([np.ones(3)], [x])


def test_rate_after_restoring_a_far_iteration():
    sched = SCHEDULES[4]
    opt = nr.RMSprop(learning_rate=sched)
    x = np.zeros(2)
    opt.apply([np.ones(2)], [x])
    state = opt.state_dict()
    state["iterations"] = 100_000
    opt.load_state_dict(state)
    assert opt.learning_rate == sched(100_000)


def test_replacing_the_schedule_uses_the_new_one():
    opt = nr.RMSprop(learning_rate=0.1)
    assert opt.learning_rate == 0.1
    opt.learning_rate = SCHEDULES[0]
    assert opt.learning_rate == SCHEDULES[0](0)
    opt.learning_rate = SCHEDULES[3]
    assert opt.learning_rate == SCHEDULES[3](0)


def test_user_schedule_and_zero_argument_callable():
    class Halving(LearningRateSchedule):
        def __call__(self, step):
            return 1.0 / 2**step

        def get_config(self):
            return {}

    opt = nr.RMSprop(learning_rate=Halving())
    x = np.zeros(1)
    for step in range(4):
        assert opt.learning_rate == 0.5**step
        opt.apply([np.ones(1)], [x])
    rate = {"value": 0.3}
    opt = nr.RMSprop(learning_rate=lambda: rate["value"])
    assert opt.learning_rate == 0.3
    rate["value"] = 0.2
    assert opt.learning_rate == 0.2
