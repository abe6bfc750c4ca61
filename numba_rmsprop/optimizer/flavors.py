"""RMSprop as torch, optax and TF1 define it: constructors with each framework's names.

Each returns an ordinary :class:`~numba_rmsprop.RMSprop` whose keyword-only
variant switches (``epsilon_in_sqrt``, ``learning_rate_in_momentum``,
``decoupled_weight_decay``, ``nesterov``, ``bias_correction``,
``initial_velocity``, ``maximize``) are set as that framework computes.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Literal, TypedDict

from .learning_rate import StepLearningRate, step_schedule

if TYPE_CHECKING:  # for annotations only
    from typing_extensions import Unpack  # typing.Unpack from Python 3.11

    from .rmsprop import RMSprop


class KerasExtras(TypedDict, total=False):
    """Keras's features that every flavor takes besides its framework's own arguments
    (passed on to :class:`~numba_rmsprop.RMSprop`)."""

    clipnorm: float | None
    clipvalue: float | None
    global_clipnorm: float | None
    use_ema: bool
    ema_momentum: float
    ema_overwrite_frequency: int | None
    loss_scale_factor: float | None
    gradient_accumulation_steps: int | None
    name: str
    device: Literal["auto", "cpu", "cuda"]


#: Their names.
EXTRAS = tuple(KerasExtras.__annotations__)

_NO_WEIGHT_DECAY = (
    "{framework} has no weight decay (Keras's decoupled decay: RMSprop(weight_decay=...))"
)

#: Per flavor: the RMSprop arguments it sets itself, and why another value is refused.
FIXED = {
    "torch": {
        "epsilon_in_sqrt": "torch adds eps outside the square root",
        "learning_rate_in_momentum": "torch multiplies the momentum buffer by lr",
        "decoupled_weight_decay": "torch's weight_decay is L2 (coupled)",
        "nesterov": "torch's RMSprop has no Nesterov momentum",
        "bias_correction": "torch's RMSprop has no bias correction",
        "initial_velocity": "torch's mean square starts at 0",
    },
    "optax": {
        "learning_rate_in_momentum": "optax's trace accumulates the scaled updates",
        "decoupled_weight_decay": _NO_WEIGHT_DECAY.format(framework="optax.rmsprop"),
        "weight_decay": _NO_WEIGHT_DECAY.format(framework="optax.rmsprop"),
        "maximize": "optax.rmsprop minimizes",
    },
    "tf1": {
        "initial_velocity": "TF1's mean square starts at 1",
        "epsilon_in_sqrt": "TF1 adds epsilon inside the square root",
        "learning_rate_in_momentum": "TF1's momentum accumulates lr * g / denominator",
        "decoupled_weight_decay": _NO_WEIGHT_DECAY.format(framework="TF1's RMSPropOptimizer"),
        "weight_decay": _NO_WEIGHT_DECAY.format(framework="TF1's RMSPropOptimizer"),
        "nesterov": "TF1's RMSPropOptimizer has no Nesterov momentum",
        "bias_correction": "TF1's RMSPropOptimizer has no bias correction",
        "maximize": "TF1's RMSPropOptimizer minimizes",
    },
}


def _as_framework(cls, flavor: str, names: dict, extra: dict, **kwargs) -> RMSprop:
    """``cls(**kwargs, **extra)``; errors name each argument as the framework calls it.

    ``names`` maps our argument names to the framework's. ``extra`` are the
    caller's other keyword arguments: Keras's features (:data:`EXTRAS`) only;
    one of ours under its own name, or one the flavor fixes, is a ``TypeError``.
    """
    for key in extra:
        if key in names:
            raise TypeError(
                f"like_{flavor}() takes {flavor}'s name `{names[key]}` for this argument; "
                f"got `{key}`."
            )
        if key in FIXED[flavor]:
            raise TypeError(
                f"like_{flavor}() does not take `{key}`: {FIXED[flavor][key]}. "
                "RMSprop(...) takes any combination of the variant switches."
            )
        if key not in EXTRAS:
            raise TypeError(
                f"like_{flavor}() got an unexpected keyword argument `{key}`; besides "
                f"{flavor}'s own arguments it takes {', '.join(EXTRAS)}."
            )
    try:
        return cls(**kwargs, **extra)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        for ours, theirs in names.items():
            message = message.replace(f"`{ours}`", f"`{theirs}`")
        raise type(exc)(message) from None


class Flavors:
    """``like_torch``, ``like_optax`` and ``like_tf1``: classmethods of
    :class:`~numba_rmsprop.RMSprop`."""

    @classmethod
    def like_torch(
        cls,
        lr: StepLearningRate = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        maximize: bool = False,
        **kwargs: Unpack[KerasExtras],
    ) -> RMSprop:
        """``torch.optim.RMSprop``, with its argument names and defaults.

        Epsilon outside the square root, L2 weight decay, the learning rate
        applied outside the momentum buffer. ``lr`` may also be a schedule
        (``schedule(step)`` is the rate of step ``step``, 0-based: what a
        torch scheduler stepped after each ``optimizer.step()`` sets).
        Other keyword arguments (``clipnorm``, ``use_ema``, ...) are passed
        to :class:`RMSprop`.
        """
        if (
            isinstance(weight_decay, numbers.Real)
            and not isinstance(weight_decay, bool)
            and weight_decay == 0
        ):
            weight_decay = None
        return _as_framework(
            cls,
            "torch",
            {"learning_rate": "lr", "rho": "alpha", "epsilon": "eps"},
            kwargs,
            learning_rate=step_schedule(lr),
            rho=alpha,
            epsilon=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
            epsilon_in_sqrt=False,
            learning_rate_in_momentum=False,
            decoupled_weight_decay=False,
        )

    @classmethod
    def like_optax(
        cls,
        learning_rate: StepLearningRate,
        decay: float = 0.9,
        eps: float = 1e-8,
        initial_scale: float = 0.0,
        eps_in_sqrt: bool = True,
        centered: bool = False,
        momentum: float | None = None,
        nesterov: bool = False,
        bias_correction: bool = False,
        **kwargs: Unpack[KerasExtras],
    ) -> RMSprop:
        """``optax.rmsprop``, with its argument names and defaults.

        ``learning_rate`` may be an optax-style schedule, a function of the
        update count. ``momentum=None`` means no momentum (``nesterov`` is
        then ignored, as in optax). Other keyword arguments are passed to
        :class:`RMSprop`.
        """
        if momentum is None:
            momentum, nesterov = 0.0, False
        return _as_framework(
            cls,
            "optax",
            {
                "rho": "decay",
                "epsilon": "eps",
                "initial_velocity": "initial_scale",
                "epsilon_in_sqrt": "eps_in_sqrt",
            },
            kwargs,
            learning_rate=step_schedule(learning_rate),
            rho=decay,
            epsilon=eps,
            initial_velocity=initial_scale,
            epsilon_in_sqrt=eps_in_sqrt,
            centered=centered,
            momentum=momentum,
            nesterov=nesterov,
            bias_correction=bias_correction,
        )

    @classmethod
    def like_tf1(
        cls,
        learning_rate: StepLearningRate,
        decay: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-10,
        centered: bool = False,
        **kwargs: Unpack[KerasExtras],
    ) -> RMSprop:
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
            cls,
            "tf1",
            {"rho": "decay"},
            kwargs,
            learning_rate=step_schedule(learning_rate),
            rho=decay,
            momentum=momentum,
            epsilon=epsilon,
            centered=centered,
            initial_velocity=1.0,
        )
