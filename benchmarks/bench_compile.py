"""asv suites: compile and import cost, each measured in a fresh interpreter.

A child ``python`` imports ``numba_rmsprop`` and makes the first ``apply``
calls on a small model (a 10- and a 1000-element variable, which take the
grouped serial kernels, and a 100k-element one, which takes the ``prange``
kernels), with ``NUMBA_CACHE_DIR`` pointing at

* a fresh, empty folder (``FirstApply.track_cold_cache``): everything
  compiles, or
* the folder that child filled (``FirstApply.track_warm_cache``): the
  kernels load from numba's on-disk cache;

and (:class:`ImportTime`) only imports the package.

The child times itself with ``time.perf_counter`` and reports JSON, so the
numbers exclude interpreter start-up. ``first_apply`` covers building the
state and the first calls: one, or one full accumulation cycle when the
feature set accumulates, so that every kernel used compiles.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numba_rmsprop as nr

#: Feature set -> RMSprop keyword arguments.
FEATURES = {
    "plain": {},
    "all": {"momentum": 0.9, "centered": True, "global_clipnorm": 1.0, "use_ema": True,
            "gradient_accumulation_steps": 2},
}
MODEL_SIZES = [10, 1_000, 100_000]
DTYPE = "float32"

_CHILD = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
import numba_rmsprop as nr
t1 = time.perf_counter()
if sys.argv[1] == "import":
    import numba_rmsprop._cpu_backend
    print(json.dumps({"import": t1 - t0, "import_cpu_backend": time.perf_counter() - t1}))
    raise SystemExit(0)
kw, sizes, dtype = json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
xs = [np.zeros(n, dtype) for n in sizes]
gs = [np.full(n, 1e-2, dtype) for n in sizes]
calls = max(1, kw.get("gradient_accumulation_steps") or 1)
t2 = time.perf_counter()
opt = nr.RMSprop(**kw)
for _ in range(calls):
    opt.apply(gs, xs)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first_apply": t3 - t2}))
"""


def _child_env(cache_dir: str) -> dict:
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = cache_dir
    env.pop("NUMBA_RMSPROP_NO_CACHE", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    # Import the same numba_rmsprop this process imported (an installed one
    # under asv; possibly the working tree when run from the tests).
    root = os.path.dirname(os.path.dirname(os.path.abspath(nr.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_child(mode: str, cache_dir: str, features: str = "plain", timeout: float = 600) -> dict:
    """Run the child script; returns its JSON report (seconds)."""
    cmd = [sys.executable, "-c", _CHILD, mode, json.dumps(FEATURES[features]),
           json.dumps(MODEL_SIZES), DTYPE]
    proc = subprocess.run(cmd, env=_child_env(cache_dir), cwd=cache_dir, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class FirstApply:
    """Import + first calls, with an empty numba cache and with a filled one.

    ``setup_cache`` only creates the scratch root: asv runs it, and this
    class's benchmarks, with a per-suite scratch folder as the working
    directory, kept until they are done. The first ``setup`` for a feature
    set runs the cold child on an empty cache folder -- which fills it -- and
    records its time; ``track_cold_cache`` reports that record and
    ``track_warm_cache`` runs a second child on the filled folder.
    """

    params = [list(FEATURES)]
    param_names = ["features"]
    timeout = 300

    def setup_cache(self):
        root = os.path.abspath("numba-cache")
        os.makedirs(root, exist_ok=True)
        return root

    def setup(self, root, features):
        self.cache_dir = os.path.join(root, features)
        record = os.path.join(root, features + ".cold.json")
        if not os.path.exists(record):
            shutil.rmtree(self.cache_dir, ignore_errors=True)
            os.makedirs(self.cache_dir)
            cold = run_child("apply", self.cache_dir, features)
            with open(record, "w") as f:
                json.dump(cold, f)
        with open(record) as f:
            self.cold = json.load(f)

    def track_cold_cache(self, root, features):
        return self.cold["first_apply"]

    track_cold_cache.unit = "s"

    def track_warm_cache(self, root, features):
        return run_child("apply", self.cache_dir, features)["first_apply"]

    track_warm_cache.unit = "s"


class ImportTime:
    """Import time in a fresh interpreter (``import numpy`` done first).

    ``track_import``: ``import numba_rmsprop`` (which at present defers
    importing numba to the first CPU call). ``track_import_cpu_backend``: then
    ``numba_rmsprop._cpu_backend`` -- numba itself and the kernel
    definitions, which every first CPU ``apply`` imports. Neither compiles
    nor reads a kernel from the numba cache (an empty ``NUMBA_CACHE_DIR``
    stays empty), so the numbers hold for a warm cache as for a cold one;
    loading kernels from a warm cache is :class:`FirstApply`.
    """

    timeout = 120

    def setup(self):
        self.cache_dir = tempfile.mkdtemp(prefix="nr-import-")
        try:
            self.times = run_child("import", self.cache_dir)
        finally:
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    def track_import(self):
        return self.times["import"]

    track_import.unit = "s"

    def track_import_cpu_backend(self):
        return self.times["import_cpu_backend"]

    track_import_cpu_backend.unit = "s"
