"""Peer RMSprop steppers, all configured to the same (Keras 3) math.

Target math (Keras 3 ``keras.optimizers.RMSprop``; epsilon INSIDE the sqrt,
momentum buffer accumulates lr-scaled increments)::

    v = rho*v + (1-rho)*g*g
    denom = v + eps                      # centered: v - mg*mg + eps,
                                         #   with mg = rho*mg + (1-rho)*g
    inc = lr*g/sqrt(denom)
    momentum > 0:  m = momentum*m + inc;  x -= m
    else:          x -= inc

Every factory takes ``(x_list, cfg)`` where ``x_list`` is a list of NumPy
arrays (the initial parameters; NumPy-backed peers update them in place) and
``cfg`` is a :class:`Config` (or a dict with the same keys).  It returns a
stepper object with

* ``.step(grads_list)`` -- perform ONE update (for asynchronous/jitted peers
  this blocks until the result is ready, so wall-clock timing of ``step`` is
  honest), and
* ``.params()``       -- the current parameters as NumPy arrays.

All peer imports (torch, jax, optax, keras, numba, numba_rmsprop) happen
inside the factories, so this module imports with only NumPy installed.

Notes on how each peer is configured (see the docstrings for details):

* ``torch``: ``torch.optim.RMSprop`` puts eps OUTSIDE the sqrt
  (``sqrt(v) + eps``).  ``torch_stepper(..., eps_mode="zero")`` (default) passes
  ``eps=0`` -- torch's own fastest path, but NOT the Keras math: for elements
  with ``v`` comparable to or smaller than eps the increment differs by O(lr).
  ``eps_mode="shift"`` is exact: it stores ``s = v + eps`` in torch's
  ``square_avg`` state and passes ``eps=0``; one extra foreach add per step
  (+ (1-rho)*eps/rho) keeps the invariant, costing one extra read+write of v.
  ``eps_mode="torch"`` passes eps through (torch's native semantics).
  Torch's momentum buffer is ``buf = momentum*buf + g/denom; x -= lr*buf``,
  i.e. ``lr*buf`` equals Keras's ``m`` only while lr is constant (true here).
* ``optax``: ``optax.rmsprop(lr, decay=rho, eps=eps, eps_in_sqrt=True,
  centered=..., momentum=momentum or None, nesterov=False)``; with
  ``bias_correction=False`` (default) and ``initial_scale=0`` (default) it is
  ``nu = (1-rho)*g**2 + rho*nu; u = g*rsqrt(nu [- mu**2] + eps); u *= -lr;
  trace = u + momentum*trace; x += trace`` -- the trace is applied AFTER
  ``scale_by_learning_rate`` so it accumulates lr-scaled increments, exactly
  like Keras.  ``momentum=0`` is passed as ``None`` (no trace state at all).
* ``keras``: Keras 3 RMSprop on the JAX backend through
  ``optimizer.stateless_apply`` under ``jax.jit`` with donated buffers.  Keras
  keeps its learning-rate variable in ``keras.config.floatx()`` (float32 by
  default) and casts it to the variable dtype, so in float64 runs Keras uses
  ``float64(float32(lr))`` -- that is genuine Keras behaviour.

Gradients are handed to each peer in its native form without a per-step
conversion being timed: torch wraps the NumPy arrays with ``torch.from_numpy``
(zero-copy), the JAX peers convert with ``jnp.asarray`` but cache the device
arrays by object identity (a training loop that reuses the same gradient
buffers pays the host->device transfer once; a new list pays it each step).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "Config",
    "CONFIGS",
    "as_config",
    "numpy_stepper",
    "numpy_reference_stepper",
    "torch_stepper",
    "optax_stepper",
    "keras_stepper",
    "ours_stepper",
    "bandwidth_stepper",
    "PEERS",
    "n_cores",
    "bench_threads",
]


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Config:
    learning_rate: float = 1e-3
    rho: float = 0.9
    momentum: float = 0.0
    centered: bool = False
    epsilon: float = 1e-7  # Keras default

    @property
    def name(self) -> str:
        parts = []
        if self.momentum > 0:
            parts.append("momentum")
        if self.centered:
            parts.append("centered")
        return "+".join(parts) or "plain"

    @property
    def n_state(self) -> int:
        """Number of per-element state arrays (v, [mg], [m])."""
        return 1 + int(self.centered) + int(self.momentum > 0)


CONFIGS = {
    "plain": Config(),
    "momentum": Config(momentum=0.9),
    "centered": Config(centered=True),
    "centered+momentum": Config(momentum=0.9, centered=True),
}


def as_config(cfg: Any) -> Config:
    if isinstance(cfg, Config):
        return cfg
    if isinstance(cfg, str):
        return CONFIGS[cfg]
    if isinstance(cfg, dict):
        return Config(**cfg)
    raise TypeError(f"cannot interpret {cfg!r} as a Config")


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def bench_threads() -> int:
    """Threads the peers may use: $BENCH_NUM_THREADS or all cores."""
    return int(os.environ.get("BENCH_NUM_THREADS") or n_cores())


def _check_list(x_list: Sequence[np.ndarray]) -> list:
    x_list = list(x_list)
    for x in x_list:
        if not isinstance(x, np.ndarray):
            raise TypeError("x_list must contain NumPy arrays")
        if not x.flags.c_contiguous or not x.flags.writeable:
            raise ValueError("parameters must be writeable C-contiguous arrays")
    return x_list


# --------------------------------------------------------------------------
# NumPy (the "same update written with NumPy array operations" baseline)
# --------------------------------------------------------------------------
class _NumpyStepper:
    """Keras math with NumPy array ops, in place, one scratch buffer/tensor.

    Operation order mirrors Keras's ``update_step`` so rounding is as close as
    NumPy allows: ``v = rho*v + (1-rho)*(g*g)``, ``inc = (lr*g)/sqrt(denom)``.
    Python-float hyper-parameters are cast to the array dtype (NEP 50), as
    Keras's ``ops.multiply(rho, v)`` does.
    """

    def __init__(self, x_list, cfg: Config):
        self.cfg = cfg
        self.x = _check_list(x_list)
        self.v = [np.zeros_like(x) for x in self.x]
        self.mg = [np.zeros_like(x) for x in self.x] if cfg.centered else None
        self.m = [np.zeros_like(x) for x in self.x] if cfg.momentum > 0 else None
        self.t1 = [np.empty_like(x) for x in self.x]
        self.t2 = [np.empty_like(x) for x in self.x]

    def step(self, grads):
        c = self.cfg
        rho, one_m_rho = c.rho, 1.0 - c.rho
        for i, (x, g) in enumerate(zip(self.x, grads)):
            v, t1, t2 = self.v[i], self.t1[i], self.t2[i]
            dt = x.dtype.type
            # v = rho*v + (1-rho)*g^2
            np.multiply(g, g, out=t1)
            t1 *= dt(one_m_rho)
            v *= dt(rho)
            v += t1
            if c.centered:
                mg = self.mg[i]
                np.multiply(g, dt(one_m_rho), out=t1)
                mg *= dt(rho)
                mg += t1
                np.multiply(mg, mg, out=t1)
                np.subtract(v, t1, out=t1)
                t1 += dt(c.epsilon)
            else:
                np.add(v, dt(c.epsilon), out=t1)
            np.sqrt(t1, out=t1)
            np.multiply(g, dt(c.learning_rate), out=t2)
            t2 /= t1  # inc
            if c.momentum > 0:
                m = self.m[i]
                m *= dt(c.momentum)
                m += t2
                x -= m
            else:
                x -= t2

    def params(self):
        return self.x


def numpy_stepper(x_list, cfg):
    """Plain NumPy array-op implementation, updating ``x_list`` in place."""
    return _NumpyStepper(x_list, as_config(cfg))


def numpy_reference_stepper(x_list, cfg):
    """Same NumPy math carried out in float64 (accuracy reference).

    Works on float64 copies of ``x_list``; ``params()`` returns float64.
    """
    return _NumpyStepper([np.array(x, dtype=np.float64) for x in x_list],
                         as_config(cfg))


# --------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------
class _TorchStepper:
    def __init__(self, x_list, cfg: Config, eps_mode: str, foreach: bool,
                 num_threads: int | None):
        import torch

        self.torch = torch
        torch.set_num_threads(num_threads or bench_threads())
        self.cfg = cfg
        self.x = _check_list(x_list)
        # zero-copy views: torch updates the NumPy arrays in place
        self.p = [torch.from_numpy(x) for x in self.x]
        if eps_mode not in ("zero", "shift", "torch"):
            raise ValueError("eps_mode must be 'zero', 'shift' or 'torch'")
        if eps_mode == "shift" and not cfg.rho > 0:
            raise ValueError("eps_mode='shift' needs rho > 0")
        self.eps_mode = eps_mode
        eps = cfg.epsilon if eps_mode == "torch" else 0.0
        self.opt = torch.optim.RMSprop(
            self.p, lr=cfg.learning_rate, alpha=cfg.rho, eps=eps,
            momentum=cfg.momentum, centered=cfg.centered, foreach=foreach,
        )
        self._sq = None
        if eps_mode == "shift":
            # Pre-create the state so that square_avg holds s = v + eps.
            # Each step, before torch's update, add c = (1-rho)*eps/rho:
            #   rho*(s + c) + (1-rho)*g^2 = rho*v + (1-rho)*g^2 + eps
            # so torch's sqrt(s_new - [mg^2]) + 0 == sqrt(v_new - [mg^2] + eps)
            # and the invariant s = v + eps is preserved.
            self._shift = (1.0 - cfg.rho) * cfg.epsilon / cfg.rho
            self._sq = []
            for p in self.p:
                st = self.opt.state[p]
                # same as torch's own init (_get_scalar_dtype: default dtype)
                st["step"] = torch.zeros((), dtype=torch.get_default_dtype())
                st["square_avg"] = torch.full_like(p, cfg.epsilon)
                if cfg.momentum > 0:
                    st["momentum_buffer"] = torch.zeros_like(p)
                if cfg.centered:
                    st["grad_avg"] = torch.zeros_like(p)
                self._sq.append(st["square_avg"])
        self._gsrc = [None] * len(self.p)

    def _set_grads(self, grads):
        torch = self.torch
        for i, g in enumerate(grads):
            if self._gsrc[i] is not g:  # zero-copy wrap, cached by identity
                self.p[i].grad = torch.from_numpy(g)
                self._gsrc[i] = g

    def step(self, grads):
        self._set_grads(grads)
        if self._sq is not None:
            self.torch._foreach_add_(self._sq, self._shift)
        self.opt.step()

    def params(self):
        return self.x


def torch_stepper(x_list, cfg, eps_mode: str = "zero", foreach: bool = True,
                  num_threads: int | None = None):
    """``torch.optim.RMSprop(..., foreach=True)`` on tensors sharing memory
    with ``x_list`` (updated in place).

    eps_mode:
      "zero"  -- eps=0 (default; torch's plain fast path; differs from Keras
                 by sqrt(v) vs sqrt(v+eps): O(lr) for |g| <~ sqrt(eps/(1-rho))).
      "shift" -- exact Keras math: state holds v+eps, plus one extra
                 ``torch._foreach_add_`` over v per step.
      "torch" -- pass eps through (torch's sqrt(v)+eps semantics).
    Momentum: torch's buffer is g/denom (lr applied at the update), equal to
    Keras's lr-scaled buffer for a constant learning rate only.
    """
    return _TorchStepper(x_list, as_config(cfg), eps_mode, foreach, num_threads)


# --------------------------------------------------------------------------
# JAX helpers
# --------------------------------------------------------------------------
def _jax_setup(dtype):
    import jax

    try:
        jax.config.update("jax_platforms", "cpu")
    except Exception:  # already initialised
        pass
    if np.dtype(dtype) == np.float64 and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    return jax


class _JaxGradCache:
    """Convert NumPy grads to device arrays, cached by object identity."""

    def __init__(self, n):
        self.src = [None] * n
        self.dev = [None] * n

    def __call__(self, grads):
        import jax.numpy as jnp

        for i, g in enumerate(grads):
            if self.src[i] is not g:
                self.dev[i] = jnp.asarray(g)
                self.src[i] = g
        return self.dev


# --------------------------------------------------------------------------
# optax
# --------------------------------------------------------------------------
class _OptaxStepper:
    def __init__(self, x_list, cfg: Config):
        x_list = _check_list(x_list)
        jax = _jax_setup(x_list[0].dtype if x_list else np.float32)
        import jax.numpy as jnp
        import optax

        self.jax = jax
        self.cfg = cfg
        self.tx = optax.rmsprop(
            learning_rate=cfg.learning_rate, decay=cfg.rho, eps=cfg.epsilon,
            initial_scale=0.0, eps_in_sqrt=True, centered=cfg.centered,
            momentum=cfg.momentum if cfg.momentum > 0 else None,
            nesterov=False, bias_correction=False,
        )
        self.x = [jnp.array(x) for x in x_list]  # copies
        for a, x in zip(self.x, x_list):
            assert a.dtype == x.dtype, (a.dtype, x.dtype)
        self.state = self.tx.init(self.x)
        tx = self.tx

        def update(params, state, grads):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        self._update = jax.jit(update, donate_argnums=(0, 1))
        self._grads = _JaxGradCache(len(self.x))

    def step(self, grads):
        g = self._grads(grads)
        self.x, self.state = self._update(self.x, self.state, g)
        self.jax.block_until_ready((self.x, self.state))

    def params(self):
        return [np.asarray(a) for a in self.x]


def optax_stepper(x_list, cfg):
    """``optax.rmsprop(..., eps_in_sqrt=True)`` under ``jax.jit`` on CPU
    (params/state donated; ``step`` blocks until ready)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*donat.*")
        return _OptaxStepper(x_list, as_config(cfg))


# --------------------------------------------------------------------------
# keras (JAX backend)
# --------------------------------------------------------------------------
class _KerasStepper:
    def __init__(self, x_list, cfg: Config, floatx):
        x_list = _check_list(x_list)
        backend = os.environ.setdefault("KERAS_BACKEND", "jax")
        if backend != "jax":
            raise RuntimeError(f"KERAS_BACKEND={backend!r}; need 'jax'")
        jax = _jax_setup(x_list[0].dtype if x_list else np.float32)
        import keras

        if keras.backend.backend() != "jax":
            raise RuntimeError("keras was already imported with backend "
                               f"{keras.backend.backend()!r}")
        self.jax = jax
        old_floatx = keras.config.floatx()
        if floatx is not None:
            keras.config.set_floatx(floatx)
        try:
            self.vars = [keras.Variable(x, dtype=str(x.dtype)) for x in x_list]
            self.opt = keras.optimizers.RMSprop(
                learning_rate=cfg.learning_rate, rho=cfg.rho,
                momentum=cfg.momentum, epsilon=cfg.epsilon,
                centered=cfg.centered,
            )
            self.opt.build(self.vars)
        finally:
            keras.config.set_floatx(old_floatx)
        opt = self.opt
        self.tv = [v.value for v in self.vars]
        self.ov = [v.value for v in opt.variables]

        def update(opt_vals, train_vals, grads):
            new_tv, new_ov = opt.stateless_apply(opt_vals, grads, train_vals)
            return new_ov, new_tv

        self._update = jax.jit(update, donate_argnums=(0, 1))
        self._grads = _JaxGradCache(len(self.tv))

    def step(self, grads):
        g = self._grads(grads)
        self.ov, self.tv = self._update(self.ov, self.tv, g)
        self.jax.block_until_ready((self.ov, self.tv))

    def params(self):
        return [np.asarray(a) for a in self.tv]


def keras_stepper(x_list, cfg, floatx: str | None = None):
    """Keras 3 ``RMSprop`` on the JAX backend via ``stateless_apply`` under
    ``jax.jit`` (donated buffers; ``step`` blocks until ready).

    ``floatx``: temporarily set ``keras.config.floatx()`` while building, which
    sets the dtype of Keras's learning-rate variable (default: leave Keras's
    float32 default, i.e. genuine Keras behaviour)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*donat.*")
        return _KerasStepper(x_list, as_config(cfg), floatx)


# --------------------------------------------------------------------------
# ours
# --------------------------------------------------------------------------
class _OursStepper:
    def __init__(self, x_list, cfg: Config):
        import numba_rmsprop

        self.x = _check_list(x_list)
        self.opt = numba_rmsprop.RMSprop(
            learning_rate=cfg.learning_rate, rho=cfg.rho,
            momentum=cfg.momentum, centered=cfg.centered,
            epsilon=cfg.epsilon,
        )

    def step(self, grads):
        self.opt.apply(grads, self.x)  # updates the NumPy arrays in place

    def params(self):
        return self.x


def ours_stepper(x_list, cfg):
    """``numba_rmsprop.RMSprop(...).apply(grads, vars)`` (in place)."""
    return _OursStepper(x_list, as_config(cfg))


# --------------------------------------------------------------------------
# same-traffic bandwidth baselines (numba)
# --------------------------------------------------------------------------
# Each kernel reads x, g and the n_state state arrays and writes x and the
# state arrays -- exactly the bytes the fused RMSprop update must move
# (plain: read x,g,v write x,v; momentum adds m; centered adds mg) -- with
# trivial arithmetic.  The values stay bounded (contractions) so long timing
# loops never produce inf/nan.
_BW_KERNELS: dict = {}


def _bw_kernels(parallel: bool):
    """Trivial kernels moving the same bytes as the update (1-3 state arrays).

    The parallel ones split the array into one chunk per thread and run a
    plain loop over each slice: a prange over elements does not vectorise
    (the chunk start is a run-time index, so LLVM keeps numba's wraparound
    check), which would make the "bound" compute-limited and too slow.
    """
    key = bool(parallel)
    if key in _BW_KERNELS:
        return _BW_KERNELS[key]
    import numba

    ser = numba.njit(fastmath=False, nogil=True, cache=False, error_model="numpy")

    @ser
    def s1(x, g, a):
        for i in range(x.size):
            xi = x[i] * 0.5 + g[i]
            x[i] = xi
            a[i] = a[i] * 0.5 + xi

    @ser
    def s2(x, g, a, b):
        for i in range(x.size):
            xi = x[i] * 0.5 + g[i]
            x[i] = xi
            a[i] = a[i] * 0.5 + xi
            b[i] = b[i] * 0.5 + xi

    @ser
    def s3(x, g, a, b, c):
        for i in range(x.size):
            xi = x[i] * 0.5 + g[i]
            x[i] = xi
            a[i] = a[i] * 0.5 + xi
            b[i] = b[i] * 0.5 + xi
            c[i] = c[i] * 0.5 + xi

    if not parallel:
        _BW_KERNELS[key] = (s1, s2, s3)
        return _BW_KERNELS[key]

    par = numba.njit(parallel=True, fastmath=False, nogil=True, cache=False)

    @par
    def p1(x, g, a, nchunks):
        for k in numba.prange(nchunks):
            lo, hi = (k * x.size) // nchunks, ((k + 1) * x.size) // nchunks
            s1(x[lo:hi], g[lo:hi], a[lo:hi])

    @par
    def p2(x, g, a, b, nchunks):
        for k in numba.prange(nchunks):
            lo, hi = (k * x.size) // nchunks, ((k + 1) * x.size) // nchunks
            s2(x[lo:hi], g[lo:hi], a[lo:hi], b[lo:hi])

    @par
    def p3(x, g, a, b, c, nchunks):
        for k in numba.prange(nchunks):
            lo, hi = (k * x.size) // nchunks, ((k + 1) * x.size) // nchunks
            s3(x[lo:hi], g[lo:hi], a[lo:hi], b[lo:hi], c[lo:hi])

    def with_threads(kernel):
        return lambda *arrays: kernel(*arrays, numba.get_num_threads())

    _BW_KERNELS[key] = tuple(with_threads(k) for k in (p1, p2, p3))
    return _BW_KERNELS[key]


class _BandwidthStepper:
    def __init__(self, x_list, cfg: Config, parallel: bool):
        self.x = _check_list(x_list)
        self.kernel = _bw_kernels(parallel)[cfg.n_state - 1]
        self.state = [[np.zeros_like(x) for _ in range(cfg.n_state)]
                      for x in self.x]

    def step(self, grads):
        k = self.kernel
        for x, g, st in zip(self.x, grads, self.state):
            k(x.reshape(-1), g.reshape(-1), *[s.reshape(-1) for s in st])

    def params(self):  # not an optimizer: values are meaningless
        return self.x


def bandwidth_stepper(x_list, cfg, parallel: bool = True):
    """Same-traffic trivial numba kernel (``parallel=True`` -> prange)."""
    return _BandwidthStepper(x_list, as_config(cfg), parallel)


# --------------------------------------------------------------------------
# registry used by compare_peers.py:  name -> (factory, is_optimizer)
# --------------------------------------------------------------------------
PEERS = {
    "ours": (ours_stepper, True),
    "numpy": (numpy_stepper, True),
    "torch": (lambda x, c: torch_stepper(x, c, eps_mode="zero"), True),
    "torch_shift": (lambda x, c: torch_stepper(x, c, eps_mode="shift"), True),
    "optax": (optax_stepper, True),
    "keras": (keras_stepper, True),
    "bw_par": (lambda x, c: bandwidth_stepper(x, c, parallel=True), False),
    "bw_ser": (lambda x, c: bandwidth_stepper(x, c, parallel=False), False),
}
