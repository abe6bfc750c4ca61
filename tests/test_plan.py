"""Keras's counter rules, tested on the plan alone (no kernels)."""

import pytest
from numba import njit

from numba_rmsprop.engine.plan import counters, make_plan


def plan(it, **kw):
    args = dict(
        accumulation_steps=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None
    )
    args.update(kw)
    return make_plan(it, 0.5, **args)


def test_without_accumulation_every_call_updates():
    assert [plan(i).update for i in range(5)] == [True] * 5


@pytest.mark.parametrize("n", [2, 3, 4])
def test_accumulation_updates_on_every_nth_call(n):
    updates = [plan(i, accumulation_steps=n).update for i in range(3 * n)]
    assert updates == ([False] * (n - 1) + [True]) * 3


def test_learning_rate_is_passed_through():
    assert plan(7).learning_rate == 0.5


def test_ema_momentum_is_zero_on_first_step_only():
    moms = [plan(i, use_ema=True).ema_momentum for i in range(3)]
    assert moms == [0.0, 0.99, 0.99]


def test_ema_sees_count_over_n_with_accumulation():
    moms = [plan(i, use_ema=True, accumulation_steps=3).ema_momentum for i in range(7)]
    assert moms == [0.0, 0.0, 0.0, 0.99, 0.99, 0.99, 0.99]


def test_ema_overwrite_frequency():
    ow = [plan(i, use_ema=True, ema_overwrite_frequency=3).ema_overwrite for i in range(7)]
    assert ow == [False, False, True, False, False, True, False]


def test_ema_overwrite_with_accumulation_uses_accumulated_count():
    ow = [
        plan(i, use_ema=True, ema_overwrite_frequency=2, accumulation_steps=2).ema_overwrite
        for i in range(8)
    ]
    # k = i // 2 = 0,0,1,1,2,2,3,3; overwrite when (k + 1) % 2 == 0
    assert ow == [False, False, True, True, False, False, True, True]


def test_no_ema_means_no_momentum_and_no_overwrite():
    p = plan(5, ema_overwrite_frequency=1)
    assert p.ema_momentum is None and p.ema_overwrite is False


@pytest.mark.parametrize("n_acc, freq", [(0, 0), (2, 0), (3, 2), (0, 3), (4, 1)])
def test_compiled_counters_equal_python_counters(n_acc, freq):
    """The compiled minimize loop compiles the same function; it must agree."""
    compiled = njit(counters)
    for it in range(40):
        assert compiled(it, n_acc, freq) == counters(it, n_acc, freq)


def test_counters_without_accumulation_or_overwrite():
    assert [counters(i, 0, 0) for i in range(3)] == [
        (True, True, False),
        (True, False, False),
        (True, False, False),
    ]
