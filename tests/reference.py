"""Plain-NumPy reference implementation of Keras 3's RMSprop.

Slow, simple and deliberately independent of ``numba_rmsprop``: it exists so
the tests have a second, obviously-correct implementation to compare against,
and it is itself checked against golden trajectories recorded from Keras
(``tests/data/keras_rmsprop.npz``).

It follows ``keras/src/optimizers/{base_optimizer,rmsprop}.py`` and the JAX
backend's ``_backend_apply_gradients`` (Keras 3.15) operation by operation.
Python scalars are cast to the variable's dtype exactly where Keras's weak
typing casts them (``1 - rho`` is computed in Python, then cast; EMA's
``1 - momentum`` is computed in the variable dtype), and all RMSprop state
lives in the variable's dtype.  One ``apply(grads, variables)`` call, with
``it`` the number of previous calls and ``N`` the gradient accumulation steps:

1. ``g = g / loss_scale_factor`` (if set).
2. With ``N``: on calls where ``(it + 1) % N == 0`` use ``g = (g + acc) / N``
   and reset *all* accumulators to zero; on the other calls ``acc += g`` and
   steps 3-5 are skipped (variables and RMSprop state unchanged).
3. Gradient clipping (``clipnorm`` / ``global_clipnorm`` / ``clipvalue``; a
   value ``<= 0`` disables it, like Keras's truthiness checks).
4. Decoupled weight decay ``x = x - x * wd * lr`` (``lr`` evaluated at the raw
   call count), skipping excluded variables.
5. The RMSprop update.
6. EMA (``use_ema``) over *all* built variables on *every* call, with
   ``k = it // N`` (or ``it``): momentum ``0`` while ``k == 0``, then
   ``ema_momentum``; if ``ema_overwrite_frequency`` is ``f`` and
   ``(k + 1) % f == 0`` the variables are overwritten with their averages.
7. ``iterations += 1`` (raw call count, unlike Keras's public ``iterations``
   property, which floor-divides by ``N``; Keras's ``_iterations`` is raw).

Deliberate differences from Keras (shared with ``numba_rmsprop``):

* A float learning rate is cast straight to the variable's dtype (Keras first
  stores it in ``floatx``), and schedules are evaluated in float64 (Keras's
  JAX backend computes several schedule ops in float32 even for float64).
* Centered RMSprop uses ``max(v - mg**2, 0) + epsilon``; Keras uses
  ``v - mg**2 + epsilon``.  They agree wherever ``v - mg**2 >= 0``.
* Gradients are cast to their variable's dtype on entry (Keras casts inside
  ``update_step``; this only matters when the dtypes differ).
* Squared norms for clipping are accumulated in float64, then cast.
* Accumulators of variables whose gradient is ``None`` on an update call are
  reset to zero, as in Keras's generic ``BaseOptimizer`` (Keras's JAX backend
  leaves them untouched).

The variants of other frameworks (``RMSprop.like_torch`` / ``like_optax`` /
``like_tf1`` in the package) are keyword arguments here too, each written
from the framework's own source, and :meth:`ReferenceRMSprop.like` maps each
framework's arguments onto them:

* torch (``torch/optim/rmsprop.py``, ``_single_tensor_rmsprop``): ``maximize``
  negates the gradient first; L2 decay
  ``g + wd * x``; ``sqrt(v) + eps`` (centered ``sqrt(v - mg**2) + eps``);
  with momentum ``buf = mu * buf + g / avg`` and ``x -= lr * buf``,
  without ``x -= lr * g / avg``.
* optax (``optax/_src/alias.py::rmsprop``: ``scale_by_rms`` /
  ``scale_by_stddev``, ``scale_by_learning_rate``, ``trace``): ``nu`` starts
  at ``initial_scale``; ``eps_in_sqrt``; bias correction divides ``nu`` (and
  ``mu``) by ``1 - decay**t``; the learning rate scales the update *before*
  the momentum trace, ``t = u + mu * t``, Nesterov ``u + mu * t``.
* TF1 (``tensorflow/python/training/rmsprop.py`` and the ``ApplyRMSProp``
  kernels): ``ms`` starts at 1; ``mom = mu * mom + lr * g / sqrt(ms + eps)``.
"""

import math

import numpy as np

__all__ = [
    "ReferenceRMSprop",
    "schedule_from_config",
    "ExponentialDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
    "InverseTimeDecay",
    "CosineDecay",
    "CosineDecayRestarts",
]


# ---------------------------------------------------------------------------
# Learning-rate schedules: Keras's formulas, evaluated in float64.
#
# Any finite step, negative ones included, as Keras accepts; IEEE float64
# semantics throughout (NumPy scalars: x / 0 is +-inf, log(-1) is NaN, and
# ceil(-0.5) is -0.0), because that is what Keras's tensor ops do.
# ---------------------------------------------------------------------------
F = np.float64


def _ieee(method):
    def call(self, step):
        with np.errstate(all="ignore"):
            return float(method(self, step))

    return call


class ExponentialDecay:
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase

    @_ieee
    def __call__(self, step):
        p = F(step) / F(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return F(self.initial_learning_rate) * F(self.decay_rate) ** p


class PiecewiseConstantDecay:
    def __init__(self, boundaries, values, name=None):
        if len(boundaries) != len(values) - 1:
            raise ValueError("len(boundaries) must be len(values) - 1")
        self.boundaries = list(boundaries)
        self.values = list(values)

    @_ieee
    def __call__(self, step):
        # Keras casts the boundaries to the step's dtype (an integer step
        # truncates float boundaries), then sums indicator * value over the
        # intervals (-inf, b0], (b0, b1], ..., (b_last, inf).
        b, v = self.boundaries, self.values
        if isinstance(step, (int, np.integer)):
            b = [int(x) for x in b]
        result = 0.0
        result += float(step <= b[0]) * v[0]
        result += float(step > b[-1]) * v[-1]
        for low, high, value in zip(b[:-1], b[1:], v[1:-1], strict=False):
            result += float(low < step <= high) * value
        return result


class PolynomialDecay:
    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        end_learning_rate=0.0001,
        power=1.0,
        cycle=False,
        name=None,
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle

    @_ieee
    def __call__(self, step):
        step = F(step)
        decay_steps = F(self.decay_steps)
        if self.cycle:
            multiplier = F(1.0) if step == 0 else np.ceil(step / decay_steps)
            decay_steps = decay_steps * multiplier
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        lr0 = F(self.initial_learning_rate)
        end = F(self.end_learning_rate)
        return (lr0 - end) * (1.0 - p) ** F(self.power) + end


class InverseTimeDecay:
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase

    @_ieee
    def __call__(self, step):
        p = F(step) / F(self.decay_steps)
        if self.staircase:
            p = np.floor(p)
        return F(self.initial_learning_rate) / (1.0 + F(self.decay_rate) * p)


class CosineDecay:
    def __init__(
        self,
        initial_learning_rate,
        decay_steps,
        alpha=0.0,
        name=None,
        warmup_target=None,
        warmup_steps=0,
    ):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def _decay(self, step, decay_from_lr):
        completed_fraction = step / F(self.decay_steps)
        cosine_decayed = 0.5 * (1.0 + np.cos(math.pi * completed_fraction))
        alpha = F(self.alpha)
        return decay_from_lr * ((1.0 - alpha) * cosine_decayed + alpha)

    @_ieee
    def __call__(self, step):
        step = F(step)
        lr0 = F(self.initial_learning_rate)
        decay_steps = F(self.decay_steps)
        if self.warmup_target is None:
            return self._decay(min(step, decay_steps), lr0)
        target = F(self.warmup_target)
        warmup_steps = F(self.warmup_steps)
        step = min(step, decay_steps + warmup_steps)
        if step < warmup_steps:  # with warmup_steps == 0: any negative step
            return (target - lr0) * (step / warmup_steps) + lr0
        return self._decay(step - warmup_steps, target)


class CosineDecayRestarts:
    def __init__(
        self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name=None
    ):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self.t_mul = t_mul
        self.m_mul = m_mul
        self.alpha = alpha

    @_ieee
    def __call__(self, step):
        t_mul = F(self.t_mul)
        m_mul = F(self.m_mul)
        alpha = F(self.alpha)
        completed_fraction = F(step) / F(self.first_decay_steps)
        if t_mul == 1.0:
            i_restart = np.floor(completed_fraction)
            completed_fraction -= i_restart
        else:
            # NaN where the argument of log is <= 0 (beyond the periods).
            i_restart = np.floor(np.log(1.0 - completed_fraction * (1.0 - t_mul)) / np.log(t_mul))
            sum_r = (1.0 - t_mul**i_restart) / (1.0 - t_mul)
            completed_fraction = (completed_fraction - sum_r) / (t_mul**i_restart)
        m_fac = m_mul**i_restart
        cosine_decayed = 0.5 * m_fac * (1.0 + np.cos(math.pi * completed_fraction))
        decayed = (1.0 - alpha) * cosine_decayed + alpha
        return F(self.initial_learning_rate) * decayed


_SCHEDULES = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay,
        PiecewiseConstantDecay,
        PolynomialDecay,
        InverseTimeDecay,
        CosineDecay,
        CosineDecayRestarts,
    )
}


def schedule_from_config(serialized):
    """Build a reference schedule from Keras's serialized schedule dict
    (``{"class_name": ..., "config": {...}, ...}``)."""
    return _SCHEDULES[serialized["class_name"]](**serialized["config"])


# ---------------------------------------------------------------------------
# The optimizer.
# ---------------------------------------------------------------------------


class ReferenceRMSprop:
    """Keras 3 RMSprop on NumPy arrays, updated in place.  See module doc."""

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        initial_velocity=0.0,
        epsilon_in_sqrt=True,
        learning_rate_in_momentum=True,
        decoupled_weight_decay=True,
        nesterov=False,
        bias_correction=False,
        maximize=False,
    ):
        if not (callable(learning_rate) or isinstance(learning_rate, float)):
            raise ValueError("learning_rate must be a float or a callable")
        clips = (clipnorm, clipvalue, global_clipnorm)
        if sum(c is not None for c in clips) > 1:
            raise ValueError("Only one of clipnorm, clipvalue and global_clipnorm can be set.")
        n_acc = gradient_accumulation_steps
        if n_acc and not n_acc >= 2:
            raise ValueError("gradient_accumulation_steps must be >= 2")
        if use_ema and not 0 <= ema_momentum <= 1:
            raise ValueError("ema_momentum must be in [0, 1]")
        self.learning_rate = learning_rate
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.name = name
        self.initial_velocity = initial_velocity
        self.epsilon_in_sqrt = epsilon_in_sqrt
        self.learning_rate_in_momentum = learning_rate_in_momentum
        self.decoupled_weight_decay = decoupled_weight_decay
        self.nesterov = nesterov
        self.bias_correction = bias_correction
        self.maximize = maximize

        self.iterations = 0
        self.updates = 0  # update calls so far (bias correction's t)
        self.built = False
        self.state = {}
        self._variables = []  # variables in build order
        self._excluded_ids = set()

    @classmethod
    def like(cls, framework, **kwargs):
        """The reference configured as ``framework`` ("torch", "optax", "tf1") with its
        own argument names and defaults."""
        if framework == "torch":
            a = dict(
                dict(
                    lr=0.01,
                    alpha=0.99,
                    eps=1e-8,
                    weight_decay=0,
                    momentum=0,
                    centered=False,
                    maximize=False,
                ),
                **kwargs,
            )
            return cls(
                learning_rate=a["lr"],
                rho=a["alpha"],
                epsilon=a["eps"],
                momentum=a["momentum"],
                centered=a["centered"],
                maximize=a["maximize"],
                weight_decay=a["weight_decay"] or None,
                decoupled_weight_decay=False,
                epsilon_in_sqrt=False,
                learning_rate_in_momentum=False,
            )
        if framework == "optax":
            a = dict(
                dict(
                    decay=0.9,
                    eps=1e-8,
                    initial_scale=0.0,
                    eps_in_sqrt=True,
                    centered=False,
                    momentum=None,
                    nesterov=False,
                    bias_correction=False,
                ),
                **kwargs,
            )
            return cls(
                learning_rate=a["learning_rate"],
                rho=a["decay"],
                epsilon=a["eps"],
                initial_velocity=a["initial_scale"],
                epsilon_in_sqrt=a["eps_in_sqrt"],
                centered=a["centered"],
                momentum=a["momentum"] or 0.0,
                nesterov=a["nesterov"] and a["momentum"] is not None,
                bias_correction=a["bias_correction"],
            )
        if framework == "tf1":
            a = dict(dict(decay=0.9, momentum=0.0, epsilon=1e-10, centered=False), **kwargs)
            return cls(
                learning_rate=a["learning_rate"],
                rho=a["decay"],
                epsilon=a["epsilon"],
                momentum=a["momentum"],
                centered=a["centered"],
                initial_velocity=1.0,
            )
        raise ValueError(framework)

    @classmethod
    def from_config(cls, config):
        """Accepts ``keras.optimizers.RMSprop(...).get_config()``."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedule_from_config(config["learning_rate"])
        return cls(**config)

    # -- bookkeeping -------------------------------------------------------

    def build(self, variables):
        if self.built:
            return
        variables = list(variables)
        for v in variables:
            if not isinstance(v, np.ndarray):
                raise TypeError("variables must be NumPy arrays")
        self._variables = variables

        def zeros():
            return [np.zeros_like(v) for v in variables]

        self.state = {"velocity": [np.full_like(v, self.initial_velocity) for v in variables]}
        if self.momentum > 0:
            self.state["momentum"] = zeros()
        if self.centered:
            self.state["average_gradient"] = zeros()
        if self.use_ema:
            self.state["average"] = zeros()
        if self.gradient_accumulation_steps:
            self.state["gradient_accumulator"] = zeros()
        self.built = True

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Like Keras: each call replaces the previous exclusion set."""
        if var_names:
            raise NotImplementedError("NumPy arrays have no names")
        self._excluded_ids = {id(v) for v in (var_list or [])}

    def _index(self, variable):
        for i, v in enumerate(self._variables):
            if v is variable:
                return i
        raise ValueError("Unknown variable: the optimizer was not built with it.")

    def _lr(self, dtype):
        """The learning rate at the raw call count, in ``dtype``."""
        lr = self.learning_rate
        if callable(lr):
            lr = lr(self.iterations)
        return np.asarray(lr, dtype=np.float64).astype(dtype)

    # -- the update --------------------------------------------------------

    def apply(self, grads, variables=None):
        grads = list(grads)
        if variables is None:
            if not self.built:
                raise ValueError("build the optimizer or pass variables")
            variables = self._variables
        else:
            variables = list(variables)
            self.build(variables)
        if len(grads) != len(variables):
            raise ValueError("one gradient per variable")
        indices = [self._index(v) for v in variables]

        # Filter empty gradients; cast the rest to their variable's dtype.
        work = []  # (index into built variables, gradient)
        for i, g in zip(indices, grads, strict=False):
            if g is None:
                continue
            var = self._variables[i]
            g = np.asarray(g).astype(var.dtype)
            if g.shape != var.shape:
                raise ValueError("gradient shape does not match variable")
            work.append((i, g))
        if not work:
            raise ValueError("No gradients provided for any variable.")

        # 1. Unscale.
        if self.loss_scale_factor is not None:
            work = [(i, g / g.dtype.type(self.loss_scale_factor)) for i, g in work]

        # 2. Gradient accumulation.
        is_update_step = True
        n_acc = self.gradient_accumulation_steps
        if n_acc:
            acc = self.state["gradient_accumulator"]
            is_update_step = (self.iterations + 1) % n_acc == 0
            if is_update_step:
                work = [(i, (g + acc[i]) / g.dtype.type(n_acc)) for i, g in work]
                for a in acc:
                    a[...] = 0
            else:
                for i, g in work:
                    acc[i][...] = g + acc[i]

        if is_update_step:
            # 3. Clipping.
            work = self._clip(work)
            self.updates += 1
            # 4. Decoupled weight decay.
            if self.weight_decay is not None and self.decoupled_weight_decay:
                for i, _ in work:
                    var = self._variables[i]
                    if id(var) in self._excluded_ids:
                        continue
                    lr = self._lr(var.dtype)
                    wd = np.asarray(self.weight_decay).astype(var.dtype)
                    var[...] = var - var * wd * lr
            # 5. RMSprop.
            for i, g in work:
                self._update_step(i, g)

        # 6. EMA of all built variables, on every call.
        if self.use_ema:
            k = self.iterations // n_acc if n_acc else self.iterations
            averages = self.state["average"]
            for var, avg in zip(self._variables, averages, strict=False):
                dt = var.dtype.type
                mom = dt(0) if k == 0 else dt(self.ema_momentum)
                avg[...] = mom * avg + (dt(1) - mom) * var
            freq = self.ema_overwrite_frequency
            if freq and (k + 1) % freq == 0:
                for var, avg in zip(self._variables, averages, strict=False):
                    var[...] = avg

        # 7. Count the call.
        self.iterations += 1

    def _clip(self, work):
        if self.clipnorm and self.clipnorm > 0:
            return [(i, self._clip_by_norm(g)) for i, g in work]
        if self.global_clipnorm and self.global_clipnorm > 0:
            dtype = np.result_type(*[g.dtype for _, g in work])
            dt = dtype.type
            sum_sq = sum(float(np.sum(np.square(g.astype(np.float64)))) for _, g in work)
            norm = np.sqrt(dt(sum_sq))
            with np.errstate(divide="ignore"):
                inv_norm = dt(1) / norm  # inf for an all-zero gradient
            c = self.global_clipnorm
            scale = dt(c) * np.minimum(inv_norm, dt(1.0 / c)) + (norm - norm)
            return [(i, (g * scale).astype(g.dtype)) for i, g in work]
        if self.clipvalue and self.clipvalue > 0:
            out = []
            for i, g in work:
                c = g.dtype.type(self.clipvalue)
                out.append((i, np.clip(g, -c, c)))
            return out
        return work

    def _clip_by_norm(self, g):
        dt = g.dtype.type
        c = dt(self.clipnorm)
        l2sum = dt(np.sum(np.square(g.astype(np.float64))))
        l2norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
        return (g * c) / np.maximum(l2norm, c)

    def _update_step(self, i, g):
        var = self._variables[i]
        dt = var.dtype.type
        lr = self._lr(var.dtype)
        rho = dt(self.rho)
        one_minus_rho = dt(1 - self.rho)  # computed in Python, then cast
        eps = dt(self.epsilon)
        if self.maximize:
            g = -g  # torch: grad = -grad, before the weight decay
        if (
            self.weight_decay is not None
            and not self.decoupled_weight_decay
            and id(var) not in self._excluded_ids
        ):
            g = g + dt(self.weight_decay) * var  # torch: grad.add(param, alpha=wd)

        velocity = self.state["velocity"][i]
        velocity[...] = rho * velocity + one_minus_rho * np.square(g)
        # optax: 1 - decay**count in the moment's dtype (decay cast first)
        correction = dt(1) - dt(self.rho) ** dt(self.updates)
        v_hat = velocity / correction if self.bias_correction else velocity
        if self.centered:
            mg = self.state["average_gradient"][i]
            mg[...] = rho * mg + one_minus_rho * g
            mg_hat = mg / correction if self.bias_correction else mg
            # Keras: velocity - mg**2 + eps (no clamp).
            second = np.maximum(v_hat - np.square(mg_hat), dt(0))
        else:
            second = v_hat
        if self.epsilon_in_sqrt:
            denominator = np.sqrt(second + eps)
        else:
            denominator = np.sqrt(second) + eps
        if self.momentum > 0:
            mu = dt(self.momentum)
            m = self.state["momentum"][i]
            if self.learning_rate_in_momentum:  # Keras, TF1, optax
                direction = (lr * g) / denominator
            else:  # torch
                direction = g / denominator
            m[...] = mu * m + direction
            step = direction + mu * m if self.nesterov else m
            if not self.learning_rate_in_momentum:
                step = lr * step
            var[...] = var - step
        else:
            var[...] = var - (lr * g) / denominator

    def finalize_variable_values(self, variables):
        """Like Keras: with ``use_ema``, copy the averages into ``variables``,
        matched by position with the variables the optimizer was built with.
        """
        if not self.use_ema:
            return
        variables = list(variables)
        if len(variables) != len(self._variables):
            raise ValueError(
                "finalize_variable_values needs all the variables the optimizer was built with"
            )
        for var, avg in zip(variables, self.state["average"], strict=False):
            var[...] = avg
