"""Small helpers shared by the tests."""

import os
import subprocess
import sys

import numpy as np
from numba import njit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(opt, variables):
    """Everything a failed call must leave unchanged."""
    return {
        "vars": [np.array(v, copy=True) for v in variables],
        "iterations": opt.iterations,
        "built": opt.built,
        "state": {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}
        if opt.built
        else None,
    }


def assert_unchanged(opt, variables, snap):
    for before, v in zip(snap["vars"], variables, strict=False):
        np.testing.assert_array_equal(np.asarray(v), before, strict=True)
    assert opt.iterations == snap["iterations"]
    assert opt.built == snap["built"]
    if snap["state"] is not None:
        now = opt.state_dict()
        assert set(now) == set(snap["state"])
        for k, v in snap["state"].items():
            np.testing.assert_array_equal(now[k], v, strict=True)


#: Source of the objectives that fresh-process tests run (after ``import numpy as np``): a
#: quadratic ``quad(x, d)`` and the same over columns, ``quad_columns(X, d)`` (X: (n, m)).
CHILD_OBJECTIVES = """
def quad(x, d):
    g = d * x
    return 0.5 * float(g @ x), g

def quad_columns(X, d):
    G = d[:, None] * X
    return 0.5 * (G * X).sum(axis=0), G
"""


def run_fresh_python(code: str, timeout: float = 300, **environ: str) -> None:
    """Run ``code`` in a fresh interpreter that imports this checkout, with the
    environment variables ``environ`` set too; it must exit 0."""
    env = dict(
        os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **environ
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


# The per-run objectives of the minimize_many tests (test_many, test_dask): one
# quadratic per run, centre ``c``, weights ``w``.
@njit
def quad(x, c, w):
    d = x - c
    return 0.5 * np.sum(w * d * d), w * d


def quad_np(x, c, w):
    """``quad`` in NumPy (a Python objective: one ``nr.minimize`` per run)."""
    d = x - c
    return 0.5 * np.sum(w * d * d), w * d


@njit
def quad_columns(X, C, w):
    """``quad`` of every column of ``X`` (``C``: one column per run, as ``X``), the runs
    innermost (its sums in another order than ``np.sum``'s)."""
    n, m = X.shape
    f = np.zeros(m)
    G = np.empty((n, m))
    for i in range(n):
        for r in range(m):
            d = X[i, r] - C[i, r]
            G[i, r] = w[i] * d
            f[r] += w[i] * d * d
    for r in range(m):
        f[r] *= 0.5
    return f, G


def quad_vec(X, C, w):
    """All active runs at once (``X``: one column per run, ``C``: one row per run): run by
    run exactly ``quad_np``."""
    D = X.T - C
    return np.array([0.5 * np.sum(w * d * d) for d in D]), (w * D).T
