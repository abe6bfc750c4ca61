"""GPU benchmark of the fused RMSprop update (``RMSprop`` on CUDA device arrays).

For 10M and 100M float32 and float64 elements it measures, with CUDA events:

* ``kernel``: the fused update kernel alone (the launch ``apply`` makes,
  replayed);
* ``apply``: whole ``opt.apply([g], [x])`` calls back to back (includes the
  Python-side validation and, with a norm clip, the reduction kernels);
* ``copy``: a trivial device-to-device kernel that reads and writes the same
  arrays the update reads and writes (the achievable bandwidth);

and reports achieved GB/s (bytes the update must move / time) and the ratio
kernel/copy (target >= 0.85). It also times a model with many small
variables, where per-variable launch overhead dominates.

Run on a machine with an NVIDIA GPU::

    python benchmarks/bench_cuda.py                 # 10M and 100M elements
    python benchmarks/bench_cuda.py --sizes 1e6 --repeat 50

Without a GPU (or under the CUDA simulator) it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


cuda = None  # numba.cuda, once gpu_or_reason() found a GPU (kernels below use this global)


def gpu_or_reason():
    """``(numba.cuda, None)`` when a real GPU can be used, else ``(None, reason)``."""
    global cuda
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None, "the CUDA simulator is enabled (NUMBA_ENABLE_CUDASIM=1); nothing to measure"
    try:
        from numba import cuda as numba_cuda
    except ImportError as exc:
        return None, f"numba-cuda is not installed ({exc}); `pip install numba-rmsprop[cuda]`"
    if not numba_cuda.is_available():
        reason = numba_cuda.cuda_error() or "the driver reports no CUDA device"
        return None, "no CUDA GPU is available: " + " ".join(str(reason).split())
    cuda = numba_cuda
    return cuda, None


# Each configuration: optimizer options, the arrays the update reads and
# writes (in units of one variable-sized array), and a matching copy kernel.
CONFIGS = {
    "plain": (dict(), 3, 2),                                     # x g v -> x v
    "momentum+centered": (dict(momentum=0.9, centered=True), 5, 4),  # x g v mg mom -> x v mg mom
    "clipnorm": (dict(clipnorm=1.0), 4, 2),                      # + the norm pass over g
}


def make_copy_kernels():
    @cuda.jit
    def copy_3r2w(a, b, c):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            t = b[i]
            a[i] = a[i] + t
            c[i] = c[i] + t

    @cuda.jit
    def copy_4r2w(a, b, c, d):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            t = b[i] + d[i]
            a[i] = a[i] + t
            c[i] = c[i] + t

    @cuda.jit
    def copy_5r4w(a, b, c, d, e):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            t = b[i]
            a[i] = a[i] + t
            c[i] = c[i] + t
            d[i] = d[i] + t
            e[i] = e[i] + t

    return {(3, 2): copy_3r2w, (4, 2): copy_4r2w, (5, 4): copy_5r4w}


def _time_gpu(fn, repeat):
    """Mean time (ms) of ``repeat`` back-to-back calls, between two CUDA events."""
    fn()  # warm-up (compilation, caches)
    cuda.synchronize()
    start, stop = cuda.event(), cuda.event()
    start.record()
    for _ in range(repeat):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / repeat


def bench_one(copies, n, dtype, name, repeat):
    from numba_rmsprop import RMSprop, _cuda

    kw, reads, writes = CONFIGS[name]
    itemsize = np.dtype(dtype).itemsize
    rng = np.random.default_rng(0)
    x = cuda.to_device(rng.standard_normal(n).astype(dtype))
    g = cuda.to_device((rng.standard_normal(n) * 1e-3).astype(dtype))
    opt = RMSprop(learning_rate=1e-6, **kw)

    # Capture the update kernel's launch during one call, to replay it alone.
    captured = {}
    real_launch = _cuda._launch

    def spy(kernel, blocks, threads, *args):
        if kernel in _cuda._UPDATE_KERNELS.values():
            captured["launch"] = (kernel, blocks, threads, args)
        real_launch(kernel, blocks, threads, *args)

    _cuda._launch = spy
    try:
        opt.apply([g], [x])
    finally:
        _cuda._launch = real_launch
    kernel, blocks, threads, args = captured["launch"]

    t_kernel = _time_gpu(lambda: real_launch(kernel, blocks, threads, *args), repeat)
    t_apply = _time_gpu(lambda: opt.apply([g], [x]), repeat)

    # The copy baseline moves the bytes the update kernel moves (the norm pass
    # of the clipnorm configuration is counted in "apply" only).
    kr, kw_ = (3, 2) if name == "clipnorm" else (reads, writes)
    arrays = [cuda.device_array(n, dtype) for _ in range(kr)]
    for a in arrays:
        _cuda._fill(a, np.dtype(dtype).type(0))
    copy = copies[(kr, kw_)]
    blocks_c = -(-n // 256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        launcher = copy[blocks_c, 256]
    t_copy = _time_gpu(lambda: launcher(*arrays), repeat)

    kernel_bytes = (kr + kw_) * itemsize * n
    apply_bytes = (reads + writes) * itemsize * n
    gbs = lambda b, ms: b / (ms * 1e-3) / 1e9  # noqa: E731
    ratio = t_copy / t_kernel
    print(f"{name:18s} {np.dtype(dtype).name:7s} {n:>11,d}  "
          f"kernel {t_kernel * 1e3:9.1f} us {gbs(kernel_bytes, t_kernel):7.0f} GB/s | "
          f"apply {t_apply * 1e3:9.1f} us {gbs(apply_bytes, t_apply):7.0f} GB/s | "
          f"copy {t_copy * 1e3:9.1f} us {gbs(kernel_bytes, t_copy):7.0f} GB/s | "
          f"kernel/copy {ratio:5.2f} {'ok' if ratio >= 0.85 else 'BELOW 0.85'}")
    del x, g, opt, arrays, args
    return ratio


def bench_many_small(n_vars, size, repeat):
    from numba_rmsprop import RMSprop

    rng = np.random.default_rng(1)
    xs = [cuda.to_device(rng.standard_normal(size).astype(np.float32)) for _ in range(n_vars)]
    gs = [cuda.to_device(rng.standard_normal(size).astype(np.float32)) for _ in range(n_vars)]
    for kw, label in [(dict(), "plain"), (dict(global_clipnorm=1.0), "global_clipnorm")]:
        opt = RMSprop(1e-6, **kw)
        t = _time_gpu(lambda: opt.apply(gs, xs), repeat)
        print(f"many small variables ({label}): {n_vars} x {size} float32: "
              f"{t * 1e3:8.1f} us per step, {t * 1e3 / n_vars:6.2f} us per variable")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e7,1e8",
                        help="comma-separated element counts (default 1e7,1e8)")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)

    gpu, reason = gpu_or_reason()
    if gpu is None:
        print(f"bench_cuda: skipped: {reason}")
        return 0
    dev = cuda.get_current_device()
    print(f"GPU: {dev.name.decode() if isinstance(dev.name, bytes) else dev.name}, "
          f"compute capability {dev.compute_capability}")
    copies = make_copy_kernels()
    worst = np.inf
    for n in [int(float(s)) for s in args.sizes.split(",")]:
        for dtype in args.dtypes.split(","):
            for name in args.configs.split(","):
                worst = min(worst, bench_one(copies, n, np.dtype(dtype).type, name,
                                             args.repeat))
    bench_many_small(200, 4096, args.repeat)
    print(f"worst kernel/copy bandwidth ratio: {worst:.2f} (target >= 0.85)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
