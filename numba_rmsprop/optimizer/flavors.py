"""RMSprop as torch, optax and TF1 define it: constructors with each framework's names.

Each returns an ordinary :class:`~numba_rmsprop.RMSprop` whose keyword-only
variant switches (``epsilon_in_sqrt``, ``learning_rate_in_momentum``,
``decoupled_weight_decay``, ``nesterov``, ``bias_correction``,
``initial_velocity``, ``maximize``) are set as that framework computes.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

from .learning_rate import step_schedule

if TYPE_CHECKING:  # the class these build; imported for annotations only
    from .rmsprop import RMSprop


def _as_framework(cls, names: dict, **kwargs) -> RMSprop:
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


class Flavors:
    """``like_torch``, ``like_optax`` and ``like_tf1``: classmethods of
    :class:`~numba_rmsprop.RMSprop`."""

    @classmethod
    def like_torch(
        cls,
        lr: float = 0.01,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        maximize: bool = False,
        **kwargs: Any,
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
            {"learning_rate": "lr", "rho": "alpha", "epsilon": "eps"},
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
            **kwargs,
        )

    @classmethod
    def like_optax(
        cls,
        learning_rate,
        decay: float = 0.9,
        eps: float = 1e-8,
        initial_scale: float = 0.0,
        eps_in_sqrt: bool = True,
        centered: bool = False,
        momentum: float | None = None,
        nesterov: bool = False,
        bias_correction: bool = False,
        **kwargs: Any,
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
            {
                "rho": "decay",
                "epsilon": "eps",
                "initial_velocity": "initial_scale",
                "epsilon_in_sqrt": "eps_in_sqrt",
            },
            learning_rate=step_schedule(learning_rate),
            rho=decay,
            epsilon=eps,
            initial_velocity=initial_scale,
            epsilon_in_sqrt=eps_in_sqrt,
            centered=centered,
            momentum=momentum,
            nesterov=nesterov,
            bias_correction=bias_correction,
            **kwargs,
        )

    @classmethod
    def like_tf1(
        cls,
        learning_rate,
        decay: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-10,
        centered: bool = False,
        **kwargs: Any,
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
            {"rho": "decay"},
            learning_rate=step_schedule(learning_rate),
            rho=decay,
            momentum=momentum,
            epsilon=epsilon,
            centered=centered,
            initial_velocity=1.0,
            **kwargs,
        )
