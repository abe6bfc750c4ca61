"""pickle and copy.deepcopy of an optimizer: same config, state and counters,
and a bit-for-bit continuation (what multiprocessing and Dask need)."""

import copy
import pickle

import numpy as np
import pytest

import numba_rmsprop as nr
from numba_rmsprop.engine import config

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


@pytest.fixture(autouse=True)
def _small_parallel_threshold(monkeypatch):
    """Variables of 4 KiB or more take the prange kernels: the last of make_variables()
    does, without 32 MiB of gradients per step."""
    monkeypatch.setattr(config, "PARALLEL_THRESHOLD_BYTES", 4096)


def make_variables():
    rng = np.random.default_rng(0)
    big = config.PARALLEL_THRESHOLD_BYTES // 4 + 100  # float32: the prange kernels
    return [
        rng.standard_normal((6, 5)).astype(np.float32),
        np.zeros(5, np.float32),
        np.asfortranarray(rng.standard_normal((4, 3))),  # float64, F order
        rng.standard_normal(big).astype(np.float32),
    ]


def grads_at(step, variables):
    rng = np.random.default_rng(step)
    return [rng.standard_normal(v.shape).astype(v.dtype) for v in variables]


def run(opt, variables, start, stop):
    for step in range(start, stop):
        opt.apply(grads_at(step, variables), variables)


def assert_same(opt_a, vars_a, opt_b, vars_b):
    assert opt_a.get_config() == opt_b.get_config()
    assert opt_a.iterations == opt_b.iterations
    for a, b in zip(vars_a, vars_b, strict=False):
        np.testing.assert_array_equal(a, b, strict=True)
    sa, sb = opt_a.state_dict(), opt_b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], strict=True)


@pytest.mark.parametrize("config", [CONFIG, dict(learning_rate=0.01)], ids=["full", "plain"])
def test_pickle_with_variables_continues_bit_for_bit(config):
    variables = make_variables()
    opt = nr.RMSprop(**config)
    run(opt, variables, 0, 13)  # mid-accumulation
    assert [s.parallel for s in opt._slots] == [False, False, False, True]
    opt2, variables2 = pickle.loads(pickle.dumps((opt, variables)))
    assert [s.parallel for s in opt2._slots] == [False, False, False, True]
    # pickle keeps identity within one dump: the copy is bound to the unpickled arrays
    assert all(a is b for a, b in zip(opt2.variables, variables2, strict=False))
    assert not any(a is b for a, b in zip(variables, variables2, strict=False))
    assert_same(opt, variables, opt2, variables2)
    run(opt, variables, 13, 30)
    run(opt2, variables2, 13, 30)
    assert_same(opt, variables, opt2, variables2)
    assert variables2[2].flags.f_contiguous


def test_deepcopy_is_independent():
    variables = make_variables()
    opt = nr.RMSprop(**CONFIG)
    run(opt, variables, 0, 7)
    twin = copy.deepcopy(opt)
    mine = twin.variables  # the copy owns copies of the variables
    assert not any(a is b for a, b in zip(mine, variables, strict=False))
    assert_same(opt, variables, twin, mine)
    run(twin, mine, 7, 20)
    assert opt.iterations == 7  # the original did not move
    run(opt, variables, 7, 20)
    assert_same(opt, variables, twin, mine)
    # the copy is bound to its own variables only
    with pytest.raises(ValueError, match="Unknown variable"):
        twin.apply(grads_at(0, variables), variables)


def test_pickle_alone_binds_the_copy_to_its_own_variables():
    variables = make_variables()
    opt = nr.RMSprop(learning_rate=0.01, momentum=0.5)
    run(opt, variables, 0, 3)
    opt2 = pickle.loads(pickle.dumps(opt))
    mine = opt2.variables
    assert_same(opt, variables, opt2, mine)
    opt2.apply(grads_at(3, mine))  # variables=None: the ones it was built with
    opt.apply(grads_at(3, variables))
    assert_same(opt, variables, opt2, mine)


def test_pickle_unbuilt_optimizer():
    opt = nr.RMSprop(**CONFIG)
    assert opt.learning_rate > 0  # reading it caches a table; nothing of it is pickled
    opt2 = pickle.loads(pickle.dumps(opt))
    assert not opt2.built and opt2.iterations == 0
    assert opt2.get_config() == opt.get_config()
    a, b = make_variables(), make_variables()
    run(opt, a, 0, 10)
    run(opt2, b, 0, 10)
    assert_same(opt, a, opt2, b)
    # copy.copy too: an unbuilt optimizer holds no arrays
    assert copy.copy(nr.RMSprop(**CONFIG)).get_config() == opt.get_config()


def test_pickle_keeps_pending_state_exclusions_and_a_set_learning_rate():
    variables = make_variables()
    src = nr.RMSprop(learning_rate=0.01, weight_decay=0.1, momentum=0.5)
    run(src, variables, 0, 4)
    saved = src.state_dict()

    opt = nr.RMSprop(learning_rate=0.01, weight_decay=0.1, momentum=0.5)
    opt.load_state_dict(saved)  # pending until build
    w = make_variables()
    opt.exclude_from_weight_decay(var_list=[w[1]])
    opt2, w2 = pickle.loads(pickle.dumps((opt, w)))
    opt.build(w)
    opt2.build(w2)
    assert opt2.iterations == 4
    run(opt, w, 4, 8)
    run(opt2, w2, 4, 8)
    assert_same(opt, w, opt2, w2)
    # the exclusion held: w[1] decayed differently from a run without it
    ref = nr.RMSprop(learning_rate=0.01, weight_decay=0.1, momentum=0.5)
    ref.load_state_dict(saved)
    r = make_variables()
    run(ref, r, 4, 8)
    assert not np.array_equal(r[1], w2[1])
    # a learning rate set on the optimizer survives
    opt2.learning_rate = 0.5
    opt3 = copy.deepcopy(opt2)
    assert opt3.learning_rate == 0.5


def test_pickle_error_names_the_unpicklable_part():
    opt = nr.RMSprop(learning_rate=lambda: 0.1)
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(opt)
