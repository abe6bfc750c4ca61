"""The public API as a user calls it, checked by mypy (``.ci/run`` and ``tests/test_typing.py``).

Not collected by pytest; never run. ``assert_type`` fails the check where a
public name comes out as ``Any`` or another type than documented.
"""

from __future__ import annotations

import numpy as np
from typing_extensions import assert_type

import numba_rmsprop as nr
from numba_rmsprop import OptimizeResult, schedules


def quadratic(x: np.ndarray, c: np.ndarray) -> tuple[float, np.ndarray]:
    r = x - c
    return 0.5 * float(r @ r), r


def optimizer() -> None:
    w = np.zeros(10)
    opt = nr.RMSprop(learning_rate=0.1, momentum=0.9, centered=True, clipnorm=1.0)
    assert_type(opt, nr.RMSprop)
    opt.apply([np.ones(10)], [w])
    nr.RMSprop(schedules.ExponentialDecay(0.1, 100, 0.9), use_ema=True, device="cpu")
    nr.RMSprop(0.1, 0.9, 0.0, 1e-7, False, None, None, None, 1.0, nesterov=False)
    opt2 = nr.RMSprop.from_config(opt.get_config())
    opt2.load_state_dict(opt.state_dict())
    assert_type(nr.RMSprop.like_torch(lr=0.01, alpha=0.99, clipnorm=1.0), nr.RMSprop)
    assert_type(nr.RMSprop.like_optax(lambda step: 0.1 * 0.9**step, decay=0.9), nr.RMSprop)
    assert_type(nr.RMSprop.like_tf1(1e-3, decay=0.9, use_ema=True), nr.RMSprop)
    schedules.CosineDecay(0.1, 1000, alpha=0.0, warmup_target=0.2, warmup_steps=10)
    schedules.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001])


def front_end() -> None:
    c = np.linspace(0.0, 1.0, 5)
    res = nr.minimize(quadratic, np.zeros(5), args=(c,), jac=True, options={"maxiter": 100})
    assert_type(res, OptimizeResult)
    res = nr.minimize(quadratic, [0.0] * 5, args=(c,), jac=True, bounds=[(0.0, 1.0)] * 5, tol=1e-6)
    # (scipy.optimize.minimize(..., method=nr.rmsprop) is not checked: scipy-stubs 1.17
    # rejects every callable method with jac=True, even one shaped as its own protocol.)
    assert_type(nr.rmsprop(quadratic, np.zeros(5), (c,), jac=True), OptimizeResult)
    X0 = np.zeros((3, 5))
    many = nr.minimize_many(quadratic, X0, args=(c,), options={"learning_rate": [0.1] * 3})
    assert_type(many, OptimizeResult)
    nr.minimize_many(quadratic, X0, args=(np.zeros((3, 5)),), run_args=(0,), vectorized=False)
    # scipy's layout: X of shape (n, m); the per-run data holds the runs along axis 1
    nr.minimize_many(
        lambda X, C: (0.5 * ((X - C) ** 2).sum(axis=0), X - C),
        X0,
        args=(np.zeros((5, 3)),),
        run_args=((0, 1),),
        vectorized=True,
    )
