"""The interface between :class:`~numba_rmsprop.RMSprop` and a device backend.

:class:`~numba_rmsprop.RMSprop` owns the hyperparameters, the counters and
the plan of each call (:mod:`numba_rmsprop.engine.plan`); a backend owns the
arrays of one device and runs the element rule (:mod:`numba_rmsprop.engine.rule`)
over them. Two backends implement :class:`Backend`:
:class:`numba_rmsprop.engine.cpu.backend.CPUBackend` (NumPy arrays) and
:class:`numba_rmsprop.engine.cuda.backend.CUDABackend` (CUDA device arrays). A third
(another accelerator, say) implements the same methods; nothing above this
interface changes.

Terms
-----
*variable*
    A user's array, updated in place; any shape, C- or F-contiguous or a
    strided view.
*slot*
    The optimizer's record of one variable (:class:`numba_rmsprop.optimizer.rmsprop._Slot`):
    ``index``, ``var``, ``shape``, ``dtype``, ``order`` (``"C"``, ``"F"``, or
    None for strided views), ``size``, ``parallel``, ``decay`` (weight decay
    applies), the flat variable ``xf`` (None when strided) and the state
    arrays ``v, mg, mom, acc, avg`` (variable-shaped, or None when their
    option is off) with their flat views ``vf, mgf, momf, accf, avgf`` in the
    variable's memory order.
*plan*
    A :class:`numba_rmsprop.engine.plan.StepPlan`: what this call does.
*spec*
    The :class:`numba_rmsprop.engine.spec.Spec`: hyperparameters, the rule's
    switches and the build-time slots of the per-call scalars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Backend(Protocol):
    """What a device backend provides. Checks raise before anything changes."""

    #: ``"cpu"``, ``"cuda"``, ...: reported as ``RMSprop.device``.
    name: str

    # -- checks, before anything changes -----------------------------------------
    def check_variable(self, x: Any, index: int) -> None:
        """Raise ``TypeError``/``ValueError`` naming ``variables[index]`` unless ``x`` is a
        writeable float32/float64 array of this device."""

    def check_writeable(self, x: Any, index: int) -> None:
        """Raise ``ValueError`` naming ``variables[index]`` if ``x`` is read-only."""

    def as_gradient(self, g: Any, x: Any, index: int) -> Any:
        """``g`` as this device's array matching variable ``x`` (dtype, shape); errors
        name ``grads[index]``."""

    # -- allocation and views ---------------------------------------------------
    def memory_order(self, x: Any) -> str | None:
        """``"C"`` or ``"F"`` for a contiguous array, None for a strided view."""

    def flat(self, a: Any, order: str) -> Any:
        """A 1-D view (never a copy) of an array contiguous in ``order``."""

    def full_like(self, x: Any, order: str | None, value: float) -> Any:
        """A new array of ``x``'s shape and dtype, filled with ``value``, in ``order``."""

    def use_parallel(self, nbytes: int) -> bool:
        """Whether a variable of ``nbytes`` takes the multi-threaded kernels."""

    def to_host(self, a: Any) -> np.ndarray:
        """A NumPy copy of ``a``."""

    def copy_into(self, dst: Any, src: Any) -> None:
        """``dst[...] = src``; ``src`` is a NumPy array or an array of this device."""

    def check_disjoint(self, variables: Sequence) -> None:
        """Raise ``ValueError`` naming two variables that share memory."""

    def find_same_memory(self, x: Any, slots: Sequence) -> Any:
        """The slot whose variable is ``x``'s memory viewed the same way, or None."""

    # -- running ----------------------------------------------------------------
    def prepare(self, slots: Sequence, spec) -> None:
        """Called once by ``build`` with every slot (state already allocated)."""

    def full_gradients(self, grads: Any, slots: Sequence) -> list | None:
        """``grads`` when they are one valid gradient per slot, in build order, that
        :meth:`execute_full` can take unchecked; else None (the caller then validates
        them and calls :meth:`execute`)."""

    def execute_full(self, plan, spec, grads: list) -> None:
        """Run ``plan`` with the gradients :meth:`full_gradients` accepted."""

    def execute(self, plan, spec, pairs: Sequence, ema_slots: Sequence) -> None:
        """Run ``plan`` on ``pairs`` of ``(slot, gradient)`` (checked by :meth:`as_gradient`);
        the ``ema_slots`` got no gradient and only take the EMA step."""
