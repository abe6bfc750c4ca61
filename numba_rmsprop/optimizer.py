"""``RMSprop``: Keras 3's RMSprop over arrays updated in place, and its variants.

This module owns the arguments (declared once, in the class body, as
:func:`~numba_rmsprop._hyperparameters.hyperparameter` entries), the
optimizer state, the counters and the plan of each call. The arithmetic
lives in the element rule (:mod:`numba_rmsprop._rule`), which the backends
(:mod:`numba_rmsprop._cpu_backend` for NumPy arrays,
:mod:`numba_rmsprop._cuda` for device arrays; interface in
:mod:`numba_rmsprop._backend`) compile into their kernels.
"""

from __future__ import annotations

import inspect
import numbers
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from . import _arrays, _plan
from ._hyperparameters import (Configurable, boolean, hyperparameter, integer, one_of,
                               positive, real, text)
from ._spec import Spec
from . import schedules as _schedules
from .schedules import LearningRateSchedule, deserialize, serialize

LearningRate = Union[float, LearningRateSchedule, Callable[[], float]]

#: Built-in schedules, whose __call__ is vectorised over step arrays.
_VECTORISED_SCHEDULES = frozenset(
    getattr(_schedules, name) for name in _schedules.__all__
    if isinstance(getattr(_schedules, name), type)
    and issubclass(getattr(_schedules, name), LearningRateSchedule)
    and getattr(_schedules, name) is not LearningRateSchedule
)
_LR_BLOCK = 256

#: Optimizer state kinds, in ``state_dict`` key order: (key prefix, slot attribute).
STATE_KINDS = (
    ("velocity", "v"),
    ("momentum", "mom"),
    ("average_gradient", "mg"),
    ("average", "avg"),
    ("accumulator", "acc"),
)


# ----------------------------------------------------------------- learning rate
def _check_learning_rate(name: str, value: Any) -> LearningRate:
    """A real number >= 0, a schedule (or its serialized dict), or a zero-argument callable."""
    if isinstance(value, LearningRateSchedule):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return real(0.0)(name, value)
    if isinstance(value, Mapping):
        return deserialize(dict(value))
    if callable(value):
        try:
            inspect.signature(value).bind()
        except TypeError:
            raise TypeError(
                f"`{name}` must be a zero-argument callable; for step-dependent rates use a "
                "numba_rmsprop.schedules.LearningRateSchedule.") from None
        except ValueError:  # builtins without a signature: accept
            pass
        return value
    raise TypeError(f"`{name}` must be a real number >= 0, a LearningRateSchedule or a "
                    f"zero-argument callable; got {value!r}.")


def _set_learning_rate(opt: "RMSprop", value: LearningRate) -> None:
    if isinstance(opt._learning_rate, LearningRateSchedule) and not isinstance(
            value, LearningRateSchedule) and not callable(value):
        raise TypeError(
            "This optimizer was created with a `LearningRateSchedule` as its "
            "`learning_rate`, hence its learning rate is not settable. Create it with "
            "a float `learning_rate` if you need to set it.")
    opt._learning_rate = _check_learning_rate("learning_rate", value)


def _learning_rate_config(value):
    return serialize(value) if isinstance(value, LearningRateSchedule) else value


class _StepSchedule(LearningRateSchedule):
    """A one-argument callable ``f(step)`` as a schedule (optax's and torch's convention)."""

    def __init__(self, fn: Callable[[int], float]):
        self.fn = fn

    def __call__(self, step):
        return self.fn(step)

    def get_config(self):
        raise TypeError(f"the learning-rate function {self.fn!r} cannot be serialized; "
                        "use a numba_rmsprop.schedules schedule for get_config().")


def _as_framework(cls, names: dict, **kwargs) -> "RMSprop":
    """``cls(**kwargs)``; errors name each argument as the framework calls it.

    ``names`` maps our argument names to the framework's.
    """
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        for ours, theirs in names.items():
            message = message.replace(f"`{ours}`", f"`{theirs}`")
        raise type(exc)(message) from None


def _step_schedule(learning_rate):
    """``learning_rate``, with a one-argument callable wrapped as a schedule."""
    if callable(learning_rate) and not isinstance(learning_rate, LearningRateSchedule):
        try:
            inspect.signature(learning_rate).bind(0)
        except (TypeError, ValueError):
            return learning_rate
        return _StepSchedule(learning_rate)
    return learning_rate


# ----------------------------------------------------------------- state slots
def _shape_dtype(x) -> tuple:
    """Shape and NumPy dtype of a variable.

    Objects exposing ``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA
    tensors) are read through it: a tensor's ``dtype`` is not a NumPy dtype.
    """
    if not isinstance(x, np.ndarray):
        cai = getattr(x, "__cuda_array_interface__", None)
        if cai is not None:
            return tuple(int(n) for n in cai["shape"]), np.dtype(cai["typestr"])
    return tuple(x.shape), np.dtype(x.dtype)


@dataclass
class _Slot:
    """One variable and its optimizer state.

    State arrays have the variable's shape; ``*f`` attributes are flat views
    of them in the variable's memory order, which is what kernels see.
    """

    index: int
    var: Any
    shape: tuple
    dtype: np.dtype
    order: Optional[str]
    size: int
    parallel: bool
    decay: bool
    xf: Any = None
    v: Any = None
    mg: Any = None
    mom: Any = None
    acc: Any = None
    avg: Any = None
    vf: Any = None
    mgf: Any = None
    momf: Any = None
    accf: Any = None
    avgf: Any = None
    group: Any = None
    member: int = -1


# ----------------------------------------------------------------- optimizer
class RMSprop(Configurable):
    """RMSprop exactly as Keras 3 defines it, on arrays updated in place.

    The keyword-only arguments after ``name`` select the variants other
    frameworks implement; their defaults are Keras's. :meth:`like_torch`,
    :meth:`like_optax` and :meth:`like_tf1` set them with each framework's own
    argument names and defaults.

    Parameters
    ----------
    {parameters}

    Notes
    -----
    Unlike Keras, float64 variables are updated in float64 throughout
    (learning rate and schedules included); ``iterations`` counts calls; and
    centered RMSprop clamps ``v - mg**2`` at 0 where rounding made it negative.
    """

    _IGNORED_KEYWORDS = {"decay": "Argument `decay` is no longer supported and will be ignored."}

    learning_rate: LearningRate = hyperparameter(
        0.001, check=_check_learning_rate, type_doc="float, LearningRateSchedule or callable",
        get=lambda opt: opt._current_learning_rate(opt._iterations), set=_set_learning_rate,
        to_config=_learning_rate_config,
        doc="""A real number >= 0, a schedule from ``numba_rmsprop.schedules`` (called with
        the raw call count), or a zero-argument callable. Reading it gives the rate
        the next call uses; it is settable unless it is a schedule.""")
    rho: float = hyperparameter(
        0.9, check=real(0.0, 1.0),
        doc="Discount factor of the mean square (and of the mean gradient when centered).")
    momentum: float = hyperparameter(
        0.0, check=real(0.0),
        doc="Momentum (>= 0); 0 disables the momentum buffer.")
    epsilon: float = hyperparameter(
        1e-7, check=real(0.0),
        doc="Added to the mean square inside the square root (see ``epsilon_in_sqrt``).")
    centered: bool = hyperparameter(
        False, check=boolean,
        doc="Normalise by the estimated variance ``v - mg**2`` instead of the mean square.")
    weight_decay: Optional[float] = hyperparameter(
        None, check=real(0.0, optional=True),
        doc="""Weight decay: decoupled, ``x -= x * weight_decay * lr`` before each update
        (see ``decoupled_weight_decay``).""")
    clipnorm: Optional[float] = hyperparameter(
        None, check=positive(optional=True),
        doc="Clip each gradient to this L2 norm.")
    clipvalue: Optional[float] = hyperparameter(
        None, check=positive(optional=True),
        doc="Clip each gradient element to ``[-clipvalue, clipvalue]``.")
    global_clipnorm: Optional[float] = hyperparameter(
        None, check=positive(optional=True),
        doc="""Clip all gradients of a call together to this global L2 norm. At most one of
        ``clipnorm``, ``clipvalue`` and ``global_clipnorm`` may be set.""")
    use_ema: bool = hyperparameter(
        False, check=boolean,
        doc="Keep an exponential moving average (EMA) of the variables.")
    ema_momentum: float = hyperparameter(
        0.99, check=real(0.0, 1.0),
        doc="EMA momentum.")
    ema_overwrite_frequency: Optional[int] = hyperparameter(
        None, check=integer(1, optional=True),
        doc="Overwrite the variables with their EMA every this many (accumulated) steps.")
    loss_scale_factor: Optional[float] = hyperparameter(
        None, check=positive(optional=True),
        doc="Gradients are divided by it (see :meth:`scale_loss`).")
    gradient_accumulation_steps: Optional[int] = hyperparameter(
        None, check=integer(2, optional=True),
        doc="Update every N-th call with the mean of the N gradients (N >= 2).")
    name: str = hyperparameter(
        "rmsprop", check=text, option=False,
        doc="The optimizer's name.")
    device: str = hyperparameter(
        "auto", check=one_of("auto", "cpu", "cuda"), kw_only=True, option=False,
        in_config=False,
        get=lambda opt: opt._backend.name if opt._backend is not None else opt._device,
        doc="""Where the state lives: ``"cpu"``, ``"cuda"``, or ``"auto"`` (the device of the
        variables given to :meth:`build`). Reading it gives the device in use once
        built.""")
    initial_velocity: float = hyperparameter(
        0.0, check=real(0.0), kw_only=True,
        doc="""Initial value of the mean square ``v`` (TF1 and optax's ``initial_scale``:
        1.0 in TF1).""")
    epsilon_in_sqrt: bool = hyperparameter(
        True, check=boolean, kw_only=True,
        doc="""``sqrt(v + epsilon)`` (Keras, TF1, optax's default); False: ``sqrt(v) + epsilon``
        (torch).""")
    learning_rate_in_momentum: bool = hyperparameter(
        True, check=boolean, kw_only=True,
        doc="""With momentum, the buffer accumulates ``lr * g / denominator`` (Keras, TF1,
        optax); False: it accumulates ``g / denominator`` and the step is
        ``lr * buffer`` (torch; a changed learning rate then scales the whole
        buffer).""")
    decoupled_weight_decay: bool = hyperparameter(
        True, check=boolean, kw_only=True,
        doc="""Keras's decoupled ``x -= x * weight_decay * lr``; False: L2 decay, the
        gradient becomes ``g + weight_decay * x`` (torch).""")
    nesterov: bool = hyperparameter(
        False, check=boolean, kw_only=True,
        doc="""Nesterov momentum (optax): the step is ``direction + momentum * buffer``.
        Needs ``momentum > 0``.""")
    bias_correction: bool = hyperparameter(
        False, check=boolean, kw_only=True,
        doc="""Divide the mean square (and mean gradient) of the t-th update by
        ``1 - rho**t`` (optax).""")
    maximize: bool = hyperparameter(
        False, check=boolean, kw_only=True,
        doc="Maximize the objective: the gradient is negated first (torch).")

    # ------------------------------------------------------------ construction
    def _check_together(self, values: dict) -> None:
        clips = ("clipnorm", "clipvalue", "global_clipnorm")
        if sum(values[c] is not None for c in clips) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                + ", ".join(f"{c}={values[c]}" for c in clips))
        if values["nesterov"] and values["momentum"] == 0:
            raise ValueError("`nesterov=True` needs `momentum` > 0; got momentum=0.")

    def _setup(self, values: dict) -> None:
        if values["device"] == "cuda":
            from . import _cuda

            _cuda.require_cuda()
        self._spec = Spec(values)
        self._planner = _plan.Planner(
            accumulation_steps=values["gradient_accumulation_steps"], use_ema=values["use_ema"],
            ema_momentum=values["ema_momentum"],
            ema_overwrite_frequency=values["ema_overwrite_frequency"],
            bias_correction=values["bias_correction"])
        self._iterations = 0
        self._slots: list[_Slot] = []
        self._by_id: dict[int, _Slot] = {}
        self._backend = None
        self._exclude_vars: list = []  # kept (not only their ids) for pickling
        self._exclude_ids: set[int] = set()
        self._pending_state: Optional[dict] = None
        self._lr_table = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ flavors
    @classmethod
    def like_torch(cls, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                   weight_decay: float = 0, momentum: float = 0, centered: bool = False,
                   maximize: bool = False, **kwargs: Any) -> "RMSprop":
        """``torch.optim.RMSprop``, with its argument names and defaults.

        Epsilon outside the square root, L2 weight decay, the learning rate
        applied outside the momentum buffer. ``lr`` may also be a schedule
        (``schedule(step)`` is the rate of step ``step``, 0-based: what a
        torch scheduler stepped after each ``optimizer.step()`` sets).
        Other keyword arguments (``clipnorm``, ``use_ema``, ...) are passed
        to :class:`RMSprop`.
        """
        if isinstance(weight_decay, numbers.Real) and not isinstance(weight_decay, bool) \
                and weight_decay == 0:
            weight_decay = None
        return _as_framework(
            cls, {"learning_rate": "lr", "rho": "alpha", "epsilon": "eps"},
            learning_rate=_step_schedule(lr), rho=alpha, epsilon=eps, weight_decay=weight_decay,
            momentum=momentum, centered=centered, maximize=maximize, epsilon_in_sqrt=False,
            learning_rate_in_momentum=False, decoupled_weight_decay=False, **kwargs)

    @classmethod
    def like_optax(cls, learning_rate, decay: float = 0.9, eps: float = 1e-8,
                   initial_scale: float = 0.0, eps_in_sqrt: bool = True,
                   centered: bool = False, momentum: Optional[float] = None,
                   nesterov: bool = False, bias_correction: bool = False,
                   **kwargs: Any) -> "RMSprop":
        """``optax.rmsprop``, with its argument names and defaults.

        ``learning_rate`` may be an optax-style schedule, a function of the
        update count. ``momentum=None`` means no momentum (``nesterov`` is
        then ignored, as in optax). Other keyword arguments are passed to
        :class:`RMSprop`.
        """
        if momentum is None:
            momentum, nesterov = 0.0, False
        return _as_framework(
            cls, {"rho": "decay", "epsilon": "eps", "initial_velocity": "initial_scale",
                  "epsilon_in_sqrt": "eps_in_sqrt"},
            learning_rate=_step_schedule(learning_rate), rho=decay, epsilon=eps,
            initial_velocity=initial_scale, epsilon_in_sqrt=eps_in_sqrt, centered=centered,
            momentum=momentum, nesterov=nesterov, bias_correction=bias_correction, **kwargs)

    @classmethod
    def like_tf1(cls, learning_rate, decay: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-10, centered: bool = False, **kwargs: Any) -> "RMSprop":
        """TF1's ``tf.compat.v1.train.RMSPropOptimizer``, with its argument names and defaults.

        The mean square starts at 1. TF1 turns every hyperparameter (the
        learning rate included) into a float32 tensor before casting it to
        the variable's dtype; this keeps them in float64, so with float64
        variables results agree with TF1 to float32 accuracy in the
        hyperparameters (pass ``float(numpy.float32(x))`` values to
        reproduce TF1 exactly). Other keyword arguments are passed to
        :class:`RMSprop`.
        """
        return _as_framework(
            cls, {"rho": "decay"}, learning_rate=_step_schedule(learning_rate), rho=decay,
            momentum=momentum, epsilon=epsilon, centered=centered, initial_velocity=1.0,
            **kwargs)

    # ------------------------------------------------------------ properties
    @property
    def built(self) -> bool:
        """Whether :meth:`build` has run."""
        return self._backend is not None

    @property
    def iterations(self) -> int:
        """Number of ``apply`` calls so far (accumulation-only calls included)."""
        return self._iterations

    @property
    def variables(self) -> list:
        """The variables the optimizer was built with."""
        return [s.var for s in self._slots]

    def _current_learning_rate(self, iteration: int) -> float:
        lr = self._learning_rate
        if type(lr) is float:
            return lr
        if isinstance(lr, LearningRateSchedule):
            if type(lr) in _VECTORISED_SCHEDULES:
                return self._tabulated_rate(lr, iteration)
            value = lr(iteration)
        elif callable(lr):
            value = lr()
        else:
            return lr
        try:
            return float(value)
        except (TypeError, ValueError):
            raise TypeError(f"`learning_rate` returned {value!r}, not a real number.") from None

    def _tabulated_rate(self, schedule: LearningRateSchedule, iteration: int) -> float:
        """``schedule(iteration)`` from a table evaluated in vectorised blocks.

        A scalar call of a built-in schedule costs ~20 us of NumPy overhead;
        one vectorised call per block of steps costs about as much in total.
        The values are bit-identical to scalar calls (same code path).
        """
        table = self._lr_table
        if table is None or table[0] is not schedule or not table[1] <= iteration < table[1] + len(table[2]):
            values = schedule(np.arange(iteration, iteration + _LR_BLOCK, dtype=np.int64))
            table = self._lr_table = (schedule, iteration, values.tolist())
        return table[2][iteration - table[1]]

    # ------------------------------------------------------------ building
    def exclude_from_weight_decay(self, var_list: Optional[Iterable] = None,
                                  var_names: Optional[Iterable[str]] = None) -> None:
        """Exclude variables (by identity) from weight decay; call before :meth:`build`."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before "
                             "the optimizer is built.")
        if var_names:
            raise TypeError("`var_names` is not supported: arrays have no names. "
                            "Pass the arrays themselves as `var_list`.")
        self._exclude_vars = list(var_list or ())
        self._exclude_ids = {id(v) for v in self._exclude_vars}

    def build(self, variables: Sequence) -> None:
        """Create the optimizer state for ``variables`` (no-op when already built)."""
        if self.built:
            return
        variables = list(variables)
        backend = self._backend_for(variables)
        for i, x in enumerate(variables):
            backend.check_variable(x, i)
        if len({id(x) for x in variables}) != len(variables):
            raise ValueError("`variables` contains the same array more than once.")
        slots = [self._make_slot(i, x, backend) for i, x in enumerate(variables)]
        pending = self._pending_state
        if pending is not None:
            self._check_state(pending, slots)
        backend.prepare(slots, self._spec)
        self._slots = slots
        self._by_id = {id(s.var): s for s in slots}
        self._backend = backend
        if pending is not None:
            self._pending_state = None
            self._restore(pending)

    def _backend_for(self, variables: Sequence):
        if not variables:
            raise ValueError("`variables` is empty.")
        devices = {_arrays.device_of(x) for x in variables}
        if len(devices) > 1:
            raise ValueError("`variables` mixes host (NumPy) and CUDA device arrays.")
        device = devices.pop()
        if self._device != "auto" and device != self._device:
            raise ValueError(f"This optimizer was created with device={self._device!r} but "
                             f"the variables are {device} arrays.")
        if device == "cuda":
            from . import _cuda

            return _cuda.CUDABackend()
        from ._cpu_backend import CPUBackend

        return CPUBackend()

    def _make_slot(self, i: int, x, backend) -> _Slot:
        order = backend.memory_order(x)
        shape, dtype = _shape_dtype(x)
        size = int(np.prod(shape, dtype=np.int64))
        slot = _Slot(index=i, var=x, shape=shape, dtype=dtype, order=order, size=size,
                     parallel=backend.use_parallel(size * dtype.itemsize),
                     decay=self._weight_decay is not None and id(x) not in self._exclude_ids)
        slot.xf = backend.flat(x, order) if order is not None else None
        for _, attr in STATE_KINDS:
            if self._needs(attr):
                a = backend.full_like(x, order, self._initial_value(attr))
                setattr(slot, attr, a)
                setattr(slot, attr + "f", backend.flat(a, order or "C"))
        return slot

    def _initial_value(self, attr: str) -> float:
        return self._initial_velocity if attr == "v" else 0.0

    def _needs(self, attr: str) -> bool:
        return {
            "v": True,
            "mom": self._momentum > 0,
            "mg": self._centered,
            "avg": self._use_ema,
            "acc": self._gradient_accumulation_steps is not None,
        }[attr]

    # ------------------------------------------------------------ applying
    def apply(self, grads: Sequence, variables: Optional[Sequence] = None) -> int:
        """Update ``variables`` in place from ``grads``; returns the new ``iterations``.

        ``variables`` defaults to those the optimizer was built with; on the
        first call it builds the optimizer. A ``None`` gradient skips its
        variable (with a warning), as in Keras.
        """
        with self._lock:
            full = self._fast_path_grads(grads, variables)
            if full is None:
                pairs, ema_slots = self._validate(grads, variables)
                if pairs is None:
                    return self._iterations
            plan = self._planner(self._iterations, self._current_learning_rate(self._iterations))
            if full is not None:
                self._backend.execute_full(plan, self._spec, full)
            else:
                self._backend.execute(plan, self._spec, pairs, ema_slots)
                if plan.update and self._gradient_accumulation_steps:
                    # base_optimizer.py resets every accumulator on an update
                    # call, including those of variables without a gradient.
                    given = {id(s) for s, _ in pairs}
                    for s in self._slots:
                        if id(s) not in given:
                            self._backend.copy_into(s.acc, np.zeros(s.shape, s.dtype))
            self._iterations += 1
            return self._iterations

    def _fast_path_grads(self, grads, variables):
        """Gradients in build order when the call is the common, fully valid one.

        That is: the optimizer is built, ``variables`` is None or the built
        variables in build order, and the backend accepts the gradients as
        they are (:meth:`~numba_rmsprop._backend.Backend.full_gradients`).
        Anything else returns None and takes the checked path, which also
        produces the error messages.
        """
        slots = self._slots
        if self._backend is None:
            return None
        if variables is not None:
            if len(variables) != len(slots):
                return None
            for x, s in zip(variables, slots):
                if x is not s.var:
                    return None
        return self._backend.full_gradients(grads, slots)

    def apply_gradients(self, grads_and_vars: Iterable) -> int:
        """Keras's ``apply_gradients``: a list of ``(gradient, variable)`` pairs."""
        pairs = list(grads_and_vars)
        if not pairs:
            return self._iterations
        grads, variables = zip(*pairs)
        return self.apply(list(grads), list(variables))

    def _validate(self, grads, variables):
        """Check everything and build if needed; returns (pairs, ema_slots)."""
        if isinstance(grads, (np.ndarray,)) or not isinstance(grads, (list, tuple)):
            if _arrays.is_cuda_array(grads) or isinstance(grads, np.ndarray):
                raise TypeError("`grads` must be a list of arrays, one per variable.")
            grads = list(grads)
        if len(grads) == 0:
            return None, None
        if variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be "
                    "built on a list of variables. Call `optimizer.build(variables)` first.")
            if len(grads) != len(self._slots):
                raise ValueError(
                    f"Received {len(grads)} gradients, but the optimizer tracks "
                    f"{len(self._slots)} variables.")
            slots = self._slots
        else:
            if isinstance(variables, np.ndarray) or _arrays.is_cuda_array(variables):
                raise TypeError("`variables` must be a list of arrays.")
            variables = list(variables)
            if len(variables) != len(grads):
                raise ValueError(f"Got {len(grads)} gradients for {len(variables)} variables.")
            if not self.built:
                # Check the gradients against the variables before building,
                # so that a failed first call leaves the optimizer unbuilt.
                backend = self._backend_for(variables)
                for i, (x, g) in enumerate(zip(variables, grads)):
                    backend.check_variable(x, i)
                    if g is not None:
                        backend.as_gradient(g, x, i)
                if all(g is None for g in grads):
                    raise ValueError("No gradients provided for any variable.")
                self.build(variables)
            slots = [self._slot_of(x, i) for i, x in enumerate(variables)]
            if len({id(s) for s in slots}) != len(slots):
                raise ValueError("`variables` contains the same variable more than once.")
        backend = self._backend
        pairs, skipped = [], []
        for i, (slot, g) in enumerate(zip(slots, grads)):
            if g is None:
                skipped.append(slot.index)
                continue
            backend.check_writeable(slot.var, i)
            pairs.append((slot, backend.as_gradient(g, slot.var, i)))
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        if skipped:
            warnings.warn(f"Gradients do not exist for variables {skipped} (by build index).",
                          stacklevel=3)
        ema_slots = []
        if self._use_ema:
            given = {id(s) for s, _ in pairs}
            ema_slots = [s for s in self._slots if id(s) not in given]
        return pairs, ema_slots

    def _slot_of(self, x, i: int) -> _Slot:
        slot = self._by_id.get(id(x))
        if slot is None:
            slot = self._backend.find_same_memory(x, self._slots)
        if slot is None:
            raise ValueError(
                f"Unknown variable: variables[{i}] (shape {getattr(x, 'shape', None)}). This "
                "optimizer can only be called for the variables it was built with. When "
                "working with new variables, create a new optimizer.")
        return slot

    # ------------------------------------------------------------ losses, EMA
    def scale_loss(self, loss):
        """Multiply ``loss`` by ``loss_scale_factor`` when set."""
        if self._loss_scale_factor is not None:
            return loss * self._loss_scale_factor
        return loss

    def finalize_variable_values(self, variables: Optional[Sequence] = None) -> None:
        """With ``use_ema``, copy each variable's moving average into it, in place."""
        if not self._use_ema or not self.built:
            return
        variables = self.variables if variables is None else list(variables)
        slots = [self._slot_of(x, i) for i, x in enumerate(variables)]
        for slot in slots:
            self._backend.copy_into(slot.var, slot.avg)

    def moving_averages(self, variables: Optional[Sequence] = None) -> list:
        """With ``use_ema``, copies of the moving averages, one per variable.

        In the order of ``variables`` (default: the order they were built
        with), as host NumPy arrays of each variable's shape and dtype; the
        variables and the state are left as they are. This is the way to
        evaluate the EMA weights and keep training the raw ones;
        :meth:`finalize_variable_values` writes the same values into the
        variables. (``state_dict()["average/<i>"]`` holds them by build index.)
        """
        if not self.built:
            raise ValueError("The optimizer is not built yet; it has no moving averages.")
        if not self._use_ema:
            raise ValueError("This optimizer keeps no moving averages: create it with "
                             "use_ema=True.")
        variables = self.variables if variables is None else list(variables)
        slots = [self._slot_of(x, i) for i, x in enumerate(variables)]
        with self._lock:
            return [self._backend.to_host(slot.avg) for slot in slots]

    # ------------------------------------------------------------ config
    @classmethod
    def from_config(cls, config: Mapping, custom_objects: Optional[dict] = None) -> "RMSprop":
        """Create an optimizer from :meth:`get_config` output (Keras's configs work too)."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), Mapping):
            config["learning_rate"] = deserialize(dict(config["learning_rate"]))
        if config.get("name") is None:
            config.pop("name", None)
        return cls(**config)

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """All optimizer state as host NumPy arrays and numbers, in a flat dict.

        Keys: ``iterations``, ``learning_rate`` (constant rates only),
        ``n_variables`` and ``<kind>/<i>`` for each state array, so that
        ``np.savez(path, **opt.state_dict())`` saves it whole.
        """
        if not self.built:
            raise ValueError("The optimizer is not built yet; it has no state.")
        with self._lock:
            return self._host_state()

    def _host_state(self) -> dict:
        state = {"iterations": int(self._iterations), "n_variables": len(self._slots)}
        if isinstance(self._learning_rate, float):
            state["learning_rate"] = self._learning_rate
        for slot in self._slots:
            for kind, attr in STATE_KINDS:
                a = getattr(slot, attr)
                if a is not None:
                    state[f"{kind}/{slot.index}"] = self._backend.to_host(a)
        return state

    def load_state_dict(self, state: Mapping) -> None:
        """Restore :meth:`state_dict` output (e.g. ``dict(np.load(path))``).

        On an optimizer not built yet, the state is kept and restored by
        :meth:`build`. Everything is checked before anything changes.
        """
        state = dict(state)
        with self._lock:
            if not self.built:
                self._check_state(state, None)
                self._pending_state = state
                return
            self._check_state(state, self._slots)
            self._restore(state)

    def _check_state(self, state: dict, slots) -> None:
        for key in ("iterations", "n_variables"):
            if key not in state:
                raise ValueError(f"`state` lacks {key!r}; it is not a state_dict().")
        it = np.asarray(state["iterations"])
        if it.shape != () or it.dtype.kind not in "iu" or int(it) < 0:
            raise ValueError(f"`state['iterations']` must be a non-negative integer; got {it!r}.")
        if slots is None:
            return
        n = int(np.asarray(state["n_variables"]))
        if n != len(slots):
            raise ValueError(f"`state` holds {n} variables; this optimizer has {len(slots)}.")
        expected = {f"{kind}/{s.index}": s for s in slots for kind, attr in STATE_KINDS
                    if getattr(s, attr) is not None}
        extra = {k for k in state if "/" in k} - set(expected)
        missing = set(expected) - set(state)
        if missing or extra:
            raise ValueError(
                "`state` does not match this optimizer's configuration: "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}.")
        for key, s in expected.items():
            a = np.asarray(state[key])
            if a.shape != s.shape or a.dtype != s.dtype:
                raise ValueError(f"`state[{key!r}]` has shape {a.shape} and dtype {a.dtype}; "
                                 f"expected {s.shape} and {s.dtype}.")

    def _restore(self, state: dict) -> None:
        self._iterations = int(np.asarray(state["iterations"]))
        if "learning_rate" in state and not isinstance(self._learning_rate, LearningRateSchedule) \
                and not callable(self._learning_rate):
            self._learning_rate = float(np.asarray(state["learning_rate"]))
        for slot in self._slots:
            for kind, attr in STATE_KINDS:
                a = getattr(slot, attr)
                if a is not None:
                    self._backend.copy_into(a, np.asarray(state[f"{kind}/{slot.index}"]))

    # ------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        """What ``pickle`` and ``copy.deepcopy`` keep.

        The hyperparameters, the counters, the variables and the state
        (:meth:`state_dict`'s arrays), never the compiled backend: unpickling
        builds a fresh one on the restored variables (see ``__setstate__``).
        """
        with self._lock:
            state = {
                "hyperparameters": {h.name: getattr(self, h.attr) for h in self._hyperparameters},
                "iterations": self._iterations,
                "pending_state": self._pending_state,
                "exclude": list(self._exclude_vars),
            }
            if self.built:
                if self._backend.name != "cpu":
                    raise TypeError(
                        f"Cannot pickle an optimizer whose state lives on a {self._backend.name} "
                        "device. Save `opt.get_config()` and `opt.state_dict()` (host NumPy "
                        "arrays) instead, and restore with `RMSprop.from_config(config)` and "
                        "`load_state_dict(state)` before building on the device arrays.")
                state["variables"] = [s.var for s in self._slots]
                state["decay"] = [s.decay for s in self._slots]
                state["state"] = self._host_state()
            return state

    def __setstate__(self, state: dict) -> None:
        """Rebuild from ``__getstate__``'s output.

        A built optimizer is built again on the unpickled variables (pickle
        keeps identity within one dump: ``pickle.loads(pickle.dumps((opt,
        variables)))`` gives an optimizer bound to the unpickled
        ``variables``; ``copy.deepcopy(opt)`` gives an independent one bound
        to copies, ``opt.variables``), and its state and counters are
        restored, so it continues bit for bit.
        """
        hyper = dict(state["hyperparameters"])
        for name, value in hyper.items():
            setattr(self, "_" + name, value)
        self._setup(hyper)
        self._exclude_vars = list(state["exclude"])
        self._exclude_ids = {id(v) for v in self._exclude_vars}
        self._iterations = int(state["iterations"])
        self._pending_state = state["pending_state"]
        if "variables" in state:
            variables = state["variables"]
            self._exclude_ids |= {id(v) for v, d in zip(variables, state["decay"]) if not d}
            self.build(variables)
            self._restore(state["state"])

    def __repr__(self) -> str:
        return f"RMSprop(name={self.name!r}, iterations={self._iterations}, device={self.device!r})"
