"""RMSprop on an NVIDIA GPU: a layer trained on the device, and 2,000 fits at once
===============================================================================

1. ``RMSprop.apply`` on CUDA device arrays: a linear layer ``W`` fitted to targets, its
   gradient computed by a ``@cuda.jit`` kernel; the optimizer's state stays on the
   device and every step is one fused launch.
2. ``nr.minimize_many`` with a CUDA ``X0`` and ``vectorized=True``: many independent
   quadratic fits, the objective written as a device kernel, one launch per step for
   all active runs; the result is compared with the same fits on the CPU.

Without a usable GPU (no NVIDIA driver, no GPU, or no ``numba-cuda``), the script says
so and runs on Numba's CUDA simulator instead (``NUMBA_ENABLE_CUDASIM=1``): the same
code and results, executed by Python threads, so slowly; with smaller sizes. The
loss of the layer against the step goes to ``examples/gpu.png`` (with matplotlib
installed). Run it::

    pip install -e ".[cuda]"
    python examples/gpu.py            # on a GPU
    python examples/gpu.py --quick    # small sizes (for tests)
"""

import argparse
import os
import subprocess
import sys
import time


def use_the_simulator_without_a_gpu():
    """Set ``NUMBA_ENABLE_CUDASIM=1`` (before numba loads) where no GPU can be used."""
    if "NUMBA_ENABLE_CUDASIM" in os.environ:
        return os.environ["NUMBA_ENABLE_CUDASIM"] == "1"
    probe = "from numba import cuda; raise SystemExit(not cuda.is_available())"
    if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0:
        return False
    print(
        "No usable CUDA GPU here: running on Numba's CUDA simulator instead "
        "(NUMBA_ENABLE_CUDASIM=1; the same results, slowly). On a GPU machine: "
        'pip install -e ".[cuda]".'
    )
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    return True


SIMULATED = use_the_simulator_without_a_gpu()

import numpy as np  # noqa: E402
from numba import cuda  # noqa: E402

import numba_rmsprop as nr  # noqa: E402

if SIMULATED:
    sys.setswitchinterval(1e-4)  # simulated GPU threads wait on each other: switch often


@cuda.jit
def layer_gradient(W, X, Y, G):
    """``G = X.T @ (X @ W - Y) / len(X)``, one thread per entry of ``G``."""
    i, j = cuda.grid(2)
    if i < G.shape[0] and j < G.shape[1]:
        acc = 0.0
        for s in range(X.shape[0]):
            r = -Y[s, j]
            for p in range(X.shape[1]):
                r += X[s, p] * W[p, j]
            acc += X[s, i] * r
        G[i, j] = acc / X.shape[0]


@cuda.jit
def quadratics(X, centers, f, G):
    """Run ``r`` (column ``r`` of ``X``, ``centers`` and ``G``): ``f = |x - c|^2 / 2``,
    ``G = x - c``; neighbouring threads read neighbouring columns (coalesced)."""
    r = cuda.grid(1)
    if r < X.shape[1]:
        total = 0.0
        for p in range(X.shape[0]):
            d = X[p, r] - centers[p, r]
            G[p, r] = d
            total += d * d
        f[r] = 0.5 * total


def train_layer(n_samples, n_in, n_out, steps):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_samples, n_in)).astype(np.float32)
    W_true = rng.standard_normal((n_in, n_out)).astype(np.float32)
    Y = X @ W_true
    X_d, Y_d = cuda.to_device(X), cuda.to_device(Y)
    W = cuda.to_device(np.zeros((n_in, n_out), np.float32))
    G = cuda.device_array_like(W)
    opt = nr.RMSprop(learning_rate=0.02, momentum=0.5)
    threads = (16, 16)
    blocks = ((n_in + 15) // 16, (n_out + 15) // 16)
    losses = []
    for step in range(steps):
        layer_gradient[blocks, threads](W, X_d, Y_d, G)
        opt.apply([G], [W])  # in place, on the device
        if step % max(1, steps // 20) == 0 or step == steps - 1:
            W_host = W.copy_to_host()
            losses.append((step, float(0.5 * np.mean((X @ W_host - Y) ** 2))))
    return losses


def many_fits(k, n, steps):
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((n, k))  # one column per run, as X
    centers_d = cuda.to_device(centers)

    def fun(X, centers):  # X: (n, m), one column per active run, on the device
        f = cuda.device_array(X.shape[1])
        G = cuda.device_array(X.shape)
        quadratics[(X.shape[1] + 127) // 128, 128](X, centers, f, G)
        return f, G

    X0 = np.zeros((k, n))
    options = {"learning_rate": 0.05, "maxiter": steps}
    gpu = nr.minimize_many(
        fun,
        cuda.to_device(X0),
        args=(centers_d,),
        run_args=((0, 1),),  # the runs are axis 1 of centers
        vectorized=True,
        options=options,
    )

    def fun_cpu(X, centers):
        G = X - centers
        return 0.5 * np.sum(G * G, axis=0), G

    cpu = nr.minimize_many(
        fun_cpu, X0, args=(centers,), run_args=((0, 1),), vectorized=True, options=options
    )
    return gpu, cpu


def main(quick=False):
    where = "the CUDA simulator" if SIMULATED else cuda.get_current_device().name.decode()
    print(f"running on {where}")
    t0 = time.perf_counter()
    n_in, n_out, steps = (8, 4, 30) if quick or SIMULATED else (512, 256, 300)
    losses = train_layer(32 if quick or SIMULATED else 4096, n_in, n_out, steps)
    print(
        f"layer {n_in}x{n_out}: loss {losses[0][1]:.4f} at step 0, {losses[-1][1]:.2e} "
        f"at step {losses[-1][0]}"
    )
    t1 = time.perf_counter()
    k, n, steps = (32, 3, 20) if quick or SIMULATED else (2000, 10, 500)
    gpu, cpu = many_fits(k, n, steps)
    diff = np.max(np.abs(np.asarray(gpu.x) - cpu.x))
    print(
        f"minimize_many: {k} fits of {n} parameters, {steps} steps on the device; "
        f"max |x_gpu - x_cpu| = {diff:.1e}"
    )
    print(f"({t1 - t0:.1f} s for the layer, {time.perf_counter() - t1:.1f} s for the fits)")
    plot(losses, where)


def plot(losses, where):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib).")
        return
    step, loss = np.array(losses).T
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(step, loss, ".-", label="RMSprop(momentum=0.5) on device arrays")
    ax.set(
        title=f"A linear layer trained on {where}", xlabel="step", ylabel="mean squared error / 2"
    )
    ax.legend()
    fig.tight_layout()
    path = os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), "gpu.png")
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (for tests)")
    main(ap.parse_args().quick)
