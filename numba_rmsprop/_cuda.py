"""The CUDA backend: runs a :class:`~numba_rmsprop._plan.StepPlan` over device arrays.

Arrays
------
Variables and gradients may be numba device arrays or any object with
``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA tensors, ...). Those
are wrapped zero-copy with ``cuda.as_cuda_array``; the user's object stays the
variable and is updated in place. Optimizer state lives in numba device
arrays in the variable's memory order. Strided (non-contiguous) variables and
gradients whose layout differs from their variable's go through a contiguous
work copy made on the device (up to 4 dimensions).

Kernels
-------
One fused grid-stride pass per variable and call, folded exactly as the CPU
kernels fold it: loss scale, accumulation mean (and reset), clip, decoupled
weight decay, the rho-averages, momentum and the EMA (with overwrite). The
arithmetic is the element rule of :mod:`numba_rmsprop._rule`, compiled with
``cuda.jit(device=True, inline="always")``, so both backends perform the same
operations in the same order and dtype. Optional pieces are selected at
compile time: each configuration (the rule's switch tuple, whether a norm
clip applies, which state arrays exist) gets its own kernel from a factory
whose closure constants Numba folds; the kernel hands the rule ``None`` for
what is off, so disabled branches are pruned before typing, exactly as on
the CPU. A kernel launch cannot pass ``None`` (numba-cuda marshals no
``none`` arguments), so absent state arrives as a 2-element dummy array
that the kernel replaces by ``None``. The per-call scalars
(:mod:`numba_rmsprop._layout`) are one tuple argument. No fastmath.

Norms (``clipnorm``, ``global_clipnorm``) are reduced on the device in float64:
each block reduces in shared memory and writes a partial sum; the last block
of a variable to finish (a ticket counter, reset by that block) sums the
partials in a fixed order, so the result is deterministic. A small kernel
(one thread per variable) then turns the sums into the clip factors with the
formulas the CPU uses (``_math.clipnorm_denominator``,
``_math.global_clip_scale``: NaN and zero norms included; the global sum
adds the variables in call order) and stores them cast to float32 and
float64 in small device arrays, which the update kernels read. Nothing is
copied back to the host: a call only launches kernels. The learning rate
and the EMA momentum are the only per-call host scalars.

Launches
--------
A call costs one kernel launch per variable (two with a norm clip, plus one
for the clip factors). Launch configurations are computed once per size and
cached, so a launch is a single dispatch through Numba's fast path; for
models with hundreds of tiny tensors the launch overhead (some microseconds
each) dominates the arithmetic. ``benchmarks/bench_cuda.py`` measures it.

Floating point
--------------
NVVM contracts ``a * b + c`` into fused multiply-adds and Numba-CUDA has no
switch to turn that off, so on a real GPU results may differ from the CPU
backend in the last bit of some operations (e.g. ``rho * v + (1 - rho) * g**2``).
Divisions and square roots are IEEE-rounded (no fastmath).
"""

from __future__ import annotations

import sys
import threading
import warnings

import numpy as np

from . import _arrays, _config, _layout, _math, _rule

#: How to get numba-cuda (the package is installed from a checkout, not from an index;
#: the version bounds are those of the ``cuda`` extra in pyproject.toml).
INSTALL_HINT = ('`pip install "numba-cuda>=0.30.4,<0.31"` (from a checkout of numba-rmsprop: '
                '`pip install -e ".[cuda]"`)')

try:
    from numba import cuda
except Exception as exc:  # numba-cuda (or its CUDA bindings) is not installed
    cuda = None
    _IMPORT_ERROR: Exception | None = exc
else:
    _IMPORT_ERROR = None


def _simulator_enabled() -> bool:
    try:
        from numba.cuda.core import config as cfg
    except ImportError:  # pragma: no cover - older layouts
        from numba.core import config as cfg
    return bool(getattr(cfg, "ENABLE_CUDASIM", 0))


_SIM = cuda is not None and _simulator_enabled()


def _lock_simulator_shared_arrays() -> None:
    """Make the CUDA simulator hand every thread of a block the same shared array.

    The simulator runs each simulated GPU thread as a Python thread and
    creates a static ``cuda.shared.array`` lazily, per launch, keyed by the
    calling line: ``res = allocations.get(line)``; if None,
    ``res = np.empty(...)``; ``allocations[line] = res``. That
    check-then-store is not locked (numba-cuda 0.30.4). A GIL hand-off between
    the lookup and the store (Python switches threads after C calls such as
    ``dict.get`` and ``np.empty``) lets a second thread of the launch's first
    block also find nothing and allocate its own array; one of the two is
    then private to its thread. In ``sumsq`` that thread's partial sum never
    reaches the block's tree reduction, or it reads ``last`` from an
    uninitialised private array, so a variable's norm, and its clip factor,
    comes out wrong while the other variables are right. Here the same lookup
    (same key: the caller's file and line) runs under a lock.
    """
    from numba.cuda.simulator import kernelapi

    cls = kernelapi.FakeCUDAShared
    if getattr(cls, "_numba_rmsprop_locked", False):
        return
    if not isinstance(getattr(cls(0), "_allocations", None), dict):  # pragma: no cover
        return  # another simulator layout: leave it alone
    original = cls.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory / unsupported
            return original(self, shape, dtype, alignment)
        allocations = self._allocations
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        if isinstance(dtype, kernelapi.types.Type):
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        with lock:
            res = allocations.get(key)
            if res is None:
                res = allocations[key] = np.empty(shape, dtype)
        return res

    cls.array = array
    cls._numba_rmsprop_locked = True


if _SIM:
    _lock_simulator_shared_arrays()


def require_cuda() -> None:
    """Raise a clear error unless CUDA can be used (the simulator counts)."""
    if cuda is None:
        raise ImportError(
            "device='cuda' needs numba-cuda, which could not be imported "
            f"({type(_IMPORT_ERROR).__name__}: {_IMPORT_ERROR}). Install it with "
            f"{INSTALL_HINT}.")
    if _SIM:
        return
    try:
        available = cuda.is_available()
    except Exception:  # pragma: no cover - is_available already catches
        available = False
    if available:
        return
    try:
        reason = cuda.cuda_error()
    except Exception:  # pragma: no cover
        reason = None
    if reason:
        what = ("the CUDA driver could not be initialised: "
                + " ".join(str(reason).split()).rstrip(":. "))
    else:
        what = "no CUDA-capable GPU is visible (the driver loaded but reports no device)"
    raise RuntimeError(
        f"device='cuda' cannot be used: {what}. An NVIDIA GPU with its driver is needed "
        f"(check `nvidia-smi`); numba-cuda itself is installed with {INSTALL_HINT}.")


# ====================================================================== kernels
#: Threads per block: a power of two in [_MIN_THREADS, _TPB]. Under the
#: simulator (every thread is a Python thread) blocks are tiny and grids are
#: capped low, which also exercises the multi-block and grid-stride paths on
#: the small arrays tests use.
_SHARED = 1024  # shared-memory reduction buffer; >= any block size used
_TPB = 1 << (max(1, min(int(_config.CUDA_THREADS_PER_BLOCK), _SHARED)).bit_length() - 1)
if _SIM:
    _TPB, _MIN_THREADS, _MAX_BLOCKS, _MAX_REDUCE_BLOCKS = 4, 2, 3, 2
else:
    _MIN_THREADS, _MAX_BLOCKS, _MAX_REDUCE_BLOCKS = 32, 1 << 20, 1024
    _MIN_THREADS = min(_MIN_THREADS, _TPB)

if cuda is not None:
    _R = _rule.compile_with(cuda.jit(device=True, inline="always"))
    _clip_factors = _R.clip_factors
    _ema_element = _R.ema_element

    @cuda.jit(device=True)
    def _block_tree_sum(sh, t, nt):
        """In-place tree reduction of ``sh[:nt]`` (``nt`` a power of two) into ``sh[0]``."""
        step = nt // 2
        while step > 0:
            if t < step:
                sh[t] += sh[t + step]
            cuda.syncthreads()
            step //= 2

    @cuda.jit
    def _factor_kernel(sums, n, mode, c, fac32, fac64):
        """Clip factors ``(num, den)`` per variable from its float64 sum of squares.

        ``mode`` ``CLIP_NORM``: per-variable clipnorm; ``CLIP_GLOBAL``: the
        global scale over ``sums[0:n]`` summed in order
        (:func:`numba_rmsprop._math.clip_factors`). Stores cast to each dtype.
        """
        k = cuda.grid(1)
        if k < n:
            if mode == _math.CLIP_NORM:
                total = sums[k]
            else:
                total = 0.0
                for j in range(n):
                    total += sums[j]
            num, den = _clip_factors(mode, total, c)
            fac32[2 * k] = num
            fac32[2 * k + 1] = den
            fac64[2 * k] = num
            fac64[2 * k + 1] = den

    @cuda.jit
    def _fill_kernel(a, value):
        for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
            a[i] = value

    @cuda.jit
    def _copy_kernel(dst, src):
        for i in range(cuda.grid(1), dst.size, cuda.gridsize(1)):
            dst[i] = src[i]

    # Strided <-> flat copies; ``forder`` picks the flat order, ``to_flat`` the direction.
    @cuda.jit
    def _strided1(nd, flat, forder, to_flat):
        for i in range(cuda.grid(1), flat.size, cuda.gridsize(1)):
            if to_flat:
                flat[i] = nd[i]
            else:
                nd[i] = flat[i]

    @cuda.jit
    def _strided2(nd, flat, forder, to_flat):
        n0 = nd.shape[0]
        n1 = nd.shape[1]
        for i in range(cuda.grid(1), flat.size, cuda.gridsize(1)):
            if forder:
                i0 = i % n0
                i1 = i // n0
            else:
                i1 = i % n1
                i0 = i // n1
            if to_flat:
                flat[i] = nd[i0, i1]
            else:
                nd[i0, i1] = flat[i]

    @cuda.jit
    def _strided3(nd, flat, forder, to_flat):
        n0 = nd.shape[0]
        n1 = nd.shape[1]
        n2 = nd.shape[2]
        for i in range(cuda.grid(1), flat.size, cuda.gridsize(1)):
            if forder:
                i0 = i % n0
                r = i // n0
                i1 = r % n1
                i2 = r // n1
            else:
                i2 = i % n2
                r = i // n2
                i1 = r % n1
                i0 = r // n1
            if to_flat:
                flat[i] = nd[i0, i1, i2]
            else:
                nd[i0, i1, i2] = flat[i]

    @cuda.jit
    def _strided4(nd, flat, forder, to_flat):
        n0 = nd.shape[0]
        n1 = nd.shape[1]
        n2 = nd.shape[2]
        n3 = nd.shape[3]
        for i in range(cuda.grid(1), flat.size, cuda.gridsize(1)):
            if forder:
                i0 = i % n0
                r = i // n0
                i1 = r % n1
                r = r // n1
                i2 = r % n2
                i3 = r // n2
            else:
                i3 = i % n3
                r = i // n3
                i2 = r % n2
                r = r // n2
                i1 = r % n1
                i0 = r // n1
            if to_flat:
                flat[i] = nd[i0, i1, i2, i3]
            else:
                nd[i0, i1, i2, i3] = flat[i]

    _STRIDED = {1: _strided1, 2: _strided2, 3: _strided3, 4: _strided4}

    @cuda.jit
    def _ema_kernel(x, avg, s, overwrite):
        """EMA of a variable that got no gradient this call."""
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            _ema_element(i, x, avg, s, overwrite)

MAX_STRIDED_NDIM = 4


# ------------------------------------------------------------ kernel factories
# Each configuration is a tuple of bools; the factories close over them as
# constants, so Numba prunes the disabled branches before typing (types then
# match the CPU kernels, which prune ``None`` arguments the same way).
_FACTORY_LOCK = threading.Lock()
_UPDATE_KERNELS: dict = {}
_ACCUMULATE_KERNELS: dict = {}
_SUMSQ_KERNELS: dict = {}


def _cached_kernel(cache: dict, factory, cfg):
    """``factory(*cfg)``, built once per ``cfg`` even when threads race."""
    k = cache.get(cfg)
    if k is None:
        with _FACTORY_LOCK:
            k = cache.get(cfg)
            if k is None:
                k = cache[cfg] = factory(*cfg)
    return k


def _update_kernel(cfg):
    """Fused update kernel for ``cfg = (switches, norm clip, centered, momentum,
    accumulation, EMA)``."""
    return _cached_kernel(_UPDATE_KERNELS, _make_update_kernel, cfg)


def _make_update_kernel(SWITCHES, HAS_CLIP, HAS_MG, HAS_MOM, HAS_ACC, HAS_AVG):
    update_element = _R.update_element

    @cuda.jit
    def update(x, g, v, mg, mom, acc, avg, s, fac, k, decay_on, overwrite):
        mg_ = mg if HAS_MG else None
        mom_ = mom if HAS_MOM else None
        acc_ = acc if HAS_ACC else None
        avg_ = avg if HAS_AVG else None
        num = fac[2 * k] if HAS_CLIP else None
        den = fac[2 * k + 1] if HAS_CLIP else None
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            update_element(i, x, g, v, mg_, mom_, acc_, avg_, s, SWITCHES, num, den, decay_on,
                           overwrite)

    return update


def _accumulate_kernel(cfg):
    """Accumulation-only kernel for ``cfg = (switches, EMA)``."""
    return _cached_kernel(_ACCUMULATE_KERNELS, _make_accumulate_kernel, cfg)


def _make_accumulate_kernel(SWITCHES, HAS_AVG):
    accumulate_element = _R.accumulate_element

    @cuda.jit
    def accumulate(x, g, acc, avg, s, overwrite):
        avg_ = avg if HAS_AVG else None
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            accumulate_element(i, x, g, acc, avg_, s, SWITCHES, overwrite)

    return accumulate


def _sumsq_kernel(cfg):
    """Sum-of-squares kernel for ``cfg = (switches, accumulation)``."""
    return _cached_kernel(_SUMSQ_KERNELS, _make_sumsq_kernel, cfg)


def _make_sumsq_kernel(SWITCHES, HAS_ACC):
    tree = _block_tree_sum
    gradient_square = _R.gradient_square
    float64 = np.float64
    int32 = np.int32

    @cuda.jit
    def sumsq(g, acc, p, partials, base, tickets, sums, k):
        """Float64 sum of squares of the effective gradient (no clip) into ``sums[k]``."""
        sh = cuda.shared.array(1024, dtype=float64)  # 1024 == _SHARED
        last = cuda.shared.array(1, dtype=int32)
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        acc_ = acc if HAS_ACC else None
        s = 0.0
        for i in range(cuda.grid(1), g.size, cuda.gridsize(1)):
            s += gradient_square(i, g, acc_, p, SWITCHES)
        sh[t] = s
        cuda.syncthreads()
        tree(sh, t, nt)
        if t == 0:
            partials[base + cuda.blockIdx.x] = sh[0]
            cuda.threadfence()
            ticket = cuda.atomic.add(tickets, k, 1)
            last[0] = 1 if ticket == cuda.gridDim.x - 1 else 0
        cuda.syncthreads()
        if last[0] == 1:
            # The last block of this variable: sum the partials in a fixed order.
            nb = cuda.gridDim.x
            s2 = 0.0
            for j in range(t, nb, nt):
                s2 += partials[base + j]
            sh[t] = s2
            cuda.syncthreads()
            tree(sh, t, nt)
            if t == 0:
                sums[k] = sh[0]
                tickets[k] = 0

    return sumsq


# ====================================================================== arrays
def _numba_array_types() -> tuple:
    types = []
    if _SIM:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        types.append(FakeCUDAArray)
    else:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray

        types.append(DeviceNDArray)
    return tuple(types)


_NUMBA_TYPES: tuple = _numba_array_types() if cuda is not None else ()


def as_device(a):
    """A numba device array viewing ``a`` (zero-copy; ``a`` itself when it already is one)."""
    if isinstance(a, _NUMBA_TYPES):
        return a
    if not _SIM and hasattr(a, "__cuda_array_interface__"):
        return cuda.as_cuda_array(a)
    raise TypeError(f"expected a CUDA device array; got {type(a).__name__}.")


def _order_of(d) -> str | None:
    if d.is_c_contiguous():
        return "C"
    if d.is_f_contiguous():
        return "F"
    return None


def _contiguous_in(d, order: str) -> bool:
    if d.ndim <= 1 or d.size <= 1:
        return d.is_c_contiguous() or d.size <= 1
    return d.is_c_contiguous() if order == "C" else d.is_f_contiguous()


def _flat_view(d, order: str):
    """1-D view of a device array contiguous in ``order``."""
    if d.ndim == 1:
        return d
    return d.reshape(d.size, order=order)


def _pointer(a) -> int:
    if _SIM:
        return int(a.__array_interface__["data"][0])
    return int(a.__cuda_array_interface__["data"][0])


def _describe(a):
    """``(pointer, shape, strides, dtype)`` of a device array, for identity checks."""
    d = as_device(a)
    return (_pointer(d), tuple(d.shape), tuple(d.strides), np.dtype(d.dtype))


def _device_id(a):
    """Ordinal of the GPU holding ``a``'s memory, or None when it cannot be told."""
    if _SIM:
        return 0
    try:
        ptr = int(a.__cuda_array_interface__["data"][0])
        if ptr:
            from numba.cuda.cudadrv import driver as drv

            attr = drv.binding.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL
            return int(drv.driver.cuPointerGetAttribute(attr, drv.binding.CUdeviceptr(ptr)))
    except Exception:
        pass
    dev = getattr(a, "device", None)  # torch.device(.index), cupy.cuda.Device(.id)
    for name in ("index", "id"):
        v = getattr(dev, name, None)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return int(v)
    return None


def _dims(size: int, cap: int):
    threads = _MIN_THREADS
    while threads < size and threads < _TPB:
        threads *= 2
    return min(-(-size // threads), cap), threads


_CONFIGURED: dict = {}


def _launch(kernel, blocks: int, threads: int, *args) -> None:
    """``kernel[blocks, threads](*args)``, reusing the configured launcher.

    Numba warns about grids under 128 blocks; small variables make such grids
    on purpose, so the warning is silenced where the launcher is configured.
    """
    if _SIM:  # the simulator's kernel[...] mutates the kernel: never cache
        kernel[blocks, threads](*args)
        return
    key = (kernel, blocks, threads)
    launcher = _CONFIGURED.get(key)
    if launcher is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            launcher = kernel[blocks, threads]
        _CONFIGURED[key] = launcher
    launcher(*args)


def _fill(flat, value) -> None:
    if flat.size:
        b, t = _dims(flat.size, _MAX_BLOCKS)
        _launch(_fill_kernel, b, t, flat, value)


def _strided_copy(nd, flat, order: str, to_flat: bool) -> None:
    """Copy between an N-d (strided) device array and a flat one in ``order``."""
    if flat.size == 0:
        return
    if nd.ndim == 0:
        nd = nd.reshape(1)
    b, t = _dims(flat.size, _MAX_BLOCKS)
    _launch(_STRIDED[nd.ndim], b, t, nd, flat, 1 if order == "F" else 0, 1 if to_flat else 0)


# ====================================================================== layouts
class _NormLayout:
    """Device scratch for the norms of one set of variables (cached per set)."""

    def __init__(self, slots):
        n = len(slots)
        self.dims = [_dims(s.size, _MAX_REDUCE_BLOCKS) for s in slots]
        self.base = []
        total = 0
        for s, (b, _) in zip(slots, self.dims):
            self.base.append(total)
            total += b if s.size else 0
        self.partials = cuda.device_array(max(total, 1), np.float64)
        self.tickets = cuda.device_array(max(n, 1), np.int32)
        _fill(self.tickets, np.int32(0))
        self.sums = cuda.device_array(max(n, 1), np.float64)
        _fill(self.sums, np.float64(0))  # empty variables contribute 0
        self.fac = {np.dtype(np.float32): cuda.device_array(2 * max(n, 1), np.float32),
                    np.dtype(np.float64): cuda.device_array(2 * max(n, 1), np.float64)}
        self.n = n


# ====================================================================== backend
class CUDABackend:
    """Executes plans on CUDA device arrays (see the module docstring).

    It implements :class:`numba_rmsprop._backend.Backend`.
    """

    name = "cuda"

    def __init__(self):
        require_cuda()
        self._P = {}  # dtype -> per-call scalars (host), passed to kernels as a tuple
        self._dummies = {}
        self._records = {}
        self._layouts = {}
        self._views = {}
        self._work = {}
        self._gwork = {}
        self._devices = {}

    # -- checks -----------------------------------------------------------
    @staticmethod
    def check_variable(x, i: int) -> None:
        if isinstance(x, np.ndarray):
            raise TypeError(
                f"variables[{i}] is a host numpy array but this optimizer holds CUDA device "
                "state; host and device arrays cannot be mixed.")
        if not _arrays.is_cuda_array(x):
            raise TypeError(
                f"variables[{i}] must be a CUDA device array (numba, CuPy, PyTorch, ...); got "
                f"{type(x).__name__}. Variables are updated in place.")
        try:
            d = as_device(x)
        except TypeError:
            raise TypeError(f"variables[{i}] ({type(x).__name__}) cannot be used as a CUDA "
                            "device array here.") from None
        _arrays.check_float_dtype(d.dtype, f"variables[{i}]")
        if _order_of(d) is None and d.ndim > MAX_STRIDED_NDIM:
            raise ValueError(
                f"variables[{i}] is a non-contiguous device array with {d.ndim} dimensions; "
                f"only contiguous ones or views of up to {MAX_STRIDED_NDIM} dimensions are "
                "supported.")
        CUDABackend.check_writeable(x, i)

    @staticmethod
    def check_writeable(x, i: int) -> None:
        if _SIM:
            ro = not as_device(x).flags.writeable
        else:
            cai = getattr(x, "__cuda_array_interface__", None)
            ro = bool(cai["data"][1]) if cai is not None else False
        if ro:
            raise ValueError(f"variables[{i}] is read-only; the optimizer updates variables "
                             "in place.")

    def as_gradient(self, g, x, i: int):
        """``g`` as a numba device array matching variable ``x``; errors name ``grads[i]``."""
        if isinstance(g, _NUMBA_TYPES):
            gd = g
        elif isinstance(g, np.ndarray) or not _arrays.is_cuda_array(g):
            kind = "a host numpy array" if isinstance(g, np.ndarray) else f"a {type(g).__name__}"
            raise TypeError(
                f"grads[{i}] is {kind} but variables[{i}] is a CUDA device array; mixed host "
                "and device arrays are not supported: pass device gradients.")
        else:
            gd = as_device(g)
        xd = self._view_of(x)
        if np.dtype(gd.dtype) != np.dtype(xd.dtype):
            raise TypeError(
                f"grads[{i}] has dtype {np.dtype(gd.dtype)} but variables[{i}] has dtype "
                f"{np.dtype(xd.dtype)}; they must match.")
        if tuple(gd.shape) != tuple(xd.shape):
            raise ValueError(
                f"grads[{i}] has shape {tuple(gd.shape)} but variables[{i}] has shape "
                f"{tuple(xd.shape)}.")
        order = _order_of(xd) or "C"
        if not _contiguous_in(gd, order) and gd.ndim > MAX_STRIDED_NDIM:
            raise ValueError(
                f"grads[{i}] is not contiguous in variables[{i}]'s memory order and has "
                f"{gd.ndim} dimensions; only up to {MAX_STRIDED_NDIM} can be re-laid out.")
        gdev = _device_id(g)
        xdev = self._devices[id(x)] if id(x) in self._devices else _device_id(x)
        if gdev is not None and xdev is not None and gdev != xdev:
            raise ValueError(
                f"grads[{i}] is on GPU {gdev} but variables[{i}] is on GPU {xdev}; a gradient "
                "must live on its variable's device.")
        return gd

    # -- allocation and views ----------------------------------------------
    @staticmethod
    def memory_order(x):
        return _order_of(as_device(x))

    @staticmethod
    def flat(a, order: str):
        d = as_device(a)
        if not _contiguous_in(d, order):  # pragma: no cover - guarded by memory_order
            raise AssertionError("flat() would copy")
        return _flat_view(d, order)

    @staticmethod
    def full_like(x, order, value):
        d = as_device(x)
        a = cuda.device_array(tuple(d.shape), dtype=np.dtype(d.dtype), order=order or "C")
        _fill(_flat_view(a, order or "C"), np.dtype(d.dtype).type(value))
        return a

    @staticmethod
    def use_parallel(nbytes: int) -> bool:
        return False

    @staticmethod
    def to_host(a) -> np.ndarray:
        return as_device(a).copy_to_host()

    def copy_into(self, dst, src) -> None:
        """``dst[...] = src`` for a device ``dst``; ``src`` is a host or device array."""
        dd = as_device(dst)
        if dd.size == 0:
            return
        order = _order_of(dd)
        if isinstance(src, np.ndarray) or not _arrays.is_cuda_array(src):
            host = np.asarray(src, dtype=dd.dtype)
            if host.shape != tuple(dd.shape):
                host = np.broadcast_to(host, tuple(dd.shape))
            flat_host = np.ascontiguousarray(host.ravel(order=order or "C"))
            if order is not None:
                _flat_view(dd, order).copy_to_device(flat_host)
            else:
                tmp = cuda.to_device(flat_host)
                _strided_copy(dd, tmp, "C", to_flat=False)
            return
        sd = as_device(src)
        flat_order = order or "C"
        if _contiguous_in(sd, flat_order):
            sflat = _flat_view(sd, flat_order)
        else:
            sflat = cuda.device_array(sd.size, dtype=sd.dtype)
            _strided_copy(sd, sflat, flat_order, to_flat=True)
        if order is not None:
            b, t = _dims(dd.size, _MAX_BLOCKS)
            _launch(_copy_kernel, b, t, _flat_view(dd, order), sflat)
        else:
            _strided_copy(dd, sflat, "C", to_flat=False)

    @staticmethod
    def find_same_memory(x, slots):
        """The slot whose variable is ``x``'s memory, viewed the same way (or None)."""
        if isinstance(x, np.ndarray):
            raise TypeError("a host numpy array was passed to an optimizer that holds CUDA "
                            "device state; host and device arrays cannot be mixed.")
        if not _arrays.is_cuda_array(x):
            return None
        try:
            key = _describe(x)
        except TypeError:
            return None
        for s in slots:
            if _describe(s.var) == key:
                return s
        return None

    def prepare(self, slots, spec) -> None:
        """Record each variable's device (used to check gradients)."""
        for s in slots:
            self._devices[id(s.var)] = _device_id(s.var)
            if s.dtype not in self._P:
                self._P[s.dtype] = spec.constants(s.dtype).copy()

    @staticmethod
    def full_gradients(grads, slots):
        """Device gradients always take the checked path."""
        return None

    def execute_full(self, plan, spec, grads) -> None:  # pragma: no cover - never offered
        raise AssertionError("CUDABackend.full_gradients accepts no fast path")

    # -- per-call helpers ----------------------------------------------------
    def _scalars(self, plan) -> dict:
        """This call's per-call scalars per dtype, as the tuples kernels take."""
        out = {}
        for dtype, P in self._P.items():
            _layout.pack_call(P, plan.learning_rate,
                              None if plan.ema_momentum is None else plan.ema_momentum == 0.0,
                              plan.update_count)
            out[dtype] = tuple(P)
        return out

    def _dummy(self, dtype):
        d = self._dummies.get(dtype)
        if d is None:
            d = self._dummies[dtype] = cuda.device_array(2, dtype=dtype)
            _fill(d, dtype.type(0))
        return d

    def _view_of(self, x):
        """The numba view of variable ``x``, made once (wrapping a foreign array syncs
        its stream)."""
        hit = self._views.get(id(x))
        if hit is not None and hit[0] is x:
            return hit[1]
        d = as_device(x)
        if len(self._views) < 4096:
            self._views[id(x)] = (x, d)
        return d

    def _var_view(self, slot):
        return self._view_of(slot.var)

    def _work_view(self, slot):
        """Flat view of the variable, or a contiguous (C-order) work copy for strided ones."""
        if slot.xf is not None:
            return slot.xf
        w = self._work.get(slot.index)
        if w is None:
            w = self._work[slot.index] = cuda.device_array(slot.size, dtype=slot.dtype)
        _strided_copy(self._var_view(slot), w, "C", to_flat=True)
        return w

    def _write_back(self, slot, xf) -> None:
        if slot.xf is None:
            _strided_copy(self._var_view(slot), xf, "C", to_flat=False)

    def _flat_gradient(self, slot, gd):
        """The gradient flat in the variable's memory order (a view when layouts agree)."""
        order = slot.order or "C"
        if _contiguous_in(gd, order):
            try:
                return _flat_view(gd, order)
            except NotImplementedError:  # pragma: no cover - numba refused the view
                pass
        w = self._gwork.get(slot.index)
        if w is None:
            w = self._gwork[slot.index] = cuda.device_array(slot.size, dtype=slot.dtype)
        _strided_copy(gd, w, order, to_flat=True)
        return w

    def _layout(self, work):
        key = tuple(slot.index for slot, _, _ in work)
        lay = self._layouts.get(key)
        if lay is None:
            if len(self._layouts) >= 16:
                self._layouts.pop(next(iter(self._layouts)))
            lay = self._layouts[key] = _NormLayout([slot for slot, _, _ in work])
        return lay

    # -- one call --------------------------------------------------------------
    def _record(self, slot, spec) -> "_SlotRecord":
        rec = self._records.get(slot.index)
        if rec is None:
            rec = self._records[slot.index] = _SlotRecord(self, slot, spec)
        return rec

    def execute(self, plan, spec, pairs, ema_slots) -> None:
        """Apply ``plan`` to ``pairs`` of (slot, gradient); EMA-only for ``ema_slots``."""
        work = [(slot, self._flat_gradient(slot, g), self._work_view(slot)) for slot, g in pairs]
        scalars = self._scalars(plan)
        ow = 1 if plan.ema_overwrite else 0
        if plan.update:
            lay = self._clip_factors(spec, work, scalars)
            for k, (slot, gf, xf) in enumerate(work):
                if slot.size:
                    r = self._record(slot, spec)
                    fac, kf = (r.dummy, 0) if lay is None else (lay.fac[slot.dtype], k)
                    _launch(r.update, r.blocks, r.threads, xf, gf, r.v, r.mg, r.mom, r.acc,
                            r.avg, scalars[slot.dtype], fac, kf, r.decay, ow)
                self._write_back(slot, xf)
        else:
            for slot, gf, xf in work:
                if slot.size:
                    r = self._record(slot, spec)
                    _launch(r.accumulate, r.blocks, r.threads, xf, gf, r.acc, r.avg,
                            scalars[slot.dtype], ow)
                self._write_back(slot, xf)
        for slot in ema_slots:
            if slot.size:
                r = self._record(slot, spec)
                xf = self._work_view(slot)
                _launch(_ema_kernel, r.blocks, r.threads, xf, r.avg, scalars[slot.dtype], ow)
                self._write_back(slot, xf)

    def _clip_factors(self, spec, work, scalars):
        """Launch the norm reductions and the factor kernel; the layout holding the factors."""
        if not spec.clips_by_norm:
            return None
        lay = self._layout(work)
        for k, (slot, gf, _) in enumerate(work):
            if slot.size:
                r = self._record(slot, spec)
                b, t = lay.dims[k]
                _launch(r.sumsq, b, t, gf, r.acc, scalars[slot.dtype], lay.partials,
                        lay.base[k], lay.tickets, lay.sums, k)
        b, t = _dims(lay.n, _MAX_BLOCKS)
        mode = _math.CLIP_NORM if spec.clip_mode == "norm" else _math.CLIP_GLOBAL
        _launch(_factor_kernel, b, t, lay.sums, lay.n, mode, np.float64(spec.clip),
                lay.fac[np.dtype(np.float32)], lay.fac[np.dtype(np.float64)])
        return lay


class _SlotRecord:
    """What launching a variable's kernels needs, worked out once (the per-call
    work is then the per-call scalars and the launch itself)."""

    __slots__ = ("blocks", "threads", "update", "accumulate", "sumsq", "v", "mg",
                 "mom", "acc", "avg", "decay", "dummy")

    def __init__(self, backend, slot, spec):
        self.blocks, self.threads = _dims(slot.size, _MAX_BLOCKS)
        sw = spec.switches
        self.update = _update_kernel((sw, spec.clips_by_norm, slot.mgf is not None,
                                      slot.momf is not None, slot.accf is not None,
                                      slot.avgf is not None))
        self.accumulate = _accumulate_kernel((sw, slot.avgf is not None))
        self.sumsq = _sumsq_kernel((sw, slot.accf is not None))
        d = self.dummy = backend._dummy(slot.dtype)
        self.v = slot.vf
        self.mg = d if slot.mgf is None else slot.mgf
        self.mom = d if slot.momf is None else slot.momf
        self.acc = d if slot.accf is None else slot.accf
        self.avg = d if slot.avgf is None else slot.avgf
        self.decay = 1 if slot.decay else 0
