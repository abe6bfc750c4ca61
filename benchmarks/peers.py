"""RMSprop implementations to compare against, all configured to Keras 3's math.

Target (``keras.optimizers.RMSprop``, centered with this library's clamp)::

    v = rho*v + (1-rho)*g*g
    d = v + eps          centered: mg = rho*mg + (1-rho)*g;  d = max(v - mg*mg, 0) + eps
    inc = lr*g/sqrt(d)
    momentum > 0:  m = momentum*m + inc;  x -= m          else: x -= inc

A factory ``(x_list, cfg)`` -- NumPy arrays (NumPy-backed peers update them in
place) and a :class:`Config` or its name -- returns a stepper with
``.step(grads)`` (ONE update; jitted peers block until done) and
``.params()``; :data:`PEERS` names them. Peer libraries are imported inside
the factories.

* ``handwritten``: :func:`keras_rmsprop`, a minimal serial ``@njit`` loop of
  exactly that math in the variable's dtype, one call per variable;
  :func:`rmsprop_loop` is the matching hand-written ``minimize`` loop.
* ``numpy``: the same math with NumPy array operations.
* ``torch``: ``torch.optim.RMSprop(foreach=True)`` on ``torch.from_numpy``
  views. torch adds eps OUTSIDE the square root: ``eps_mode="zero"`` passes
  0 (its fast path; differs by O(lr) where ``v`` < ~eps), ``"shift"`` is exact
  (``square_avg`` holds ``v + eps``, one extra ``_foreach_add_`` per step),
  ``"torch"`` passes eps through. Its momentum buffer is ``g/denom`` times lr
  at the update: Keras's for a constant rate. ``grads="wrap"`` hands
  gradients over zero-copy (cached by identity), ``"copy"`` copies into ``.grad``.
* ``optax``: ``optax.rmsprop(eps_in_sqrt=True)`` and ``keras``: Keras 3 on JAX
  (``stateless_apply``; its rate in float32), each under ``jax.jit`` with
  donated buffers; gradients become device arrays once per buffer.
* ``bw_par`` / ``bw_ser``: trivial kernels moving the update's bytes: the bound.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
from numba import get_num_threads, njit, prange

from .common import bench_threads


@dataclasses.dataclass(frozen=True)
class Config:
    learning_rate: float = 1e-3
    rho: float = 0.9
    momentum: float = 0.0
    centered: bool = False
    epsilon: float = 1e-7  # Keras default

    @property
    def n_state(self) -> int:
        """Per-element state arrays: v, [mg], [m]."""
        return 1 + int(self.centered) + int(self.momentum > 0)


CONFIGS = {
    "plain": Config(),
    "momentum": Config(momentum=0.9),
    "centered": Config(centered=True),
    "centered+momentum": Config(momentum=0.9, centered=True),
}


class _Stepper:
    """``(x_list, cfg, **options)``: checks the arrays, resolves ``cfg``, calls ``build``."""

    def __init__(self, x_list, cfg, **options):
        self.x = list(x_list)
        if not all(
            isinstance(x, np.ndarray) and x.flags.c_contiguous and x.flags.writeable for x in self.x
        ):
            raise ValueError("parameters must be writeable C-contiguous NumPy arrays")
        self.cfg = (
            cfg
            if isinstance(cfg, Config)
            else CONFIGS[cfg]
            if isinstance(cfg, str)
            else Config(**cfg)
        )
        self.build(self.cfg, **options)

    def params(self):
        return self.x


# ------------------------------------------------------- ours, hand-written
class ours_stepper(_Stepper):  # noqa: N801 - a factory, named like the others
    """``numba_rmsprop.RMSprop(...).apply(grads, x_list)`` (in place; package defaults)."""

    def build(self, cfg):
        import numba_rmsprop

        self.opt = numba_rmsprop.RMSprop(**dataclasses.asdict(cfg))

    def step(self, grads):
        self.opt.apply(grads, self.x)


@njit(cache=True, nogil=True)
def keras_rmsprop(x, g, v, mg, m, lr, rho, one_minus_rho, momentum, eps, centered, use_momentum):
    """One serial pass of the update over flat ``x`` (scalars already in x's dtype)."""
    for i in range(x.size):
        gi = g[i]
        vi = rho * v[i] + one_minus_rho * (gi * gi)
        v[i] = vi
        if centered:
            mgi = rho * mg[i] + one_minus_rho * gi
            mg[i] = mgi
            d = vi - mgi * mgi
            if d < 0:
                d = d - d  # 0 in d's dtype
            d = d + eps
        else:
            d = vi + eps
        inc = (lr * gi) / math.sqrt(d)
        if use_momentum:
            mi = momentum * m[i] + inc
            m[i] = mi
            x[i] = x[i] - mi
        else:
            x[i] = x[i] - inc


@njit(cache=True, nogil=True, error_model="numpy")
def plain_rmsprop(x, g, v, lr, rho, one_minus_rho, eps):
    """Plain RMSprop (no options) as one loop that vectorises: the least work of the update."""
    for i in range(x.size):
        gi = g[i]
        vi = rho * v[i] + one_minus_rho * (gi * gi)
        v[i] = vi
        x[i] = x[i] - (lr * gi) / math.sqrt(vi + eps)


class handwritten_stepper(_Stepper):  # noqa: N801
    """:func:`keras_rmsprop` once per variable: a minimal serial ``@njit`` kernel."""

    def build(self, cfg):
        def state(x):
            t = x.dtype.type
            return (
                x,
                np.zeros_like(x),
                np.zeros_like(x) if cfg.centered else x[:0],
                np.zeros_like(x) if cfg.momentum > 0 else x[:0],
                t(cfg.learning_rate),
                t(cfg.rho),
                t(1.0 - cfg.rho),
                t(cfg.momentum),
                t(cfg.epsilon),
                cfg.centered,
                cfg.momentum > 0,
            )

        self.state = [state(x.reshape(-1)) for x in self.x]

    def step(self, grads):
        for (x, v, mg, m, *c), g in zip(self.state, grads, strict=False):
            keras_rmsprop(x, g.reshape(-1), v, mg, m, *c)


@njit(cache=True)
def rmsprop_loop(fun, x, args, n, lr, rho, momentum, eps):
    """The hand-written ``minimize``: ``n`` steps of ``fun(x, *args)`` and a plain fused update."""
    v = np.zeros_like(x)
    m = np.zeros_like(x)
    f = 0.0
    for _ in range(n):
        f, g = fun(x, *args)
        keras_rmsprop(x, g, v, m, m, lr, rho, 1.0 - rho, momentum, eps, False, momentum > 0)
    return f


# -------------------------------------------------------------------- NumPy
class numpy_stepper(_Stepper):  # noqa: N801
    """The math with NumPy array ops in Keras's order, hyper-parameters cast to the dtype."""

    def build(self, cfg):
        z = lambda: [np.zeros_like(x) for x in self.x]  # noqa: E731
        self.v, self.mg, self.m, self.t1, self.t2 = z(), z(), z(), z(), z()

    def step(self, grads):
        c = self.cfg
        for i, (x, g) in enumerate(zip(self.x, grads, strict=False)):
            v, t1, t2 = self.v[i], self.t1[i], self.t2[i]
            dt = x.dtype.type
            np.multiply(g, g, out=t1)
            t1 *= dt(1.0 - c.rho)
            v *= dt(c.rho)
            v += t1
            if c.centered:
                mg = self.mg[i]
                np.multiply(g, dt(1.0 - c.rho), out=t1)
                mg *= dt(c.rho)
                mg += t1
                np.multiply(mg, mg, out=t1)
                np.subtract(v, t1, out=t1)
                np.maximum(t1, 0, out=t1)
                t1 += dt(c.epsilon)
            else:
                np.add(v, dt(c.epsilon), out=t1)
            np.sqrt(t1, out=t1)
            np.multiply(g, dt(c.learning_rate), out=t2)
            t2 /= t1
            if c.momentum > 0:
                self.m[i] *= dt(c.momentum)
                self.m[i] += t2
                x -= self.m[i]
            else:
                x -= t2


# -------------------------------------------------------------------- torch
class torch_stepper(_Stepper):  # noqa: N801
    """Options: ``eps_mode`` zero/shift/torch, ``grads`` wrap/copy, ``foreach``, ``num_threads``."""

    def build(self, cfg, eps_mode="zero", grads="wrap", foreach=True, num_threads=None):
        import torch

        if eps_mode not in ("zero", "shift", "torch") or grads not in ("wrap", "copy"):
            raise ValueError(f"eps_mode={eps_mode!r}, grads={grads!r}")
        self.torch = torch
        torch.set_num_threads(num_threads or bench_threads())
        self.p = [torch.from_numpy(x) for x in self.x]  # torch updates the NumPy arrays
        self.opt = torch.optim.RMSprop(
            self.p,
            lr=cfg.learning_rate,
            alpha=cfg.rho,
            eps=cfg.epsilon if eps_mode == "torch" else 0.0,
            momentum=cfg.momentum,
            centered=cfg.centered,
            foreach=foreach,
        )
        self._sq = None
        if eps_mode == "shift":
            # square_avg holds s = v + eps; adding (1-rho)*eps/rho before each
            # step keeps it so: rho*(s + c) + (1-rho)*g^2 = v_new + eps.
            self._shift, self._sq = (1.0 - cfg.rho) * cfg.epsilon / cfg.rho, []
            for p in self.p:
                st = self.opt.state[p]
                st["step"] = torch.zeros((), dtype=torch.get_default_dtype())
                st["square_avg"] = torch.full_like(p, cfg.epsilon)
                if cfg.momentum > 0:
                    st["momentum_buffer"] = torch.zeros_like(p)
                if cfg.centered:
                    st["grad_avg"] = torch.zeros_like(p)
                self._sq.append(st["square_avg"])
        self.copy = grads == "copy"
        for p in self.p if self.copy else ():
            p.grad = torch.zeros_like(p)
        self._gsrc = [None] * len(self.p)

    def step(self, grads):
        torch = self.torch
        for i, g in enumerate(grads):
            if self.copy:
                self.p[i].grad.copy_(torch.from_numpy(g))
            elif self._gsrc[i] is not g:
                self.p[i].grad, self._gsrc[i] = torch.from_numpy(g), g
        if self._sq is not None:
            torch._foreach_add_(self._sq, self._shift)
        self.opt.step()


# ---------------------------------------------------------------------- JAX
class _Jax(_Stepper):
    """``make(cfg, jax)`` returns ``(update, params, state)``; the update is jitted with
    donated params and state, gradients become device arrays once per buffer, and
    ``step`` blocks until the result is ready."""

    def build(self, cfg):
        import warnings

        import jax

        try:
            jax.config.update("jax_platforms", "cpu")
        except Exception:  # already initialised
            pass
        if self.x and self.x[0].dtype == np.float64 and not jax.config.jax_enable_x64:
            jax.config.update("jax_enable_x64", True)
        self.jax, self._src, self._dev = jax, [None] * len(self.x), [None] * len(self.x)
        update, self.x, self.state = self.make(cfg, jax)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*donat.*")
            self._update = jax.jit(update, donate_argnums=(0, 1))

    def step(self, grads):
        for i, g in enumerate(grads):
            if self._src[i] is not g:
                self._dev[i], self._src[i] = self.jax.numpy.asarray(g), g
        self.x, self.state = self._update(self.x, self.state, self._dev)
        self.jax.block_until_ready((self.x, self.state))

    def params(self):
        return [np.asarray(a) for a in self.x]


class optax_stepper(_Jax):  # noqa: N801
    def make(self, cfg, jax):
        import optax

        tx = optax.rmsprop(
            learning_rate=cfg.learning_rate,
            decay=cfg.rho,
            eps=cfg.epsilon,
            initial_scale=0.0,
            eps_in_sqrt=True,
            centered=cfg.centered,
            momentum=cfg.momentum if cfg.momentum > 0 else None,
            nesterov=False,
            bias_correction=False,
        )
        x = [jax.numpy.array(x) for x in self.x]

        def update(params, state, grads):
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        return update, x, tx.init(x)


class keras_stepper(_Jax):  # noqa: N801
    def make(self, cfg, jax):
        if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
            raise RuntimeError(f"KERAS_BACKEND={os.environ['KERAS_BACKEND']!r}; need 'jax'")
        import keras

        if keras.backend.backend() != "jax":
            raise RuntimeError(f"keras was imported with backend {keras.backend.backend()!r}")
        variables = [keras.Variable(x, dtype=str(x.dtype)) for x in self.x]
        opt = keras.optimizers.RMSprop(**dataclasses.asdict(cfg))
        opt.build(variables)

        def update(train_vals, opt_vals, grads):
            return opt.stateless_apply(opt_vals, grads, train_vals)

        return update, [v.value for v in variables], [v.value for v in opt.variables]


# ------------------------------------------------- same-traffic bound (numba)
# Each kernel reads x, g and 1-3 state arrays and writes x and the state --
# exactly the bytes the fused update moves -- with trivial arithmetic (values
# stay bounded). The parallel ones run one plain loop per thread chunk: a
# prange over elements keeps numba's wraparound check and does not vectorise.
@njit(cache=True, nogil=True, error_model="numpy")
def _s1(x, g, a):
    for i in range(x.size):
        xi = x[i] * 0.5 + g[i]
        x[i] = xi
        a[i] = a[i] * 0.5 + xi


@njit(cache=True, nogil=True, error_model="numpy")
def _s2(x, g, a, b):
    for i in range(x.size):
        xi = x[i] * 0.5 + g[i]
        x[i] = xi
        a[i] = a[i] * 0.5 + xi
        b[i] = b[i] * 0.5 + xi


@njit(cache=True, nogil=True, error_model="numpy")
def _s3(x, g, a, b, c):
    for i in range(x.size):
        xi = x[i] * 0.5 + g[i]
        x[i] = xi
        a[i] = a[i] * 0.5 + xi
        b[i] = b[i] * 0.5 + xi
        c[i] = c[i] * 0.5 + xi


@njit(cache=True, nogil=True, parallel=True)
def _p1(x, g, a, nchunks):
    for k in prange(nchunks):
        lo, hi = (k * x.size) // nchunks, ((k + 1) * x.size) // nchunks
        _s1(x[lo:hi], g[lo:hi], a[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def _p2(x, g, a, b, nchunks):
    for k in prange(nchunks):
        lo, hi = (k * x.size) // nchunks, ((k + 1) * x.size) // nchunks
        _s2(x[lo:hi], g[lo:hi], a[lo:hi], b[lo:hi])


@njit(cache=True, nogil=True, parallel=True)
def _p3(x, g, a, b, c, nchunks):
    for k in prange(nchunks):
        lo, hi = (k * x.size) // nchunks, ((k + 1) * x.size) // nchunks
        _s3(x[lo:hi], g[lo:hi], a[lo:hi], b[lo:hi], c[lo:hi])


class bandwidth_stepper(_Stepper):  # noqa: N801
    """Same-traffic kernels (not an optimizer): ``parallel`` (default) or serial."""

    def build(self, cfg, parallel=True):
        self.kernel = ((_p1, _p2, _p3) if parallel else (_s1, _s2, _s3))[cfg.n_state - 1]
        self.extra = (get_num_threads(),) if parallel else ()
        self.state = [[np.zeros(x.size, x.dtype) for _ in range(cfg.n_state)] for x in self.x]

    def step(self, grads):
        for x, g, st in zip(self.x, grads, self.state, strict=False):
            self.kernel(x.reshape(-1), g.reshape(-1), *st, *self.extra)


#: name -> (factory(x_list, cfg), is an optimizer, module it needs)
PEERS = {
    "ours": (ours_stepper, True, "numba_rmsprop"),
    "handwritten": (handwritten_stepper, True, "numba"),
    "numpy": (numpy_stepper, True, "numpy"),
    "torch": (lambda x, c: torch_stepper(x, c, eps_mode="zero"), True, "torch"),
    "torch_shift": (lambda x, c: torch_stepper(x, c, eps_mode="shift"), True, "torch"),
    "optax": (optax_stepper, True, "optax"),
    "keras": (keras_stepper, True, "keras"),
    "bw_par": (bandwidth_stepper, False, "numba"),
    "bw_ser": (lambda x, c: bandwidth_stepper(x, c, parallel=False), False, "numba"),
}
