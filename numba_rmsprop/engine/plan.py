"""The per-call plan: every Keras rule about counters, in one place.

:func:`make_plan` turns the optimizer's counter and hyperparameters into the
scalars and flags one ``apply`` call needs. It is plain Python with no arrays,
so the rules can be read, and tested, without any kernel. Both backends
execute the same plan.

Keras 3 rules (``base_optimizer.py`` and the JAX backend's ``optimizer.py``):

* with ``gradient_accumulation_steps = N`` a call updates the variables only
  when ``(iteration + 1) % N == 0``; otherwise it only accumulates;
* learning-rate schedules see the raw call count ``iteration``;
* the EMA sees ``iteration // N``: its momentum is 0 while that is 0 (so the
  first call(s) copy the weights) and it overwrites the weights when
  ``(iteration // N + 1) % ema_overwrite_frequency == 0``;
* the EMA is updated on every call, accumulation-only calls included.

Bias correction (optax's ``bias_correction=True``) divides the averages of
the ``t``-th update by ``1 - rho**t``, where ``t`` counts updates, not calls;
the plan carries ``t`` and the kernels' scalars hold ``1 - rho**t`` in the
variable's dtype (:func:`numba_rmsprop.engine.layout.pack_call`).
"""

from __future__ import annotations

from typing import NamedTuple


class StepPlan(NamedTuple):
    """What one ``apply`` call does.

    Attributes
    ----------
    iteration : int
        Raw call count before this call (0-based).
    update : bool
        True when this call updates the variables; False when it only
        accumulates gradients.
    learning_rate : float
        Learning rate for this call (``schedule(iteration)``), in float64.
    ema_momentum : float or None
        EMA momentum for this call (0.0 on the first EMA step), or None
        without EMA.
    ema_overwrite : bool
        Whether the variables are overwritten by their EMA after this call.
    update_count : int
        With bias correction, ``t``: this update is the ``t``-th (1-based);
        0 without bias correction and on accumulation-only calls.
    """

    iteration: int
    update: bool
    learning_rate: float
    ema_momentum: float | None
    ema_overwrite: bool
    update_count: int = 0


def counters(iteration: int, accumulation_steps: int, overwrite_frequency: int):
    """``(update, ema_first, ema_overwrite)`` for call number ``iteration`` (0-based).

    ``accumulation_steps`` and ``overwrite_frequency`` are 0 when unset. Plain
    integer code, so that the compiled minimize loop compiles this same
    function with Numba.
    """
    update = True
    k = iteration
    if accumulation_steps > 0:
        update = (iteration + 1) % accumulation_steps == 0
        k = iteration // accumulation_steps
    overwrite = overwrite_frequency > 0 and (k + 1) % overwrite_frequency == 0
    return update, k == 0, overwrite


def update_count(iteration: int, accumulation_steps: int) -> int:
    """Number of updates made once call ``iteration`` (0-based) is done.

    On an update call this is ``t``, the 1-based index of the update.
    """
    if accumulation_steps > 0:
        return (iteration + 1) // accumulation_steps
    return iteration + 1


class Planner:
    """The plans of one optimizer configuration: :func:`make_plan` with its
    arguments bound once (calls of the common configuration without
    accumulation, EMA or bias correction skip the counters entirely)."""

    __slots__ = (
        "accumulation_steps",
        "use_ema",
        "ema_momentum",
        "overwrite_frequency",
        "bias_correction",
        "simple",
    )

    def __init__(
        self,
        *,
        accumulation_steps: int | None,
        use_ema: bool,
        ema_momentum: float,
        ema_overwrite_frequency: int | None,
        bias_correction: bool = False,
    ):
        self.accumulation_steps = accumulation_steps or 0
        self.use_ema = bool(use_ema)
        self.ema_momentum = float(ema_momentum)
        self.overwrite_frequency = ema_overwrite_frequency or 0
        self.bias_correction = bool(bias_correction)
        self.simple = not (self.accumulation_steps or self.use_ema or self.bias_correction)

    def __call__(self, iteration: int, learning_rate: float) -> StepPlan:
        """Plan call number ``iteration`` (0-based), given its learning rate."""
        if self.simple:
            return StepPlan(iteration, True, learning_rate, None, False, 0)
        n = self.accumulation_steps
        update, first, overwrite = counters(iteration, n, self.overwrite_frequency)
        ema_mom = None
        if self.use_ema:
            ema_mom = 0.0 if first else self.ema_momentum
        return StepPlan(
            iteration,
            update,
            learning_rate,
            ema_mom,
            overwrite if self.use_ema else False,
            update_count(iteration, n) if self.bias_correction and update else 0,
        )


def make_plan(
    iteration: int,
    learning_rate: float,
    *,
    accumulation_steps: int | None,
    use_ema: bool,
    ema_momentum: float,
    ema_overwrite_frequency: int | None,
    bias_correction: bool = False,
) -> StepPlan:
    """Plan call number ``iteration`` (0-based), given its learning rate."""
    return Planner(
        accumulation_steps=accumulation_steps,
        use_ema=use_ema,
        ema_momentum=ema_momentum,
        ema_overwrite_frequency=ema_overwrite_frequency,
        bias_correction=bias_correction,
    )(iteration, float(learning_rate))
