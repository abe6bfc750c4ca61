"""Minibatches of a ``minimize`` run: which arguments are data, and in which order.

With ``batch_size``, the *data arrays* of ``args`` (its numpy arrays with
``ndim >= 1``, or the positions ``data_args`` names) are sliced along axis 0;
every other argument passes whole. An epoch is ``ceil(n_samples /
batch_size)`` steps over one permutation of the rows (drawn with one
``rng.permutation`` call per epoch, so the same seed gives the same batches
in both loops), or over the rows in order with ``shuffle=False``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ._hyperparameters import _is_integer


class Minibatches:
    """The data arrays of ``args`` and the epochs' order of their rows.

    Attributes
    ----------
    batched : bool
        Whether ``batch_size`` was given; the rest below is set only then
        (``data_idx`` and ``data_is_auto`` always).
    data_idx : list of int
        Positions of the data arrays in ``args``.
    data_is_auto : bool
        ``data_idx`` is the automatic choice (what the compiled loop slices).
    n_samples, batch_size, n_batches : int
        Rows, rows per batch (the last may have fewer), batches per epoch.
    nepoch : int
        Epochs begun.
    perm : ndarray or None
        The current epoch's permutation (None with ``shuffle=False``).
    """

    def __init__(self, args: tuple, batch_size: Optional[int], data_args, shuffle: bool, seed):
        self.shuffle = shuffle
        self.batched = batch_size is not None
        auto = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.ndim >= 1]
        self.data_idx = auto if data_args is None else _positions(args, data_args)
        self.data_is_auto = self.data_idx == auto
        self.nepoch = 0
        self.n_samples = self.batch_size = self.n_batches = None
        self.perm = None
        if not self.batched:
            return
        if not self.data_idx:
            raise ValueError(
                f"`batch_size={batch_size!r}` was given but `args` holds no data arrays "
                "(numpy arrays with ndim >= 1) to slice into minibatches.")
        lengths = {i: len(args[i]) for i in self.data_idx}
        if len(set(lengths.values())) > 1:
            desc = ", ".join(f"args[{i}] has {m}" for i, m in lengths.items())
            raise ValueError(
                "With `batch_size`, every data array of `args` (numpy array with ndim >= 1) "
                f"is sliced along axis 0, so they must have the same length; {desc} rows. "
                "Pass `data_args` to name the per-sample arrays explicitly.")
        self.n_samples = ns = next(iter(lengths.values()))
        if batch_size > ns:
            raise ValueError(f"`batch_size={batch_size}` is larger than the data "
                             f"({ns} samples).")
        self.batch_size = int(batch_size)
        self.n_batches = -(-ns // self.batch_size)
        self.rng = np.random.default_rng(seed)

    def new_epoch(self) -> None:
        """Begin an epoch: draw its permutation (one ``rng.permutation`` call)."""
        self.nepoch += 1
        if self.shuffle:
            self.perm = self.rng.permutation(self.n_samples)

    def order(self):
        """The compiled loop's ``batched`` argument: None (no batching), the
        epoch's permutation, or 1 (rows in order)."""
        if not self.batched:
            return None
        return self.perm if self.shuffle else 1

    def rows(self, pos: int) -> tuple:
        """``(start, stop)``: the positions in the epoch's order of batch ``pos``."""
        s = pos * self.batch_size
        return s, min(s + self.batch_size, self.n_samples)


def _positions(args: tuple, data_args) -> list:
    """``data_args`` checked against ``args``: sorted positions of arrays with ``ndim >= 1``."""
    if isinstance(data_args, (str, bytes)) or not hasattr(data_args, "__iter__"):
        raise TypeError(f"`data_args` must be a sequence of positions in `args`; "
                        f"got {data_args!r}.")
    idx = []
    for i in data_args:
        if not _is_integer(i) or not -len(args) <= i < len(args):
            raise ValueError(f"`data_args` entry {i!r} is not a position in `args` "
                             f"(which has {len(args)} elements).")
        i = int(i) % len(args)
        if not isinstance(args[i], np.ndarray) or args[i].ndim < 1:
            raise ValueError(f"`data_args` names args[{i}], which is not a numpy array "
                             "with ndim >= 1.")
        idx.append(i)
    return sorted(set(idx))
