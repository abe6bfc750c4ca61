"""asv suites: the first call -- import, compile or cache load -- each in a fresh interpreter.

A child ``python`` times itself (``time.perf_counter``, so interpreter start-up
is excluded) and prints JSON. Its ``NUMBA_CACHE_DIR`` is

* a fresh, empty folder (``track_cold_cache``): everything compiles, or
* the folder an earlier child filled (``track_warm_cache``): kernels load from
  numba's on-disk cache.

:class:`FirstApply`: ``import numba_rmsprop`` and the first ``apply`` calls on a
small model (10- and 1000-element variables, which take the grouped kernels,
and a 100k one, which takes the ``prange`` kernels) for each feature set in
:data:`FEATURES` (one call, or one accumulation cycle). :class:`FirstMinimize`:
the first compiled ``nr.minimize`` with a NEW ``@njit`` objective -- written to
a fresh module in a temporary folder for every child, so neither numba nor
the loop has seen it (warm: the library's kernels and loop are cached, the
objective is not). :class:`ImportTime`: the imports alone.

:func:`first_call` is what ``report.py --sections first_call`` runs too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from . import common as C

FEATURES = {
    "plain": {},
    "momentum+centered+ema": {"momentum": 0.9, "centered": True, "use_ema": True},
    "all": {
        "momentum": 0.9,
        "centered": True,
        "global_clipnorm": 1.0,
        "use_ema": True,
        "gradient_accumulation_steps": 2,
    },
}
MODEL_SIZES = [10, 1_000, 100_000]

_CHILD = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
import numba_rmsprop as nr
t1 = time.perf_counter()
mode, arg = sys.argv[1], json.loads(sys.argv[2])
parts = {}
if mode != "import" and arg.get("split"):  # what the first call costs beyond this package
    tb = time.perf_counter()
    from numba.core.registry import cpu_target
    from numba.core.runtime import nrt
    nrt.rtsys.initialize(cpu_target.target_context)  # numba's runtime, which loaded code needs
    tc = time.perf_counter()
    parts = {"numba_runtime": tc - tb}
if mode == "import":
    try:  # numba and the kernel definitions, which every first CPU apply imports
        import numba_rmsprop.engine.cpu.backend
    except ImportError:  # the backend moved: numba itself
        import numba
    out = {"import_cpu_backend": time.perf_counter() - t1}
elif mode == "apply":
    xs = [np.zeros(n, np.float32) for n in arg["sizes"]]
    gs = [np.full(n, 1e-2, np.float32) for n in arg["sizes"]]
    opt = nr.RMSprop(**arg["kw"])
    for _ in range(max(1, arg["kw"].get("gradient_accumulation_steps") or 1)):
        opt.apply(gs, xs)
    out = {"first_apply": time.perf_counter() - t1}
elif mode == "minimize_python":  # a Python objective: the compiled step, called per step
    def fun(x, d):
        g = d * x
        return 0.5 * float(g @ x), g

    res = nr.minimize(fun, np.ones(10), args=(np.linspace(1.0, 10.0, 10),), jac=True,
                      options=dict(maxiter=100, learning_rate=1e-2, momentum=0.9))
    assert res.nit == 100, res.message
    out = {"first_minimize": time.perf_counter() - t1}
else:  # minimize: a new module, numba has never seen its objective; minimize_cached: cached
    sys.path.insert(0, arg["dir"])
    fun = __import__(arg["module"]).objective
    if parts and mode == "minimize_cached":  # what the objective's code imports as it loads
        td = time.perf_counter()  # (its `@`: numba.np.arraymath, scipy.linalg for BLAS)
        import numba.np.arraymath
        parts["objective_imports"] = time.perf_counter() - td
    elif parts:  # the objective's own compilation, which any caller of it would pay: first
        td = time.perf_counter()  # numba's registries (and scipy.linalg), which any compile loads
        cpu_target.target_context.refresh()
        te = time.perf_counter()
        fun.compile("(float64[::1], float64[::1])")
        parts.update(numba_registries=te - td, objective_compile=time.perf_counter() - te)
    res = nr.minimize(fun, np.ones(10), args=(np.linspace(1.0, 10.0, 10),), jac=True,
                      options=dict(maxiter=100, learning_rate=1e-2, momentum=0.9, compiled=True))
    assert res.nit == 100, res.message
    out = {"first_minimize": time.perf_counter() - t1}
out.update(parts, **{"import": t1 - t0, "total": time.perf_counter() - t0})
if parts:  # this package's own share of the first call
    out["package"] = out[next(k for k in out if k.startswith("first_"))] - sum(parts.values())
print(json.dumps(out))
"""

_OBJECTIVE = """
from numba import njit

@njit(cache={cache})
def objective(x, d):  # {tag}
    g = d * x
    return 0.5 * (g @ x), g
"""


def first_call(
    kind: str, cache_dir: str, features: str = "momentum+centered+ema", split: bool = False
) -> dict:
    """Run one child (``kind``: ``apply``, ``minimize``, ``minimize_cached``,
    ``minimize_python`` or ``import``) on ``cache_dir``; seconds. ``split``: numba's runtime,
    and what the objective's compile or load costs, timed on their own first (the first
    call's total is the same). ``minimize_cached``: an ``@njit(cache=True)`` objective,
    written once beside ``cache_dir`` (so cached in it by the first child)."""
    arg, src = {"kw": FEATURES[features], "sizes": MODEL_SIZES}, None
    if kind == "minimize":
        src = tempfile.mkdtemp(prefix="nr-objective-")
        arg = {"dir": src, "module": "objective_" + os.path.basename(src).replace("-", "_")}
        with open(os.path.join(src, arg["module"] + ".py"), "w") as fh:
            fh.write(_OBJECTIVE.format(tag=arg["module"], cache=False))
    elif kind == "minimize_cached":
        folder = cache_dir.rstrip(os.sep) + "-objective"
        arg = {"dir": folder, "module": "cached_objective"}
        if not os.path.exists(folder):
            os.makedirs(folder)
            with open(os.path.join(folder, arg["module"] + ".py"), "w") as fh:
                fh.write(_OBJECTIVE.format(tag=arg["module"], cache=True))
    arg["split"] = split
    try:
        return C.run_child(["-c", _CHILD, kind, json.dumps(arg)], C.child_env(cache_dir), cache_dir)
    finally:
        if src:
            shutil.rmtree(src, ignore_errors=True)


def cold_and_warm(kind: str, features: str = "momentum+centered+ema") -> dict:
    """``{"cold": ..., "warm": ..., "warm, split": ...}``: one child on an empty cache, the
    next on the filled one, and one more there with the first call's parts timed."""
    cache = tempfile.mkdtemp(prefix="nr-cache-")
    try:
        return {
            "cold": first_call(kind, cache, features),
            "warm": first_call(kind, cache, features),
            "warm, split": first_call(kind, cache, features, split=True),
        }
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(cache + "-objective", ignore_errors=True)


def first_calls() -> dict:
    """Everything ``report.py`` shows: import, apply (plain; momentum+centered+ema), minimize."""
    return {
        "import": cold_and_warm("import")["cold"],
        "apply plain": cold_and_warm("apply", "plain"),
        "apply momentum+centered+ema": cold_and_warm("apply"),
        "minimize, new @njit objective": cold_and_warm("minimize"),
        "minimize, cached @njit objective": cold_and_warm("minimize_cached"),
        "minimize, Python objective": cold_and_warm("minimize_python"),
    }


class _ColdWarm(C.Benchmark):
    """asv runs ``setup_cache`` once, in a scratch working directory kept for the suite.

    The first ``setup`` of a parameter runs the cold child on an empty folder
    (which fills it) and records it; ``track_warm_cache`` runs a child on the
    filled folder.
    """

    timeout = 300
    kind = key = ""

    def setup_cache(self):
        root = os.path.abspath("numba-cache")
        os.makedirs(root, exist_ok=True)
        return root

    def setup(self, root, features="momentum+centered+ema"):
        self.features = features
        self.cache_dir = os.path.join(root, self.kind + "-" + features)
        record = self.cache_dir + ".cold.json"
        if C.sized(False, True) and os.environ.get("NUMBA_CACHE_DIR"):
            self.cache_dir = os.environ["NUMBA_CACHE_DIR"]  # smoke test: reuse, never empty it
            os.makedirs(self.cache_dir, exist_ok=True)
        elif not os.path.exists(record):
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            os.makedirs(self.cache_dir)
        if not os.path.exists(record):
            with open(record, "w") as fh:
                json.dump(first_call(self.kind, self.cache_dir, features), fh)
        with open(record) as fh:
            self.cold = json.load(fh)

    def track_cold_cache(self, root, *features):
        return self.cold[self.key]

    def track_warm_cache(self, root, *features):
        return first_call(self.kind, self.cache_dir, self.features)[self.key]

    track_cold_cache.unit = track_warm_cache.unit = "s"


class FirstApply(_ColdWarm):
    """Import + the first ``apply`` calls, cold and warm numba cache."""

    params = [list(FEATURES)]
    param_names = ["features"]
    kind, key = "apply", "first_apply"


class FirstMinimize(_ColdWarm):
    """The first compiled ``nr.minimize`` (100 steps) with a new ``@njit`` objective."""

    kind, key = "minimize", "first_minimize"


class FirstMinimizeCached(_ColdWarm):
    """The first compiled ``nr.minimize`` with an ``@njit(cache=True)`` objective."""

    kind, key = "minimize_cached", "first_minimize"


class ImportTime(C.Benchmark):
    """``import numba_rmsprop``, then numba and the CPU kernel definitions (no compilation)."""

    params = [["import", "import_cpu_backend"]]
    param_names = ["step"]
    unit = "s"

    def setup_cache(self):
        return cold_and_warm("import")["cold"]

    def track_import(self, times, step):
        return times[step]
