"""``RMSprop``: Keras 3's RMSprop over arrays updated in place, and its variants.

This module owns the arguments (declared once, in the class body, as
:func:`~numba_rmsprop.engine.hyperparameters.hyperparameter` entries), the
optimizer state, the counters and the plan of each call. The arithmetic
lives in the element rule (:mod:`numba_rmsprop.engine.rule`), which the backends
(:mod:`numba_rmsprop.engine.cpu.backend` for NumPy arrays,
:mod:`numba_rmsprop.engine.cuda.backend` for device arrays; interface in
:mod:`numba_rmsprop.engine.backend`) compile into their kernels.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..engine import plan as _plan
from ..engine.hyperparameters import (
    Configurable,
    boolean,
    hyperparameter,
    integer,
    one_of,
    positive,
    real,
    text,
)
from ..engine.spec import Spec
from ..schedules import LearningRateSchedule, deserialize
from .checkpoints import Checkpoints
from .flavors import Flavors
from .learning_rate import (
    VECTORISED_SCHEDULES,
    LearningRate,
    check_learning_rate,
    learning_rate_config,
    set_learning_rate,
)
from .slots import Slot, Variables

if TYPE_CHECKING:
    from typing_extensions import Never  # typing.Never from Python 3.11

_LR_BLOCK = 256


class RMSprop(Configurable, Variables, Checkpoints, Flavors):
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
        0.001,
        check=check_learning_rate,
        type_doc="float, LearningRateSchedule or callable",
        get=lambda opt: opt._current_learning_rate(opt._iterations),
        set=set_learning_rate,
        to_config=learning_rate_config,
        doc="""A real number >= 0, a schedule from ``numba_rmsprop.schedules`` (called with
        the raw call count), or a zero-argument callable. Reading it gives the rate
        the next call uses; it is settable unless it is a schedule.""",
    )
    rho: float = hyperparameter(
        0.9,
        check=real(0.0, 1.0),
        doc="Discount factor of the mean square (and of the mean gradient when centered).",
    )
    momentum: float = hyperparameter(
        0.0, check=real(0.0), doc="Momentum (>= 0); 0 disables the momentum buffer."
    )
    epsilon: float = hyperparameter(
        1e-7,
        check=real(0.0),
        doc="Added to the mean square inside the square root (see ``epsilon_in_sqrt``).",
    )
    centered: bool = hyperparameter(
        False,
        check=boolean,
        doc="Normalise by the estimated variance ``v - mg**2`` instead of the mean square.",
    )
    weight_decay: float | None = hyperparameter(
        None,
        check=real(0.0, optional=True),
        doc="""Weight decay: decoupled, ``x -= x * weight_decay * lr`` before each update
        (see ``decoupled_weight_decay``).""",
    )
    clipnorm: float | None = hyperparameter(
        None, check=positive(optional=True), doc="Clip each gradient to this L2 norm."
    )
    clipvalue: float | None = hyperparameter(
        None,
        check=positive(optional=True),
        doc="Clip each gradient element to ``[-clipvalue, clipvalue]``.",
    )
    global_clipnorm: float | None = hyperparameter(
        None,
        check=positive(optional=True),
        doc="""Clip all gradients of a call together to this global L2 norm. At most one of
        ``clipnorm``, ``clipvalue`` and ``global_clipnorm`` may be set.""",
    )
    use_ema: bool = hyperparameter(
        False, check=boolean, doc="Keep an exponential moving average (EMA) of the variables."
    )
    ema_momentum: float = hyperparameter(0.99, check=real(0.0, 1.0), doc="EMA momentum.")
    ema_overwrite_frequency: int | None = hyperparameter(
        None,
        check=integer(1, optional=True),
        doc="Overwrite the variables with their EMA every this many (accumulated) steps.",
    )
    loss_scale_factor: float | None = hyperparameter(
        None,
        check=positive(optional=True),
        doc="Gradients are divided by it (see :meth:`scale_loss`).",
    )
    gradient_accumulation_steps: int | None = hyperparameter(
        None,
        check=integer(2, optional=True),
        doc="Update every N-th call with the mean of the N gradients (N >= 2).",
    )
    name: str = hyperparameter("rmsprop", check=text, option=False, doc="The optimizer's name.")
    device: Literal["auto", "cpu", "cuda"] = hyperparameter(
        "auto",
        check=one_of("auto", "cpu", "cuda"),
        type_doc='{"auto", "cpu", "cuda"}',
        kw_only=True,
        option=False,
        in_config=False,
        get=lambda opt: opt._backend.name if opt._backend is not None else opt._device,
        doc="""Where the state lives: ``"cpu"``, ``"cuda"``, or ``"auto"`` (the device of the
        variables given to :meth:`build`). Reading it gives the device in use once
        built.""",
    )
    initial_velocity: float = hyperparameter(
        0.0,
        check=real(0.0),
        kw_only=True,
        doc="""Initial value of the mean square ``v`` (TF1 and optax's ``initial_scale``:
        1.0 in TF1).""",
    )
    epsilon_in_sqrt: bool = hyperparameter(
        True,
        check=boolean,
        kw_only=True,
        doc="""``sqrt(v + epsilon)`` (Keras, TF1, optax's default); False: ``sqrt(v) + epsilon``
        (torch).""",
    )
    learning_rate_in_momentum: bool = hyperparameter(
        True,
        check=boolean,
        kw_only=True,
        doc="""With momentum, the buffer accumulates ``lr * g / denominator`` (Keras, TF1,
        optax); False: it accumulates ``g / denominator`` and the step is
        ``lr * buffer`` (torch; a changed learning rate then scales the whole
        buffer).""",
    )
    decoupled_weight_decay: bool = hyperparameter(
        True,
        check=boolean,
        kw_only=True,
        doc="""Keras's decoupled ``x -= x * weight_decay * lr``; False: L2 decay, the
        gradient becomes ``g + weight_decay * x`` (torch).""",
    )
    nesterov: bool = hyperparameter(
        False,
        check=boolean,
        kw_only=True,
        doc="""Nesterov momentum (optax): the step is ``direction + momentum * buffer``.
        Needs ``momentum > 0``.""",
    )
    bias_correction: bool = hyperparameter(
        False,
        check=boolean,
        kw_only=True,
        doc="""Divide the mean square (and mean gradient) of the t-th update by
        ``1 - rho**t`` (optax).""",
    )
    maximize: bool = hyperparameter(
        False,
        check=boolean,
        kw_only=True,
        doc="Maximize the objective: the gradient is negated first (torch).",
    )

    # ------------------------------------------------------------ construction

    def __init__(
        self,
        learning_rate: LearningRate = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
        centered: bool = False,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        use_ema: bool = False,
        ema_momentum: float = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor: float | None = None,
        gradient_accumulation_steps: int | None = None,
        name: str = "rmsprop",
        *,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        initial_velocity: float = 0.0,
        epsilon_in_sqrt: bool = True,
        learning_rate_in_momentum: bool = True,
        decoupled_weight_decay: bool = True,
        nesterov: bool = False,
        bias_correction: bool = False,
        maximize: bool = False,
        **kwargs: Never,
    ) -> None:
        """Create an RMSprop; see the class docstring for the arguments. ``kwargs``
        takes Keras's legacy ``decay`` (ignored with a warning, as Keras does); any
        other keyword raises ``TypeError``."""
        values = dict(locals())
        del values["self"], values["kwargs"]
        self._configure(values, kwargs)

    def _check_together(self, values: dict) -> None:
        clips = ("clipnorm", "clipvalue", "global_clipnorm")
        if sum(values[c] is not None for c in clips) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                + ", ".join(f"{c}={values[c]}" for c in clips)
            )
        if values["nesterov"] and values["momentum"] == 0:
            raise ValueError("`nesterov=True` needs `momentum` > 0; got momentum=0.")

    def _setup(self, values: dict) -> None:
        if values["device"] == "cuda":
            from ..engine.cuda.driver import require_cuda

            require_cuda()
        self._spec = Spec(values)
        self._planner = _plan.Planner(
            accumulation_steps=values["gradient_accumulation_steps"],
            use_ema=values["use_ema"],
            ema_momentum=values["ema_momentum"],
            ema_overwrite_frequency=values["ema_overwrite_frequency"],
            bias_correction=values["bias_correction"],
        )
        self._iterations = 0
        self._slots: list[Slot] = []
        self._by_id: dict[int, Slot] = {}
        self._backend = None
        self._exclude_vars: list = []  # kept (not only their ids) for pickling
        self._exclude_ids: set[int] = set()
        self._pending_state: dict | None = None
        self._lr_table = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        """Whether :meth:`build` has run."""
        return self._backend is not None

    @property
    def iterations(self) -> int:
        """Number of ``apply`` calls so far (accumulation-only calls included)."""
        return self._iterations

    def _current_learning_rate(self, iteration: int) -> float:
        lr = self._learning_rate
        if type(lr) is float:
            return lr
        if isinstance(lr, LearningRateSchedule):
            if type(lr) in VECTORISED_SCHEDULES:
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
        if (
            table is None
            or table[0] is not schedule
            or not table[1] <= iteration < table[1] + len(table[2])
        ):
            values = schedule(np.arange(iteration, iteration + _LR_BLOCK, dtype=np.int64))
            table = self._lr_table = (schedule, iteration, values.tolist())
        return table[2][iteration - table[1]]

    def apply(self, grads: Sequence, variables: Sequence | None = None) -> int:
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
        they are (:meth:`~numba_rmsprop.engine.backend.Backend.full_gradients`).
        Anything else returns None and takes the checked path, which also
        produces the error messages.
        """
        slots = self._slots
        if self._backend is None:
            return None
        if variables is not None:
            if len(variables) != len(slots):
                return None
            for x, s in zip(variables, slots, strict=False):
                if x is not s.var:
                    return None
        return self._backend.full_gradients(grads, slots)

    def apply_gradients(self, grads_and_vars: Iterable) -> int:
        """Keras's ``apply_gradients``: a list of ``(gradient, variable)`` pairs."""
        pairs = list(grads_and_vars)
        if not pairs:
            return self._iterations
        grads, variables = zip(*pairs, strict=False)
        return self.apply(list(grads), list(variables))

    def scale_loss(self, loss):
        """Multiply ``loss`` by ``loss_scale_factor`` when set."""
        if self._loss_scale_factor is not None:
            return loss * self._loss_scale_factor
        return loss

    @classmethod
    def from_config(cls, config: Mapping, custom_objects: dict | None = None) -> RMSprop:
        """Create an optimizer from :meth:`get_config` output (Keras's configs work too)."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), Mapping):
            config["learning_rate"] = deserialize(dict(config["learning_rate"]))
        if config.get("name") is None:
            config.pop("name", None)
        return cls(**config)

    def __repr__(self) -> str:
        return f"RMSprop(name={self.name!r}, iterations={self._iterations}, device={self.device!r})"
