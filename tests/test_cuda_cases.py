"""CUDA backend cases: parity with the CPU backend and the NumPy reference, checkpoints,
errors. They run under the CUDA simulator, in the test process itself
(``tests/conftest.py`` sets ``NUMBA_ENABLE_CUDASIM=1`` before numba is imported);
on a machine with a GPU, ``tests/test_cuda.py`` runs them again on the GPU in a
subprocess with ``NUMBA_RMSPROP_REAL_GPU=1``. By hand::

    pytest tests/test_cuda_cases.py                               # the simulator
    NUMBA_RMSPROP_REAL_GPU=1 pytest -n 0 tests/test_cuda_cases.py # a GPU

The simulator runs the kernels as Python (NumPy scalar arithmetic, no FMA
contraction), so it checks the kernels' logic, indexing, launch geometry and
the backend's bookkeeping; ``test_cuda.py`` compiles the same kernels for a
real GPU to check their typing. Arrays are small: every simulated GPU thread
is a Python thread.
"""

import os
import sys
import time

import numpy as np
import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
if not SIMULATOR and os.environ.get("NUMBA_RMSPROP_REAL_GPU") != "1":
    pytest.skip(
        "CUDA cases: run with NUMBA_ENABLE_CUDASIM=1 (tests/conftest.py sets it), or "
        "NUMBA_RMSPROP_REAL_GPU=1 on a GPU",
        allow_module_level=True,
    )
pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")


@pytest.fixture(autouse=True, scope="module")
def _frequent_thread_switches():
    """Simulated GPU threads poll each other at every syncthreads(): switch often, for
    this module only (it would slow every other test of the process down)."""
    if not SIMULATOR:
        yield
        return
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


from numba import cuda
from reference import ExponentialDecay as RefExponentialDecay
from reference import ReferenceRMSprop

from numba_rmsprop import RMSprop, schedules
from numba_rmsprop.engine.cuda import arrays as _cuda_arrays
from numba_rmsprop.engine.cuda.driver import require_cuda

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")


# ---------------------------------------------------------------- helpers
def host(a):
    return a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)


def assert_close(actual, expected, dtype, what):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    assert actual.dtype == expected.dtype, what
    # Under the simulator: elementwise relative tolerance (NaNs must match,
    # zeros exact). On a GPU, NVVM fuses multiply-adds (e.g. rho*mg + (1-rho)*g),
    # which where the sum nearly cancels can move an element by more than
    # RTOL of itself, so the tolerance is relative to the array's magnitude.
    atol = 0.0
    if not SIMULATOR and np.isfinite(expected).any():
        atol = RTOL[dtype] * float(np.nanmax(np.abs(expected)))
    np.testing.assert_allclose(actual, expected, rtol=RTOL[dtype], atol=atol, err_msg=what)


def make_variables(dtype, rng):
    """A 0-d, a 1-D, a 2-D Fortran-ordered and a 2-D C-ordered variable."""
    return [
        np.asarray(rng.standard_normal(), dtype=dtype),
        rng.standard_normal(7).astype(dtype),
        np.asfortranarray(rng.standard_normal((3, 5))).astype(dtype, order="K"),
        rng.standard_normal((2, 3)).astype(dtype),
    ]


def reference_kwargs(kw):
    kw = dict(kw)
    lr = kw.get("learning_rate", 0.01)
    if isinstance(lr, schedules.ExponentialDecay):
        cfg = lr.get_config()
        kw["learning_rate"] = RefExponentialDecay(
            cfg["initial_learning_rate"],
            cfg["decay_steps"],
            cfg["decay_rate"],
            cfg.get("staircase", False),
        )
    else:
        kw["learning_rate"] = float(lr)
    return kw


def run_three(
    kw, dtype, *, steps=4, seed=0, none_at=(), zero_at=(), all_zero_at=(), exclude=False, nan_at=()
):
    """Run the GPU (simulated), CPU and NumPy-reference optimizers side by side.

    The reference (``tests/reference.py``, Keras's math operation by
    operation) runs in float64 on float64 copies of the same numbers.

    ``none_at``: steps where variable 3 gets no gradient; ``zero_at``: steps
    where variable 1 gets a zero gradient; ``all_zero_at``: steps where every
    gradient is zero; ``nan_at``: steps where variable 1's gradient has a NaN.
    Odd steps pass gradients in C order (a re-layout for the F-ordered
    variable), even steps in each variable's own order.
    """
    kw = {"learning_rate": 0.01, **kw}
    rng = np.random.default_rng(seed)
    init = make_variables(dtype, rng)
    hx = [a.copy(order="K") for a in init]
    rx = [a.astype(np.float64, order="K") for a in init]  # float64 NumPy math
    dx = [cuda.to_device(a) for a in init]
    assert dx[2].is_f_contiguous() and not dx[2].is_c_contiguous()
    gpu, cpu = RMSprop(device="cuda", **kw), RMSprop(**kw)
    ref = ReferenceRMSprop(**reference_kwargs(kw))
    if exclude:
        gpu.exclude_from_weight_decay([dx[1]])
        cpu.exclude_from_weight_decay([hx[1]])
        ref.exclude_from_weight_decay(var_list=[rx[1]])
    for step in range(steps):
        grads = [rng.standard_normal(a.shape).astype(dtype) for a in init]
        if step % 2 == 0:
            grads = [
                np.asfortranarray(g) if a.flags.f_contiguous and a.ndim > 1 else g
                for g, a in zip(grads, init, strict=False)
            ]
        if step in zero_at:
            grads[1] = np.zeros_like(grads[1])
        if step in all_zero_at:
            grads = [np.zeros_like(g) for g in grads]
        if step in nan_at:
            grads[1][2] = np.nan
        if step in none_at:
            grads[3] = None
        dgrads = [None if g is None else cuda.to_device(g) for g in grads]
        assert gpu.apply(dgrads, dx) == step + 1
        cpu.apply([None if g is None else g.copy() for g in grads], hx)
        ref.apply([None if g is None else g.astype(np.float64) for g in grads], rx)
    assert gpu.device == "cuda"
    return gpu, cpu, ref, dx, hx, rx


def check_three(kw, dtype, **opts):
    gpu, cpu, ref, dx, hx, rx = run_three(kw, dtype, **opts)
    for i, (d, h, r) in enumerate(zip(dx, hx, rx, strict=False)):
        got = host(d)
        assert_close(got, h, dtype, f"variables[{i}]: GPU vs CPU")
        assert_close(
            got.astype(np.float64), r, dtype, f"variables[{i}]: GPU vs float64 NumPy reference"
        )
    gs, cs = gpu.state_dict(), cpu.state_dict()
    assert gs.keys() == cs.keys()
    for key in gs:
        if "/" in key:
            assert type(gs[key]) is np.ndarray, key
            assert_close(gs[key], cs[key], dtype, f"state {key}: GPU vs CPU")
        else:
            assert gs[key] == cs[key], key
    return gpu, cpu, dx, hx


# ---------------------------------------------------------------- parity
SCHEDULE = schedules.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5)

CASES = {
    "plain": (dict(), {}),
    "momentum": (dict(momentum=0.9), {}),
    "centered": (dict(centered=True, rho=0.8), {}),
    "weight_decay_excluded": (dict(weight_decay=0.1), dict(exclude=True)),
    "clipnorm_zero_grad": (dict(clipnorm=0.5), dict(zero_at=(1,))),
    "global_clipnorm_zero": (dict(global_clipnorm=0.7), dict(all_zero_at=(2,))),
    "clipvalue": (dict(clipvalue=0.3), {}),
    "loss_scale": (dict(loss_scale_factor=128.0), {}),
    "ema_overwrite": (
        dict(use_ema=True, ema_momentum=0.9, ema_overwrite_frequency=2),
        dict(none_at=(1,)),
    ),
    "accumulation_2": (dict(gradient_accumulation_steps=2), dict(steps=5)),
    "accumulation_3": (
        dict(gradient_accumulation_steps=3, momentum=0.5),
        dict(steps=6, none_at=(4,)),
    ),
    "schedule": (dict(learning_rate=SCHEDULE), {}),
    # The combined user story: a schedule, loss scaling, accumulation,
    # centered RMSprop with momentum, decoupled weight decay with an excluded
    # variable, global clipping and an EMA that overwrites the weights.
    "user_story": (
        dict(
            learning_rate=SCHEDULE,
            loss_scale_factor=8.0,
            gradient_accumulation_steps=2,
            centered=True,
            momentum=0.9,
            weight_decay=0.05,
            global_clipnorm=1.0,
            use_ema=True,
            ema_momentum=0.8,
            ema_overwrite_frequency=3,
        ),
        dict(steps=6, exclude=True, none_at=(3,)),
    ),
    "user_story_clipnorm": (
        dict(
            loss_scale_factor=8.0,
            gradient_accumulation_steps=2,
            centered=True,
            momentum=0.9,
            weight_decay=0.05,
            clipnorm=0.4,
            use_ema=True,
            ema_overwrite_frequency=2,
        ),
        dict(steps=4, exclude=True),
    ),
    # The variants of other frameworks (RMSprop.like_torch / like_optax / like_tf1).
    "torch_variant": (
        dict(
            learning_rate=SCHEDULE,
            epsilon=1e-8,
            rho=0.99,
            momentum=0.9,
            centered=True,
            weight_decay=0.1,
            decoupled_weight_decay=False,
            epsilon_in_sqrt=False,
            learning_rate_in_momentum=False,
        ),
        dict(exclude=True),
    ),
    "optax_variant": (
        dict(
            momentum=0.9,
            nesterov=True,
            bias_correction=True,
            centered=True,
            initial_velocity=0.5,
            epsilon_in_sqrt=False,
            gradient_accumulation_steps=2,
            global_clipnorm=1.0,
        ),
        dict(steps=6),
    ),
    "tf1_variant": (dict(initial_velocity=1.0, epsilon=1e-10, momentum=0.9, centered=True), {}),
    # Every boolean variant switched away from Keras at once (new ones join automatically).
    "every_variant": (
        dict(
            {
                h.name: not h.default
                for h in RMSprop._hyperparameters
                if h.kw_only and isinstance(h.default, bool)
            },
            momentum=0.5,
            centered=True,
            weight_decay=0.05,
            initial_velocity=0.25,
            clipnorm=0.5,
        ),
        dict(exclude=True, steps=5),
    ),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", list(CASES))
def test_parity_with_cpu_and_reference(case, dtype):
    kw, opts = CASES[case]
    check_three(kw, dtype, **opts)


@pytest.mark.parametrize("clip", [dict(clipnorm=0.5), dict(global_clipnorm=0.5)])
def test_nan_gradient_propagates_like_cpu(clip):
    gpu, cpu, ref, dx, hx, rx = run_three(clip, np.float64, steps=2, nan_at=(1,))
    for d, h in zip(dx, hx, strict=False):
        np.testing.assert_array_equal(np.isnan(host(d)), np.isnan(h))
        assert_close(host(d), h, np.float64, "NaN case")
    assert np.isnan(host(dx[1])).any()


def test_ema_finalize_and_mixed_dtypes():
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(5).astype(np.float32), rng.standard_normal((2, 2))]
    hx = [a.copy() for a in init]
    dx = [cuda.to_device(a) for a in init]
    kw = dict(learning_rate=0.1, use_ema=True, ema_momentum=0.5, global_clipnorm=0.1)
    gpu, cpu = RMSprop(**kw), RMSprop(**kw)
    for _ in range(3):
        grads = [rng.standard_normal(a.shape).astype(a.dtype) for a in init]
        gpu.apply([cuda.to_device(g) for g in grads], dx)
        cpu.apply(grads, hx)
    averages = gpu.moving_averages()  # host copies; the device variables stay raw
    assert all(type(a) is np.ndarray for a in averages)
    for a, h in zip(averages, cpu.moving_averages(), strict=False):
        assert_close(a, h, h.dtype.type, "moving_averages")
    gpu.finalize_variable_values()
    cpu.finalize_variable_values()
    for a, d in zip(averages, dx, strict=False):
        np.testing.assert_array_equal(a, host(d))
    for d, h in zip(dx, hx, strict=False):
        assert_close(host(d), h, h.dtype.type, "finalize_variable_values")


def test_strided_device_variables_are_updated_in_place():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((4, 6))
    cube = np.asfortranarray(rng.standard_normal((2, 3, 4)))
    hbase, hcube = base.copy(), cube.copy(order="F")
    dbase, dcube = cuda.to_device(base), cuda.to_device(cube)
    hx = [hbase[:, ::2], hcube[:, ::2, :]]
    dx = [dbase[:, ::2], dcube[:, ::2, :]]
    assert not dx[0].is_c_contiguous() and not dx[0].is_f_contiguous()
    kw = dict(learning_rate=0.1, momentum=0.5, use_ema=True, ema_overwrite_frequency=2)
    gpu, cpu = RMSprop(**kw), RMSprop(**kw)
    for _ in range(3):
        grads = [rng.standard_normal(a.shape) for a in hx]
        gpu.apply([cuda.to_device(g) for g in grads], dx)
        cpu.apply(grads, hx)
    gpu.finalize_variable_values()  # device-to-device copy into strided views
    cpu.finalize_variable_values()
    assert_close(host(dbase), hbase, np.float64, "strided 2-D view")
    assert_close(host(dcube), hcube, np.float64, "strided 3-D view of an F-ordered array")
    np.testing.assert_array_equal(host(dbase)[:, 1::2], base[:, 1::2])  # outside the view
    np.testing.assert_array_equal(host(dcube)[:, 1::2, :], cube[:, 1::2, :])
    assert not np.array_equal(hbase, base)


def test_variables_can_be_passed_as_new_views_of_the_same_memory():
    x = cuda.to_device(np.arange(6.0))
    opt = RMSprop(0.1)
    opt.build([x])
    opt.apply([cuda.to_device(np.ones(6))], [x[:]])  # another view, same memory
    assert not np.array_equal(host(x), np.arange(6.0))


@pytest.mark.skipif(not SIMULATOR, reason="a property of the CUDA simulator")
@pytest.mark.parametrize("clip", [dict(clipnorm=0.5), dict(global_clipnorm=0.5)])
def test_norms_survive_thread_switches_while_shared_arrays_are_created(clip, monkeypatch):
    """The simulator creates a block's ``cuda.shared.array`` lazily: the first
    simulated thread to reach the line looks it up, finds nothing, allocates
    with ``np.empty`` and stores it. A thread switch inside that sequence used
    to leave two threads with different arrays, and the norm reduction
    then summed the wrong numbers (a rare flake, seen once as one variable
    mismatching after a CPU -> GPU checkpoint). Here every ``np.empty`` hands
    the GIL to the other threads, which made every such lookup race."""
    real_empty = np.empty

    def empty(*args, **kwargs):
        time.sleep(0.001)
        return real_empty(*args, **kwargs)

    monkeypatch.setattr(np, "empty", empty)
    check_three(clip, np.float64, steps=2)


# ---------------------------------------------------------------- checkpoints
def _grads(rng, init, steps):
    return [[rng.standard_normal(a.shape).astype(a.dtype) for a in init] for _ in range(steps)]


CKPT_KW = dict(
    learning_rate=0.05,
    momentum=0.9,
    centered=True,
    use_ema=True,
    gradient_accumulation_steps=2,
    clipnorm=1.0,
)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_checkpoint_cpu_to_gpu(dtype):
    rng = np.random.default_rng(5)
    init = make_variables(dtype, rng)
    first, second = _grads(rng, init, 3), _grads(rng, init, 3)
    hx = [a.copy(order="K") for a in init]
    cpu = RMSprop(**CKPT_KW)
    for g in first:
        cpu.apply(g, hx)
    state = cpu.state_dict()
    dx = [cuda.to_device(a) for a in hx]
    gpu = RMSprop(**CKPT_KW)
    gpu.load_state_dict(state)  # before build: restored by build()
    gpu.build(dx)
    assert gpu.iterations == 3
    for g in second:
        cpu.apply(g, hx)
        gpu.apply([cuda.to_device(a) for a in g], dx)
    for d, h in zip(dx, hx, strict=False):
        assert_close(host(d), h, dtype, "CPU -> GPU checkpoint")


def test_pickling_device_state_is_a_clear_error():
    """An optimizer built on device arrays does not pickle (its state is on the GPU);
    the error names the host-side way. Unbuilt, it pickles like any other."""
    import copy
    import pickle

    dx = [cuda.to_device(np.zeros(4, np.float32))]
    opt = RMSprop(**CKPT_KW)
    assert pickle.loads(pickle.dumps(opt)).get_config() == opt.get_config()
    opt.apply([cuda.to_device(np.ones(4, np.float32))], dx)
    for save in (pickle.dumps, copy.deepcopy):
        with pytest.raises(TypeError, match="CUDA device.*state_dict"):
            save(opt)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_checkpoint_gpu_to_cpu_and_back(dtype):
    rng = np.random.default_rng(6)
    init = make_variables(dtype, rng)
    first, second = _grads(rng, init, 3), _grads(rng, init, 3)
    dx = [cuda.to_device(a) for a in init]
    gpu = RMSprop(**CKPT_KW)
    for g in first:
        gpu.apply([cuda.to_device(a) for a in g], dx)
    state = gpu.state_dict()
    assert all(type(v) is np.ndarray for k, v in state.items() if "/" in k)
    assert state["iterations"] == 3
    hx = [host(d) for d in dx]
    cpu = RMSprop(**CKPT_KW)
    cpu.build(hx)
    cpu.load_state_dict(state)  # after build
    # ...and into a second, built GPU optimizer.
    dx2 = [cuda.to_device(h) for h in hx]
    gpu2 = RMSprop(**CKPT_KW)
    gpu2.build(dx2)
    gpu2.load_state_dict(state)
    for g in second:
        gpu.apply([cuda.to_device(a) for a in g], dx)
        cpu.apply(g, hx)
        gpu2.apply([cuda.to_device(a) for a in g], dx2)
    for d, d2, h in zip(dx, dx2, hx, strict=False):
        assert_close(host(d), h, dtype, "GPU -> CPU checkpoint")
        np.testing.assert_array_equal(host(d2), host(d))
    for key, value in gpu2.state_dict().items():
        np.testing.assert_array_equal(value, gpu.state_dict()[key])


# ---------------------------------------------------------------- errors
def _snapshot(opt, dx):
    return [host(d) for d in dx], opt.iterations, (opt.state_dict() if opt.built else None)


def _assert_unchanged(opt, dx, snap):
    xs, it, state = snap
    for d, x in zip(dx, xs, strict=False):
        np.testing.assert_array_equal(host(d), x)
    assert opt.iterations == it
    if state is not None:
        for k, v in opt.state_dict().items():
            np.testing.assert_array_equal(v, state[k])


@pytest.mark.parametrize("built", [False, True])
def test_host_gradient_for_device_variable_is_rejected(built):
    dx = [cuda.to_device(np.ones(3)), cuda.to_device(np.ones(2))]
    opt = RMSprop(0.1)
    if built:
        opt.build(dx)
    snap = _snapshot(opt, dx)
    with pytest.raises(TypeError, match="mixed host and device"):
        opt.apply([cuda.to_device(np.ones(3)), np.ones(2)], dx)
    _assert_unchanged(opt, dx, snap)
    assert opt.built == built


def test_host_and_device_variables_cannot_be_mixed():
    dx, hx = cuda.to_device(np.ones(3)), np.ones(2)
    opt = RMSprop(0.1)
    with pytest.raises(ValueError, match="mixes host"):
        opt.apply([cuda.to_device(np.ones(3)), np.ones(2)], [dx, hx])
    assert not opt.built
    opt.build([dx])
    with pytest.raises(TypeError, match="cannot be mixed"):
        opt.apply([np.ones(3)], [np.ones(3)])
    with pytest.raises(ValueError, match="device='cuda'"):
        RMSprop(0.1, device="cuda").build([np.ones(3)])
    with pytest.raises(ValueError, match="device='cpu'"):
        RMSprop(0.1, device="cpu").build([cuda.to_device(np.ones(3))])


def test_gradient_shape_and_dtype_must_match():
    dx = [cuda.to_device(np.ones((2, 3)))]
    opt = RMSprop(0.1)
    opt.build(dx)
    snap = _snapshot(opt, dx)
    with pytest.raises(ValueError, match=r"grads\[0\] has shape \(3, 2\)"):
        opt.apply([cuda.to_device(np.ones((3, 2)))], dx)
    with pytest.raises(TypeError, match=r"grads\[0\] has dtype float32"):
        opt.apply([cuda.to_device(np.ones((2, 3), np.float32))], dx)
    with pytest.raises(TypeError, match="mixed host and device"):
        opt.apply([[1.0, 2.0, 3.0]], dx)
    _assert_unchanged(opt, dx, snap)


def test_gradient_on_another_gpu_is_rejected(monkeypatch):
    x, g = cuda.to_device(np.ones(3)), cuda.to_device(np.ones(3))
    monkeypatch.setattr(_cuda_arrays, "device_id", lambda a: 1 if a is g else 0)
    opt = RMSprop(0.1)
    with pytest.raises(ValueError, match="is on GPU 1 but variables.0. is on GPU 0"):
        opt.apply([g], [x])
    assert not opt.built


@pytest.mark.parametrize("dtype", [np.int64, np.float16], ids=lambda d: np.dtype(d).name)
def test_device_variables_must_be_float32_or_float64(dtype):
    name = np.dtype(dtype).name
    want = rf"variables\[0\] must have dtype float32 or float64; got {name}\."
    with pytest.raises(TypeError, match=want):
        RMSprop(0.1).build([cuda.to_device(np.ones(3, dtype))])
    x = cuda.to_device(np.ones(3, dtype))
    opt = RMSprop(0.1)
    with pytest.raises(TypeError, match=want):
        opt.apply([cuda.to_device(np.ones(3, dtype))], [x])
    assert not opt.built and opt.iterations == 0
    np.testing.assert_array_equal(host(x), 1)


def test_simulator_counts_as_usable():
    require_cuda()
    assert RMSprop(device="cuda").device == "cuda"


# ---------------------------------------------------------------- minimize_many on the GPU
@cuda.jit
def _quad_kernel(X, C, w, f, G):
    """f[j] = 0.5 sum w (x - c)^2, G[:, j] = w (x - c) for run j (column j of X and of C):
    one thread per run, the CPU's order."""
    j = cuda.grid(1)
    if j < X.shape[1]:
        s = 0.0
        for i in range(X.shape[0]):
            d = X[i, j] - C[i, j]
            G[i, j] = w[i] * d
            s += w[i] * d * d
        f[j] = 0.5 * s


def _quad_device(X, C, w):
    m = X.shape[1]
    f = cuda.device_array(m, np.float64)
    G = cuda.device_array(X.shape, X.dtype)
    _quad_kernel[max(1, (m + 3) // 4), 4](X, C, w, f, G)
    return f, G


def _quad_host(X, C, w):
    """The device objective's arithmetic on the host, scalar by scalar."""
    f, G = np.zeros(X.shape[1]), np.zeros_like(X)
    for j in range(X.shape[1]):
        s = 0.0
        for i in range(X.shape[0]):
            d = X[i, j] - C[i, j]
            G[i, j] = w[i] * d
            s += w[i] * d * d
        f[j] = 0.5 * s
    return f, G


def _quad_one(x, c, w):
    """One run of :func:`_quad_host`: the same arithmetic, for ``nr.minimize``."""
    f, G = _quad_host(x[:, None], c[:, None], w)
    return f[0], G[:, 0]


MANY_CASES = {
    "per_run": dict(
        learning_rate=[0.05, 0.1, 0.2, 0.3], momentum=[0.0, 0.9, 0.5, 0.0], maxiter=[3, 8, 12, 20]
    ),
    "tolerances": dict(
        gtol=[1e-1, 1e-2, 1e-3, 1e-4],
        tol_momentum=0.0,
        learning_rate=0.1,
        maxiter=30,
        centered=True,
        use_ema=True,
        ema_overwrite_frequency=3,
    ),
    "variants": dict(
        nr_like="torch", momentum=0.9, weight_decay=0.05, maxiter=10, gradient_accumulation_steps=2
    ),
    "bounds_and_optax": dict(
        nr_like="optax", momentum=0.9, nesterov=True, bias_correction=True, maxiter=10, bounds=True
    ),
    "clipnorm": dict(clipnorm=[0.1, 0.5, 1.0, 2.0], learning_rate=0.1, maxiter=8),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", list(MANY_CASES))
def test_minimize_many_on_the_device_matches_the_host(case, dtype):
    """The device loop against the host's vectorized loop on the same problem: equal to
    the last bit except where a clip norm is summed (a tree on the device)."""
    import numba_rmsprop as nr

    options = dict(MANY_CASES[case])
    like = options.pop("nr_like", None)
    bounds = [(-1.5, 1.5)] * 3 if options.pop("bounds", False) else None
    maxiter = options.pop("maxiter")
    if like == "torch":
        options = dict(nr.RMSprop.like_torch(lr=0.05, **options).get_config())
    elif like == "optax":
        options = dict(nr.RMSprop.like_optax(0.05, **options).get_config())
    options.pop("name", None)
    options["maxiter"] = maxiter
    rng = np.random.default_rng(3)
    X0 = rng.standard_normal((4, 3)).astype(dtype)
    Cm = (rng.standard_normal((4, 3)) * 2).astype(dtype)
    w = np.array([1.0, 2.0, 0.5], dtype)
    dev = nr.minimize_many(
        _quad_device,
        cuda.to_device(X0),
        args=(cuda.to_device(np.ascontiguousarray(Cm.T)), cuda.to_device(w)),
        run_args=((0, 1),),  # the targets: one column per run, as X
        vectorized=True,
        bounds=bounds,
        options=options,
    )
    # The host's reference: each run's nr.minimize (the defining rule of minimize_many,
    # which the host's vectorized loop also meets bit for bit, tests/test_many.py).
    for i in range(X0.shape[0]):
        mine = {k: (v[i] if isinstance(v, list) else v) for k, v in options.items()}
        one = nr.minimize(_quad_one, X0[i], args=(Cm[i], w), jac=True, bounds=bounds, options=mine)
        for name in ("nit", "nfev", "status", "message"):
            assert np.asarray(dev[name])[i] == one[name], (i, name)
        if case == "clipnorm":
            np.testing.assert_allclose(dev.x[i], one.x, rtol=RTOL[dtype])
        else:
            np.testing.assert_array_equal(dev.x[i], one.x, err_msg=f"run {i}")
            assert dev.fun[i] == one.fun, i


def test_minimize_many_on_the_device_needs_vectorized():
    import numba_rmsprop as nr

    with pytest.raises(ValueError, match="vectorized=True"):
        nr.minimize_many(_quad_device, cuda.to_device(np.zeros((2, 3))))
    with pytest.raises(ValueError, match="batch_size"):
        nr.minimize_many(
            _quad_device,
            cuda.to_device(np.zeros((2, 3))),
            vectorized=True,
            options=dict(batch_size=2),
        )
