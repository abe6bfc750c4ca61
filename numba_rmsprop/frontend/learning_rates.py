"""Learning rates of a ``minimize`` run, in blocks of steps.

Both loops read step ``it``'s learning rate from a table: block ``k`` holds
the rates of steps ``[k * LR_BLOCK, (k + 1) * LR_BLOCK)`` in the variable's
dtype, evaluated in one vectorised schedule call (a Keras-style schedule that
only takes scalars is called per step). Blocks are aligned to multiples of
``LR_BLOCK`` and the loops' segments never cross one, so every loop sees the
same values whatever the segment lengths. A zero-argument callable has no
table: the Python loop calls it every step.
"""

from __future__ import annotations

import numpy as np

from ..schedules import LearningRateSchedule

#: Steps per block.
LR_BLOCK = 4096


class LearningRates:
    """The blocks of one run's learning rates (see the module docstring)."""

    def __init__(self, learning_rate, dtype, maxiter):
        self.dtype = np.dtype(dtype)
        self.maxiter = maxiter  # an int, or math.inf
        self.schedule: LearningRateSchedule | None = None
        self.fn = None  # a zero-argument callable: evaluated per step, no table
        self.const: np.ndarray | None = None
        self._blocks: dict = {}
        if isinstance(learning_rate, LearningRateSchedule):
            self.schedule = learning_rate
        elif callable(learning_rate):
            self.fn = learning_rate
        else:
            self.const = np.full(LR_BLOCK, learning_rate, dtype=self.dtype)

    def block(self, k: int) -> np.ndarray | None:
        """Learning rates of steps ``[k * LR_BLOCK, (k + 1) * LR_BLOCK)`` (None for ``fn``)."""
        if self.const is not None:
            return self.const
        if self.fn is not None:
            return None
        block = self._blocks.get(k)
        if block is None:
            steps = np.arange(k * LR_BLOCK, (k + 1) * LR_BLOCK, dtype=np.int64)
            try:
                vals = np.asarray(self.schedule(steps), dtype=np.float64)
                if vals.shape != steps.shape:
                    raise ValueError
            except Exception:
                # A Keras-style schedule that only takes scalars: the steps a run can reach.
                end = min(steps[-1] + 1, max(self.maxiter, steps[0] + 1))
                vals = np.full(LR_BLOCK, np.nan)
                for i in range(steps[0], end):
                    vals[i - steps[0]] = float(self.schedule(i))
            block = vals.astype(self.dtype)
            self._blocks = {k: block}  # keep one block
        return block
