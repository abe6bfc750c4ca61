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
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    layer = proc.stdout.split("LAYER")[-1].strip()
    if forced_layer:
        assert layer == forced_layer
    else:
        assert layer in ("omp", "tbb")
