"""The data of a run: which arguments are data arrays, and what a run of steps gets.

Shared by the in-memory batch source (:mod:`.minibatches`) and the streamed
one (:mod:`.stream`), and by ``minimize_many``'s checks.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

import numpy as np

from ..engine.hyperparameters import _is_integer


class Segment(NamedTuple):
    """What the loops need for a run of steps (see :meth:`Minibatches.segment`).

    ``args`` are the arguments whose data arrays are sliced; step ``j`` of the
    run uses rows ``order[start + j*batch_size : ...]`` of them (clipped to
    ``n_rows``), or rows ``start + j*batch_size ...`` in order when ``order``
    is 1, or all of ``args`` when it is None (no batching). At most
    ``batches`` steps stay in this segment; ``epoch_pos`` is the position in
    the epoch of its first batch.
    """

    args: tuple
    order: Any
    start: int
    n_rows: int
    batches: int
    epoch_pos: int


def is_dask_array(a) -> bool:
    """Whether ``a`` is a ``dask.array.Array``, without importing dask."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(a, da.Array)


def _is_data(a) -> bool:
    return (isinstance(a, np.ndarray) or is_dask_array(a)) and a.ndim >= 1


def data_positions(args: tuple, data_args) -> tuple:
    """``(positions, is_auto)`` of the data arrays of ``args`` (see the module docstring)."""
    auto = [i for i, a in enumerate(args) if _is_data(a)]
    idx = auto if data_args is None else _positions(args, data_args)
    return idx, idx == auto


def same_length(args: tuple, idx) -> int:
    """The common length along axis 0 of the data arrays ``args[i]``, ``i`` in ``idx``."""
    lengths = {i: args[i].shape[0] for i in idx}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"args[{i}] has {m}" for i, m in lengths.items())
        raise ValueError(
            "With `batch_size`, every data array of `args` (numpy or dask array with "
            f"ndim >= 1) is sliced along axis 0, so they must have the same length; {desc} "
            "rows. Pass `data_args` to name the per-sample arrays explicitly."
        )
    return next(iter(lengths.values()))


def positions(args: tuple, seq, name: str) -> list:
    """The positions in ``args`` that option ``name`` lists, checked and sorted
    (negative ones counted from the end, as Python indexes)."""
    if isinstance(seq, (str, bytes)) or not hasattr(seq, "__iter__"):
        raise TypeError(f"`{name}` must be a sequence of positions in `args`; got {seq!r}.")
    idx = []
    for i in seq:
        if not _is_integer(i) or not -len(args) <= i < len(args):
            raise ValueError(
                f"`{name}` entry {i!r} is not a position in `args` "
                f"(which has {len(args)} elements)."
            )
        idx.append(int(i) % len(args))
    return sorted(set(idx))


def _positions(args: tuple, data_args) -> list:
    """``data_args`` checked against ``args``: sorted positions of arrays with ``ndim >= 1``."""
    idx = positions(args, data_args, "data_args")
    for i in idx:
        if not _is_data(args[i]):
            raise ValueError(
                f"`data_args` names args[{i}], which is not a numpy (or dask) array with ndim >= 1."
            )
    return idx
