"""Concurrent apply() from a thread pool, on separate optimizers, matches serial results.

Runs in a subprocess so that the threading layer is chosen fresh, as in a
user's process, and so that an abort would show up as a failed exit code
instead of killing pytest.
"""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from concurrent.futures import ThreadPoolExecutor
    import numba
    import numba_rmsprop as nr

    def job(seed, n):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(n).astype(np.float32)
        opt = nr.RMSprop(learning_rate=0.01, momentum=0.9, centered=True, global_clipnorm=1.0)
        for _ in range(20):
            opt.apply([rng.standard_normal(n).astype(np.float32)], [x])
        return x

    sizes = [200_000, 50, 300_000, 70_000] * 4   # large ones take the prange kernels
    serial = [job(i, n) for i, n in enumerate(sizes)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(job, i, n) for i, n in enumerate(sizes)]
        threaded = [f.result() for f in futures]
    for a, b in zip(serial, threaded):
        np.testing.assert_array_equal(a, b)
    print("LAYER", numba.threading_layer())
    """
)


@pytest.mark.parametrize("forced_layer", [None, "workqueue"])
def test_concurrent_apply_matches_serial_and_never_aborts(forced_layer):
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    env["NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES"] = "65536"  # the large ones take prange
    if forced_layer:
        # A user who forces the unsafe layer still gets no abort: launches are serialised.
        env["NUMBA_THREADING_LAYER"] = forced_layer
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    layer = proc.stdout.split("LAYER")[-1].strip()
    if forced_layer:
        assert layer == forced_layer
    else:
        assert layer in ("omp", "tbb")


def _run_script(code, **env_extra):
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    env.update(env_extra)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_default_threshold_keeps_training_sized_variables_serial():
    """The measured policy: threads only from 32 MiB (see _config), so a 784x128 layer,
    whose prange launch stalled for milliseconds beside BLAS, stays serial."""
    from numba_rmsprop.engine import config
    from numba_rmsprop.engine.cpu.backend import CPUBackend

    assert (
        config.PARALLEL_THRESHOLD_BYTES == 32 << 20
        or "NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES" in os.environ
    )
    assert not CPUBackend.use_parallel(784 * 128 * 4)
    assert not CPUBackend.use_parallel(config.PARALLEL_THRESHOLD_BYTES - 1)
    assert CPUBackend.use_parallel(config.PARALLEL_THRESHOLD_BYTES)


def test_threadpoolctl_limits_the_package_threads():
    out = _run_script(
        """
        import numpy as np
        import threadpoolctl                 # imported first: registered at import
        import numba, numba_rmsprop as nr
        from numba_rmsprop.engine import threads as _threads
        x = np.ones(1000)
        opt = nr.RMSprop(0.01)
        opt.apply([np.ones(1000)], [x])      # threaded (threshold lowered): the pool loads
        info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "numba_rmsprop"]
        assert len(info) == 1, threadpoolctl.threadpool_info()
        full = _threads.num_threads()
        with threadpoolctl.threadpool_limits(1):
            assert _threads.num_threads() == 1
            opt.apply([np.ones(1000)], [x])
        assert _threads.num_threads() == full
        print("OK", full, info[0]["internal_api"])
    """,
        NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES="1",
    )
    assert "OK" in out


def test_number_of_threads_knob():
    out = _run_script(
        """
        import numba_rmsprop as nr
        from numba_rmsprop.engine import threads as _threads
        print("N", _threads.num_threads())
    """,
        NUMBA_RMSPROP_NUM_THREADS="1",
    )
    assert "N 1" in out


def test_tbb_from_the_wheel_is_used_when_installed():
    """pip puts libtbb where the loader does not look; the package loads it by path."""
    from importlib import metadata

    try:
        metadata.distribution("tbb")
    except metadata.PackageNotFoundError:
        pytest.skip("the tbb wheel is not installed")
    out = _run_script(
        """
        import numpy as np, numba, numba_rmsprop as nr
        x = np.ones(1000)
        nr.RMSprop(0.01).apply([np.ones(1000)], [x])
        print("LAYER", numba.threading_layer())
    """,
        NUMBA_RMSPROP_PARALLEL_THRESHOLD_BYTES="1",
        LD_LIBRARY_PATH="",
    )
    assert "LAYER tbb" in out
