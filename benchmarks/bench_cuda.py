"""asv suite and measurement: the fused update on a CUDA GPU (skipped without one).

For each size, dtype and configuration, timed with CUDA events (``common.cuda_event_ms``):

* ``apply``: whole ``opt.apply([g], [x])`` calls back to back on device arrays
  (host-side validation and, with ``clipnorm``, the norm kernels included);
* ``kernel``: the fused update kernel alone, its launch captured during one
  ``apply`` and replayed (needs the package's private launch hook; reported
  as missing when the backend no longer has it);
* ``copy``: a trivial kernel reading and writing the arrays the update kernel
  reads and writes -- the achievable bandwidth;

as GB/s (bytes the update must move / time) and kernel/copy (target >= 0.85).
:func:`many_small` times 200 variables of 4096 elements, where launches dominate.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from . import common as C

#: name -> (options, arrays read, arrays written by the update kernel; clipnorm's norm pass aside)
CONFIGS = {
    "plain": (dict(), 3, 2),
    "momentum+centered": (dict(momentum=0.9, centered=True), 5, 4),
    "clipnorm": (dict(clipnorm=1.0), 3, 2),
}


def gpu_or_reason():
    """``(numba.cuda, None)`` when a real GPU can be used, else ``(None, reason)``."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None, "the CUDA simulator is enabled (NUMBA_ENABLE_CUDASIM=1)"
    try:
        from numba import cuda
    except ImportError as exc:
        return None, f"numba-cuda is not installed ({exc}); `pip install numba-rmsprop[cuda]`"
    if not cuda.is_available():
        return None, "no CUDA GPU: " + " ".join(str(cuda.cuda_error() or "no device").split())
    return cuda, None


_COPY = {}


def _copy_kernel(cuda, reads, writes):
    """A grid-stride kernel reading ``reads`` and writing the first ``writes`` of its arrays."""
    if not _COPY:

        @cuda.jit
        def r3w2(a, b, c):
            for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
                t = b[i]
                a[i] += t
                c[i] += t

        @cuda.jit
        def r5w4(a, b, c, d, e):
            for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
                t = b[i]
                a[i] += t
                c[i] += t
                d[i] += t
                e[i] += t

        _COPY.update({(3, 2): r3w2, (5, 4): r5w4})
    return _COPY[(reads, writes)]


def _capture_update_launch(opt, g, x):
    """The update kernel's launch during one ``apply``, or None without the private hook."""
    try:
        from numba_rmsprop.engine.cuda import backend as _cuda
        from numba_rmsprop.engine.cuda import kernels as _cuda_kernels

        real, kernels = _cuda._launch, _cuda_kernels._UPDATE_KERNELS
    except (ImportError, AttributeError):
        opt.apply([g], [x])
        return None
    captured = {}

    def spy(kernel, blocks, threads, *args):
        if kernel in kernels.values():
            captured["launch"] = (real, kernel, blocks, threads, args)
        real(kernel, blocks, threads, *args)

    _cuda._launch = spy
    try:
        opt.apply([g], [x])
    finally:
        _cuda._launch = real
    return captured.get("launch")


def bandwidth(cuda, n, dtype, config, repeat=20) -> dict:
    import numba_rmsprop as nr

    kw, reads, writes = CONFIGS[config]
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    x = cuda.to_device(rng.standard_normal(n).astype(dtype))
    g = cuda.to_device((rng.standard_normal(n) * 1e-3).astype(dtype))
    opt = nr.RMSprop(learning_rate=1e-6, **kw)
    launch = _capture_update_launch(opt, g, x)
    out = {"apply": C.cuda_event_ms(cuda, lambda: opt.apply([g], [x]), repeat)}
    if launch:
        real, kernel, blocks, threads, args = launch
        out["kernel"] = C.cuda_event_ms(cuda, lambda: real(kernel, blocks, threads, *args), repeat)
    arrays = [cuda.to_device(np.zeros(n, dtype)) for _ in range(reads)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        copy = _copy_kernel(cuda, reads, writes)[-(-n // 256), 256]
    out["copy"] = C.cuda_event_ms(cuda, lambda: copy(*arrays), repeat)
    nbytes = (reads + writes) * dtype.itemsize * n
    for k in list(out):  # apply with clipnorm also reads g in the norm pass
        extra = dtype.itemsize * n if k == "apply" and "clipnorm" in kw else 0
        out[k + "_GBps"] = (nbytes + extra) / (out[k] * 1e-3) / 1e9
    if "kernel" in out:
        out["kernel_over_copy"] = out["copy"] / out["kernel"]
    return out


def many_small(cuda, n_vars=200, size=4096, repeat=20) -> dict:
    import numba_rmsprop as nr

    rng = np.random.default_rng(1)
    xs = [cuda.to_device(rng.standard_normal(size).astype(np.float32)) for _ in range(n_vars)]
    gs = [cuda.to_device(rng.standard_normal(size).astype(np.float32)) for _ in range(n_vars)]
    out = {}
    for label, kw in (("plain", {}), ("global_clipnorm", dict(global_clipnorm=1.0))):
        opt = nr.RMSprop(1e-6, **kw)
        out[label] = C.cuda_event_ms(cuda, lambda opt=opt: opt.apply(gs, xs), repeat)
    return out


def measure(
    sizes=(10_000_000, 100_000_000),
    dtypes=("float32", "float64"),
    configs=tuple(CONFIGS),
    repeat=20,
) -> dict:
    """Everything above, or ``{"skipped": reason}`` without a GPU."""
    cuda, reason = gpu_or_reason()
    if cuda is None:
        return {"skipped": reason}
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
    out = {"gpu": f"{name}, compute capability {dev.compute_capability}", "rows": []}
    for n in sizes:
        for dtype in dtypes:
            for config in configs:
                out["rows"].append(
                    dict(
                        n=int(n),
                        dtype=dtype,
                        config=config,
                        **bandwidth(cuda, int(n), dtype, config, repeat),
                    )
                )
    out["many_small_200x4096_ms"] = many_small(cuda, repeat=repeat)
    return out


class CudaBandwidth(C.Benchmark):
    """GB/s of ``apply`` on device arrays, and of the copy kernel moving the same bytes."""

    params = [[10_000_000], ["float32", "float64"], list(CONFIGS)]
    param_names = ["size", "dtype", "config"]

    def setup(self, size, dtype, config):
        cuda, reason = gpu_or_reason()
        if cuda is None:
            raise NotImplementedError(reason)
        self.res = bandwidth(cuda, size, dtype, config)

    def track_apply_gbps(self, size, dtype, config):
        return self.res["apply_GBps"]

    def track_copy_gbps(self, size, dtype, config):
        return self.res["copy_GBps"]

    track_apply_gbps.unit = track_copy_gbps.unit = "GB/s"
