"""``options={"resume": res}``: a run continues bit for bit as if it had not stopped."""

import copy
import pickle

import numpy as np
import pytest
from numba import njit

import numba_rmsprop as nr

RNG = np.random.default_rng(4)
A = RNG.standard_normal((30, 3))
B = A @ np.array([1.0, -2.0, 0.5]) + 0.1 * RNG.standard_normal(30)


@njit
def lsq(x, A, b):
    r = A @ x - b
    return 0.5 * np.sum(r * r) / b.size, A.T @ r / b.size


def lsq_py(x, A, b):
    r = A @ x - b
    return 0.5 * float(r @ r) / b.size, A.T @ r / b.size


FIELDS = ("x", "fun", "jac", "nit", "nfev", "njev", "status", "message")
CASES = [
    dict(momentum=0.9, use_ema=True, ema_overwrite_frequency=3, gradient_accumulation_steps=2),
    dict(batch_size=7, seed=3, centered=True),  # stops mid-epoch (7 batches of 5 steps each)
    dict(batch_size=7, shuffle=False, learning_rate=nr.schedules.CosineDecay(0.1, 40)),
    dict(gtol=1e-4, ftol=1e-9, tol_momentum=0.5, bounds=True),
]


@pytest.mark.parametrize("fun", [lsq_py, lsq], ids=["python", "compiled"])
@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_a_resumed_run_is_the_run_that_never_stopped(fun, case):
    o = {"learning_rate": 0.05, **case}
    bounds = [(-1.0, 1.0)] * 3 if o.pop("bounds", False) else None

    def run(x0, **kw):
        return nr.minimize(
            fun,
            x0,
            args=(A, B),
            jac=True,
            bounds=bounds,
            options=dict(o, return_history=True, **kw),
        )

    whole = run(np.zeros(3), maxiter=40)
    first = run(np.zeros(3), maxiter=13)
    rest = run(first.x, maxiter=40, resume=first)
    for name in FIELDS:
        np.testing.assert_array_equal(np.asarray(rest[name]), np.asarray(whole[name]), err_msg=name)
    np.testing.assert_array_equal(rest.history, whole.history[13:])
    again = run(rest.x, maxiter=45, resume=rest.checkpoint)  # the checkpoint alone works too
    ended = rest.nit < 40  # a rule ended it before its limit: it ends again, unchanged
    assert (rest.checkpoint.ended is not None) == ended
    assert again.nit == (rest.nit if ended else 45)


def test_a_run_that_ended_by_a_rule_ends_again():
    o = dict(learning_rate=0.1, gtol=0.1, tol_momentum=0.0)
    first = nr.minimize(lsq_py, np.zeros(3), args=(A, B), jac=True, options=dict(o, maxiter=500))
    assert first.status == 0 and first.nit < 500
    calls = []

    def counted(x, a, b):
        calls.append(1)
        return lsq_py(x, a, b)

    again = nr.minimize(
        counted, first.x, args=(A, B), jac=True, options=dict(o, maxiter=1000, resume=first)
    )
    assert not calls and again.nit == first.nit and np.array_equal(again.x, first.x)


@pytest.mark.parametrize(
    "change, exc, match",
    [
        (dict(options=dict(momentum=0.5)), ValueError, "momentum: 0.9 then, 0.5 now"),
        (dict(options=dict(batch_size=5)), ValueError, "batch_size: 7 then, 5 now"),
        (dict(options=dict(seed=4)), ValueError, "seed: 3 then, 4 now"),
        (dict(options=dict(maxiter=5)), ValueError, "below the 13 optimizer calls"),
        (dict(x0=np.ones(3)), ValueError, "`x0` must be the resumed result's `x`"),
        (dict(options=dict(resume="nope")), TypeError, "`resume` must be the result"),
    ],
)
def test_a_continuation_must_repeat_what_defines_the_run(change, exc, match):
    o = dict(learning_rate=0.05, momentum=0.9, batch_size=7, seed=3)
    first = nr.minimize(lsq_py, np.zeros(3), args=(A, B), jac=True, options=dict(o, maxiter=13))
    calls = []

    def counted(x, a, b):
        calls.append(1)
        return lsq_py(x, a, b)

    opts = dict(o, maxiter=40, resume=first)
    opts.update(change.get("options", {}))
    with pytest.raises(exc, match=match):
        nr.minimize(counted, change.get("x0", first.x), args=(A, B), jac=True, options=opts)
    assert not calls


def test_minimize_many_resumes_each_run():
    k = 4
    X0 = RNG.uniform(-1, 1, (k, 3))
    Ak = np.stack([A + 0.1 * i for i in range(k)])
    o = dict(learning_rate=[0.02, 0.05, 0.1, 0.2], batch_size=6, seed=[1, 2, 3, 4])

    def run(X, **kw):
        return nr.minimize_many(lsq, X, args=(Ak, B), run_args=(0,), options=dict(o, **kw))

    whole = run(X0, maxiter=30)
    first = run(X0, maxiter=11)
    assert len(first.checkpoint) == k
    rest = run(first.x, maxiter=30, resume=first)
    for name in ("x", "fun", "nit", "nfev", "status", "nepoch"):
        np.testing.assert_array_equal(rest[name], whole[name], err_msg=name)
    with pytest.raises(ValueError, match="earlier minimize_many result of 4 runs"):
        run(first.x, maxiter=30, resume=first.checkpoint[:2])
    # the checkpoints as a pickled (or copied) list resume the same
    for ckpts in (pickle.loads(pickle.dumps(first.checkpoint)), copy.deepcopy(first.checkpoint)):
        assert type(ckpts) is list and ckpts == first.checkpoint
        again = run(first.x, maxiter=30, resume=ckpts)
        np.testing.assert_array_equal(again.x, whole.x)


def test_minimize_many_checkpoints_are_made_when_read():
    made = []
    X0 = RNG.uniform(-1, 1, (5, 3))
    res = nr.minimize_many(lsq, X0, args=(A, B), options=dict(maxiter=4))
    make = res.checkpoint._make
    res.checkpoint._make = lambda r: made.append(r) or make(r)
    assert len(res.checkpoint) == 5 and not made
    assert res.checkpoint[-1] is res.checkpoint[4] and made == [4]  # made once
    assert [c.nit for c in res.checkpoint[1:3]] == [4, 4] and made == [4, 1, 2]
    np.testing.assert_array_equal(res.checkpoint[0].x, res.x[0])
    with pytest.raises(IndexError):
        res.checkpoint[5]
    single = nr.minimize(lsq, X0[3], args=(A, B), jac=True, options=dict(maxiter=4))
    assert res.checkpoint[3] == single.checkpoint  # as the run's own nr.minimize makes it


def test_a_printed_result_shows_a_short_checkpoint():
    res = nr.minimize(lsq_py, np.zeros(3), args=(A, B), jac=True, options=dict(maxiter=4))
    assert repr(res.checkpoint) == (
        "<RunCheckpoint: step 4, 4 evaluations, epoch 0, 3 float64 parameters>"
    )
    assert "S=array" not in str(res)
