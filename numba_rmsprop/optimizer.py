"""``RMSprop``: Keras 3's RMSprop over arrays updated in place.

This module owns the arguments, their validation, the optimizer state, the
counters and the plan of each call. The arithmetic lives in the backends
(``_cpu`` for NumPy arrays, ``_cuda`` for device arrays), which execute the
same :class:`~numba_rmsprop._plan.StepPlan`.
"""

from __future__ import annotations

import inspect
import math
import numbers
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from . import _arrays, _plan
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


# ----------------------------------------------------------------- validation
def _real(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be finite; got {value!r}.")
    return value


def _in_range(name: str, value: Any, lo: float, hi: float = math.inf) -> float:
    value = _real(name, value)
    if not lo <= value <= hi:
        rng = f"[{lo}, {hi}]" if hi != math.inf else f">= {lo}"
        raise ValueError(f"`{name}` must be in {rng}; got {value!r}.")
    return value


def _positive_or_none(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    value = _real(name, value)
    if value <= 0:
        raise ValueError(f"`{name}` must be > 0, or None to disable it; got {value!r}.")
    return value


def _int_or_none(name: str, value: Any, lo: int) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer >= {lo} or None; got {value!r}.")
    if value < lo:
        raise ValueError(f"`{name}` must be an integer >= {lo} or None; got {value!r}.")
    return int(value)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool; got {value!r}.")
    return bool(value)


def _check_learning_rate(value: Any) -> LearningRate:
    """A real number >= 0, a schedule, or a zero-argument callable."""
    if isinstance(value, LearningRateSchedule):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return _in_range("learning_rate", value, 0.0)
    if isinstance(value, Mapping):
        return deserialize(dict(value))
    if callable(value):
        try:
            inspect.signature(value).bind()
        except TypeError:
            raise TypeError(
                "`learning_rate` callable must take no arguments (use a "
                "numba_rmsprop.schedules.LearningRateSchedule for step-dependent rates)."
            ) from None
        except ValueError:  # builtins without a signature: accept
            pass
        return value
    raise TypeError(
        "`learning_rate` must be a real number, a LearningRateSchedule or a "
        f"zero-argument callable; got {value!r}."
    )


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
class RMSprop:
    """RMSprop exactly as Keras 3 defines it, on arrays updated in place.

    Parameters
    ----------
    learning_rate : float, LearningRateSchedule or callable, default 0.001
        A real number, a schedule (called with the raw call count), or a
        zero-argument callable.
    rho : float, default 0.9
        Discount of the squared-gradient average, in [0, 1].
    momentum : float, default 0.0
        Momentum (>= 0). The buffer accumulates learning-rate-scaled increments.
    epsilon : float, default 1e-7
        Added inside the square root (>= 0).
    centered : bool, default False
        Normalise by the estimated variance instead of the second moment.
    weight_decay : float, optional
        Decoupled decay ``x -= x * weight_decay * lr`` before each update.
    clipnorm, clipvalue, global_clipnorm : float, optional
        Gradient clipping per variable by norm, elementwise by value, or over
        all gradients by their global norm. At most one may be set.
    use_ema : bool, default False
        Keep an exponential moving average of the variables.
    ema_momentum : float, default 0.99
        EMA momentum, in [0, 1].
    ema_overwrite_frequency : int, optional
        Overwrite the variables with their EMA every this many (accumulated)
        steps.
    loss_scale_factor : float, optional
        Gradients are divided by it (see :meth:`scale_loss`).
    gradient_accumulation_steps : int, optional
        Update every N-th call with the mean of the N gradients (N >= 2).
    name : str, default "rmsprop"
    device : {"auto", "cpu", "cuda"}, default "auto"
        Where the state lives. "auto" follows the variables given to
        :meth:`build`.

    Notes
    -----
    Unlike Keras, float64 variables are updated in float64 throughout
    (learning rate and schedules included); ``iterations`` counts calls; and
    centered RMSprop clamps ``v - mg**2`` at 0 where rounding made it negative.
    """

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        weight_decay: Optional[float] = None,
        clipnorm: Optional[float] = None,
        clipvalue: Optional[float] = None,
        global_clipnorm: Optional[float] = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: Optional[int] = None,
        loss_scale_factor: Optional[float] = None,
        gradient_accumulation_steps: Optional[int] = None,
        name: str = "rmsprop",
        device: str = "auto",
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.")
        if kwargs:
            raise TypeError(f"Argument(s) not recognized: {sorted(kwargs)}.")
        self._learning_rate = _check_learning_rate(learning_rate)
        self._rho = _in_range("rho", rho, 0.0, 1.0)
        self._momentum = _in_range("momentum", momentum, 0.0)
        self._epsilon = _in_range("epsilon", epsilon, 0.0)
        self._centered = _bool("centered", centered)
        self._weight_decay = None if weight_decay is None else _in_range("weight_decay", weight_decay, 0.0)
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        if sum(v is not None for v in clips.values()) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}"
            )
        self._clipnorm = _positive_or_none("clipnorm", clipnorm)
        self._clipvalue = _positive_or_none("clipvalue", clipvalue)
        self._global_clipnorm = _positive_or_none("global_clipnorm", global_clipnorm)
        self._use_ema = _bool("use_ema", use_ema)
        self._ema_momentum = _in_range("ema_momentum", ema_momentum, 0.0, 1.0)
        self._ema_overwrite_frequency = _int_or_none("ema_overwrite_frequency", ema_overwrite_frequency, 1)
        self._loss_scale_factor = _positive_or_none("loss_scale_factor", loss_scale_factor)
        self._gradient_accumulation_steps = _int_or_none(
            "gradient_accumulation_steps", gradient_accumulation_steps, 2)
        if not isinstance(name, str):
            raise TypeError(f"`name` must be a str; got {name!r}.")
        self.name = name
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"`device` must be 'auto', 'cpu' or 'cuda'; got {device!r}.")
        self._device = device
        if device == "cuda":
            from . import _cuda

            _cuda.require_cuda()

        self._spec = Spec(
            rho=self._rho, momentum=self._momentum, epsilon=self._epsilon,
            centered=self._centered, weight_decay=self._weight_decay,
            clipnorm=self._clipnorm, clipvalue=self._clipvalue,
            global_clipnorm=self._global_clipnorm, loss_scale_factor=self._loss_scale_factor,
            gradient_accumulation_steps=self._gradient_accumulation_steps,
            use_ema=self._use_ema, ema_momentum=self._ema_momentum,
        )
        self._iterations = 0
        self._slots: list[_Slot] = []
        self._by_id: dict[int, _Slot] = {}
        self._backend = None
        self._exclude_ids: set[int] = set()
        self._pending_state: Optional[dict] = None
        self._lr_table = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ properties
    rho = property(lambda self: self._rho, doc="Discount of the squared-gradient average.")
    momentum = property(lambda self: self._momentum, doc="Momentum.")
    epsilon = property(lambda self: self._epsilon, doc="Epsilon, inside the square root.")
    centered = property(lambda self: self._centered, doc="Whether RMSprop is centered.")
    weight_decay = property(lambda self: self._weight_decay, doc="Decoupled weight decay.")
    clipnorm = property(lambda self: self._clipnorm, doc="Per-variable clip norm.")
    clipvalue = property(lambda self: self._clipvalue, doc="Elementwise clip value.")
    global_clipnorm = property(lambda self: self._global_clipnorm, doc="Global clip norm.")
    use_ema = property(lambda self: self._use_ema, doc="Whether an EMA of the weights is kept.")
    ema_momentum = property(lambda self: self._ema_momentum, doc="EMA momentum.")
    ema_overwrite_frequency = property(lambda self: self._ema_overwrite_frequency,
                                       doc="Overwrite weights with their EMA this often.")
    loss_scale_factor = property(lambda self: self._loss_scale_factor, doc="Loss scale factor.")
    gradient_accumulation_steps = property(lambda self: self._gradient_accumulation_steps,
                                           doc="Number of calls accumulated per update.")

    @property
    def built(self) -> bool:
        """Whether :meth:`build` has run."""
        return self._backend is not None

    @property
    def iterations(self) -> int:
        """Number of ``apply`` calls so far (accumulation-only calls included)."""
        return self._iterations

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda"`` once built; the requested device before."""
        return self._backend.name if self._backend is not None else self._device

    @property
    def variables(self) -> list:
        """The variables the optimizer was built with."""
        return [s.var for s in self._slots]

    @property
    def learning_rate(self) -> float:
        """The learning rate the next call will use."""
        return self._current_learning_rate(self._iterations)

    @learning_rate.setter
    def learning_rate(self, value: LearningRate) -> None:
        if isinstance(self._learning_rate, LearningRateSchedule) and not isinstance(
            value, (LearningRateSchedule,)
        ) and not callable(value):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` as its "
                "`learning_rate`, hence its learning rate is not settable. Create it with "
                "a float `learning_rate` if you need to set it."
            )
        self._learning_rate = _check_learning_rate(value)

    def _current_learning_rate(self, iteration: int) -> float:
        lr = self._learning_rate
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
        self._exclude_ids = {id(v) for v in (var_list or ())}

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
        prepare = getattr(backend, "prepare", None)
        if prepare is not None:
            prepare(slots, self._spec)
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
                a = backend.zeros_like(x, order)
                setattr(slot, attr, a)
                setattr(slot, attr + "f", backend.flat(a, order or "C"))
        return slot

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
            plan = _plan.make_plan(
                self._iterations,
                self._current_learning_rate(self._iterations),
                accumulation_steps=self._gradient_accumulation_steps,
                use_ema=self._use_ema,
                ema_momentum=self._ema_momentum,
                ema_overwrite_frequency=self._ema_overwrite_frequency,
            )
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
        variables in build order, and every gradient is an ndarray of exactly
        its variable's shape and dtype. Anything else returns None and takes
        the checked path, which also produces the error messages.
        """
        slots = self._slots
        backend = self._backend
        if backend is None or not hasattr(backend, "execute_full"):
            return None
        if type(grads) is not list and type(grads) is not tuple:
            return None
        if len(grads) != len(slots):
            return None
        if variables is not None:
            if len(variables) != len(slots):
                return None
            for x, s in zip(variables, slots):
                if x is not s.var:
                    return None
        for g, s in zip(grads, slots):
            if type(g) is not np.ndarray or g.dtype is not s.dtype or g.shape != s.shape \
                    or not s.var.flags.writeable:
                return None
        return grads

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

    # ------------------------------------------------------------ config
    def get_config(self) -> dict:
        """Keras-compatible config; schedules are serialized as dicts."""
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = serialize(lr)
        return {
            "name": self.name,
            "learning_rate": lr,
            "weight_decay": self._weight_decay,
            "clipnorm": self._clipnorm,
            "global_clipnorm": self._global_clipnorm,
            "clipvalue": self._clipvalue,
            "use_ema": self._use_ema,
            "ema_momentum": self._ema_momentum,
            "ema_overwrite_frequency": self._ema_overwrite_frequency,
            "loss_scale_factor": self._loss_scale_factor,
            "gradient_accumulation_steps": self._gradient_accumulation_steps,
            "rho": self._rho,
            "momentum": self._momentum,
            "epsilon": self._epsilon,
            "centered": self._centered,
        }

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

    def __repr__(self) -> str:
        return f"RMSprop(name={self.name!r}, iterations={self._iterations}, device={self.device!r})"
