"""Settings and fixtures shared by the test modules.

What happens here before any test module imports numba:

* **The CUDA simulator.** ``NUMBA_ENABLE_CUDASIM=1`` is set (unless
  ``NUMBA_RMSPROP_REAL_GPU=1`` asks for a real GPU), so the CUDA cases run in
  the test processes themselves, next to the CPU kernels they compare with.
* **Two workers, one Numba cache.** ``pytest`` runs on two pytest-xdist workers
  (``addopts`` in ``pyproject.toml``; ``-n 0`` runs in one process), each test
  file on one worker, the costliest files first (:func:`pytest_collection_modifyitems`).
  Both workers, and every process a test starts, share one Numba cache: that is
  safe because ``import numba_rmsprop`` locks Numba's cache writes
  (:mod:`numba_rmsprop.engine.cache_lock`, numba/numba#4807), and a kernel one
  worker compiled the other loads.
* **Hypothesis** runs derandomized with a bounded number of examples: every
  run checks the same examples (and compiles the same kernels).
"""

from __future__ import annotations

import os

import pytest

if os.environ.get("NUMBA_RMSPROP_REAL_GPU") != "1":
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "numba-rmsprop",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("numba-rmsprop")


# ---------------------------------------------------------------- xdist: costliest first
#: Cost (seconds, cold cache, on a 2-core machine; ``pytest --durations=0``) of the test
#: files that take long: with ``--dist loadfile`` the workers take files in collection
#: order, so the costliest go first and the short ones fill the gaps. Others weigh 0.
FILE_COSTS = {
    "test_cuda_cases.py": 155,
    "test_many.py": 139,
    "test_properties.py": 113,
    "test_optimize.py": 84,
    "test_flavors.py": 81,
    "test_dask.py": 76,
    "test_benchmarks_smoke.py": 69,
    "test_examples.py": 59,
    "test_keras_golden.py": 50,
    "test_docs.py": 60,
    # Not measured one by one yet (added after the table was made); estimated from warm
    # runs and how many configurations they compile, so that they do not come last.
    "test_composition.py": 50,
    "test_many_columns.py": 45,
    "test_resume.py": 25,
    "test_pickle.py": 25,
    "test_stream.py": 21,
    "test_scipy_conventions.py": 17,
    "test_threads.py": 14,
    "test_bad_input.py": 12,
    "test_fast_load.py": 30,
}


def pytest_collection_modifyitems(config, items):
    """Test files in order of decreasing cost (stable: the same order in every worker)."""
    items.sort(key=lambda item: -FILE_COSTS.get(os.path.basename(str(item.path)), 0))


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A Dask ``LocalCluster`` of two one-thread worker processes, one per test module
    (its workers' scratch space in pytest's temporary folder)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        local_directory=str(tmp_path_factory.mktemp("dask")),
    )
    c = distributed.Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
