"""This package's kernels load from Numba's disk cache without Numba's registries
(``numba_rmsprop.engine.jit.FastLoadCache``), and compute what compiled kernels compute.

A child process runs a workload that takes every CPU kernel family a first call
loads (``apply``'s grouped and ``prange`` kernels with clipping, momentum,
centered and EMA, in both dtypes; a torch-flavored optimizer resumed from a
checkpoint; ``nr.minimize``'s step with a Python objective; ``minimize_many``'s
per-run and vectorized kernels). Run twice on one
cache folder: the first may compile, the second loads. The second must not have
imported Numba's registries (``numba.np.linalg`` is the first of them that a
refresh imports; nor, after a first small ``apply``, ``numba.np.arrayobj``) and must
give, bit for bit, what this test process computes with the registries loaded;
with ``NUMBA_RMSPROP_FAST_LOAD=0`` the same child does import them (so the check
can fail).
"""

import json
import os
import subprocess
import sys

import pytest
from helpers import CHILD_OBJECTIVES, ROOT

from numba_rmsprop.engine import config, jit

WORKLOAD = (
    "import numpy as np\nimport numba_rmsprop as nr\n"
    + CHILD_OBJECTIVES
    + r"""
AFTER_APPLY = []  # whether a child had imported numba.np.arrayobj after its first apply


def work():
    import sys

    out = {}
    small = [np.linspace(-1.0, 1.0, 10).astype(np.float32)]  # the grouped kernel alone
    opt = nr.RMSprop(learning_rate=0.01, momentum=0.9, centered=True, use_ema=True)
    opt.apply([np.sin(small[0])], small)
    AFTER_APPLY.append("numba.np.arrayobj" in sys.modules)
    out["apply small"] = small[0].tolist()
    for dtype in (np.float32, np.float64):
        xs = [np.linspace(-1.0, 1.0, n).astype(dtype) for n in (10, 1000)]
        opt = nr.RMSprop(learning_rate=0.01, momentum=0.9, centered=True, use_ema=True,
                         global_clipnorm=1.0)
        for i in range(3):
            opt.apply([np.sin(x * (i + 1)).astype(dtype) for x in xs], xs)
        out["apply " + np.dtype(dtype).name] = [x.tolist() for x in xs]
    # another flavor, resumed from a checkpoint: the kernels a restored optimizer loads
    w = [np.linspace(-1.0, 1.0, 12)]
    first = nr.RMSprop.like_torch(lr=0.01, momentum=0.9, centered=True)
    first.apply([np.cos(w[0])], w)
    second = nr.RMSprop.like_torch(lr=0.01, momentum=0.9, centered=True)
    second.load_state_dict(first.state_dict())
    for i in range(2):
        second.apply([np.cos(w[0] * (i + 2))], w)
    out["torch flavor, resumed"] = w[0].tolist()
    d = np.linspace(1.0, 5.0, 5)
    res = nr.minimize(quad, np.ones(5), args=(d,), jac=True,
                      options=dict(maxiter=40, learning_rate=0.01, momentum=0.9))
    out["minimize"] = res.x.tolist()
    X0 = np.linspace(0.5, 1.5, 15).reshape(3, 5)
    opts = dict(maxiter=40, learning_rate=0.01)
    out["many"] = nr.minimize_many(quad, X0, args=(d,), jac=True, options=opts).x.tolist()
    out["many vectorized"] = nr.minimize_many(
        quad_columns, X0, args=(d,), jac=True, options=opts, vectorized=True
    ).x.tolist()
    return out
"""
)

CHILD = (
    WORKLOAD
    + r"""
import json, sys
out = work()
print(json.dumps({"out": out, "registries": "numba.np.linalg" in sys.modules,
                  "arrayobj_after_apply": AFTER_APPLY[0]}))
"""
)

# The 1000-element variables take the prange kernels.
THRESHOLD = "NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES"
ENV = {THRESHOLD: "2048"}


def _child(code=CHILD, *argv, **env):
    """Run ``code`` in a fresh interpreter (with ``ENV`` and ``env``): its last line's JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv],
        env={**os.environ, **ENV, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_kernels_load_without_numbas_registries_and_compute_the_same(monkeypatch):
    assert jit.ENABLED and jit._supported()
    _child()  # fills the cache (or finds it filled)
    loaded = _child()
    assert not loaded["registries"]
    # nor, after a small apply, numba.np.arrayobj (50 ms): the grouped kernel needs nothing
    # of it at run time (kernels that allocate, as the prange ones, still import it)
    assert not loaded["arrayobj_after_apply"]
    namespace: dict = {}
    exec(WORKLOAD, namespace)
    monkeypatch.setattr(config, "PARALLEL_THRESHOLD_BYTES", int(ENV[THRESHOLD]))
    assert loaded["out"] == json.loads(json.dumps(namespace["work"]()))
    numbas = _child(NUMBA_RMSPROP_FAST_LOAD="0")
    assert numbas["registries"] and numbas["out"] == loaded["out"]


def test_every_cached_kernel_of_the_package_loads_fast():
    """Every module-level CPU dispatcher of the package with a disk cache has the fast one
    (a kernel made with numba's own ``njit(cache=True)`` would load the registries)."""
    import importlib
    import pkgutil

    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    import numba_rmsprop

    seen = 0
    for info in pkgutil.walk_packages(numba_rmsprop.__path__, "numba_rmsprop."):
        if ".cuda" in info.name or info.name.endswith(".dask"):
            continue  # GPU kernels have numba-cuda's cache; Dask has no kernels
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, Dispatcher) and not isinstance(value._cache, NullCache):
                assert isinstance(value._cache, jit.FastLoadCache), f"{info.name}.{name}"
                seen += 1
    assert seen >= 20, seen


def test_only_cached_dispatchers_get_the_fast_cache():
    from numba_rmsprop.engine.cpu import kernels
    from numba_rmsprop.frontend import step

    assert isinstance(kernels.group_update._cache, jit.FastLoadCache)
    assert isinstance(step.step_arrays._cache, jit.FastLoadCache)
    plain = jit.njit(lambda x: x + 1)
    assert type(plain._cache).__name__ == "NullCache" and plain(1) == 2


# A user's @njit(cache=True) objectives: loaded by jit.load_cached as the kernels are.
USER_OBJECTIVES = """
import numpy as np
from numba import njit

@njit(cache=True)
def objective(x, d):
    g = np.empty_like(x)
    f = 0.0
    for i in range(x.size):
        g[i] = d[i] * x[i]
        f += 0.5 * g[i] * x[i]
    return f, g

@njit(cache=True)
def least_squares(x, A, y):  # minibatches: rows of A and y
    g = np.zeros_like(x)
    f = 0.0
    for r in range(A.shape[0]):
        e = -y[r]
        for i in range(x.size):
            e += A[r, i] * x[i]
        f += 0.5 * e * e
        for i in range(x.size):
            g[i] += e * A[r, i]
    return f, g

@njit(cache=True)
def columns(X, d):  # vectorized: X of shape (n, m)
    n, m = X.shape
    G = np.empty_like(X)
    f = np.zeros(m)
    for i in range(n):
        for r in range(m):
            G[i, r] = d[i] * X[i, r]
            f[r] += 0.5 * G[i, r] * X[i, r]
    return f, G
"""

# One entry point or mode per process, so that each is the process's first call of its
# objective (only a first version loads fast; later ones find it).
USER_CHILD = r"""
import json, os, pickle, sys
import numpy as np
import numba_rmsprop as nr
folder, case = sys.argv[1], sys.argv[2]
sys.path.insert(0, folder)
import user_objectives as u

d = np.linspace(1.0, 5.0, 5)
o = dict(maxiter=30, learning_rate=0.01, momentum=0.9)
fun = u.objective
if case == "compiled":
    res = nr.minimize(fun, np.ones(5), args=(d,), jac=True, options=dict(o, compiled=True))
elif case == "python loop":
    res = nr.minimize(fun, np.ones(5), args=(d,), jac=True, options=dict(o, compiled=False))
elif case == "minibatches":
    fun = u.least_squares
    A = np.cos(np.arange(60.0)).reshape(12, 5)
    y = np.sin(np.arange(12.0))
    res = nr.minimize(fun, np.zeros(5), args=(A, y), jac=True,
                      options=dict(o, batch_size=4, seed=3))
elif case == "resumed from a checkpoint":  # of a run in another process
    saved = os.path.join(folder, "first_run.pkl")
    if not os.path.exists(saved):  # the first process: the first 10 steps
        res = nr.minimize(fun, np.ones(5), args=(d,), jac=True, options=dict(o, maxiter=10))
        with open(saved, "wb") as fh:
            pickle.dump(res, fh)
    else:
        with open(saved, "rb") as fh:
            first = pickle.load(fh)
        res = nr.minimize(fun, first.x, args=(d,), jac=True, options=dict(o, resume=first))
        assert res.nit == 30, res.message
elif case == "minimize_many":
    res = nr.minimize_many(fun, np.ones((3, 5)), args=(d,), jac=True, options=o)
elif case == "minimize_many vectorized":
    fun = u.columns
    res = nr.minimize_many(fun, np.ones((3, 5)), args=(d,), jac=True, options=o,
                           vectorized=True)
stats = fun.stats
print(json.dumps({"out": np.asarray(res.x).tolist(), "registries": "numba.np.linalg" in sys.modules,
                  "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values())}))
"""

USER_CASES = [
    "compiled",
    "python loop",
    "minibatches",
    "resumed from a checkpoint",
    "minimize_many",
    "minimize_many vectorized",
]


@pytest.mark.parametrize(
    "case", [c if c == "compiled" else pytest.param(c, marks=pytest.mark.slow) for c in USER_CASES]
)
def test_a_cached_objective_loads_without_numbas_registries(case, tmp_path):
    """Every entry point and mode that calls a cached objective first: the second process
    loads it without Numba's registries (no cache miss) and computes, bit for bit, what a
    process computes that loads it through Numba (``NUMBA_RMSPROP_FAST_LOAD=0``)."""
    (tmp_path / "user_objectives.py").write_text(USER_OBJECTIVES)
    compiled = _child(USER_CHILD, str(tmp_path), case)  # compiles the objective, saves it
    assert compiled["misses"] >= 1 and compiled["registries"]
    loaded = _child(USER_CHILD, str(tmp_path), case)
    assert loaded["misses"] == 0 and loaded["hits"] >= 1, loaded
    assert not loaded["registries"]
    if case != "resumed from a checkpoint":  # (whose first process ran the first steps)
        assert loaded["out"] == compiled["out"]
    numbas = _child(USER_CHILD, str(tmp_path), case, NUMBA_RMSPROP_FAST_LOAD="0")
    assert numbas["misses"] == 0 and numbas["registries"]
    assert loaded["out"] == numbas["out"]
