"""Minibatches of a ``minimize`` run: which arguments are data, and in which order.

With ``batch_size``, the *data arrays* of ``args`` (its numpy arrays with
``ndim >= 1``, or the positions ``data_args`` names) are sliced along axis 0;
every other argument passes whole. An epoch is ``ceil(n_samples /
batch_size)`` steps over one permutation of the rows (drawn with one
``rng.permutation`` call per epoch, so the same seed gives the same batches
in both loops), or over the rows in order with ``shuffle=False``.

Where the batches come from is the *batch source*: :class:`Minibatches` for
data in memory (NumPy arrays), or :class:`numba_rmsprop.frontend.stream.StreamedBatches`
when ``args`` holds dask arrays (data larger than memory, streamed through a
shuffle buffer). :func:`make_batches` picks one; both give the loops the same
thing, a :class:`Segment` per run of steps: the arguments to slice, the order
of their rows, and where the run starts. ``_stream`` (and dask) are imported
only when a dask array shows up: dask arrays are recognised through
``sys.modules``, so ``import numba_rmsprop`` never imports dask.
"""

from __future__ import annotations

import sys

import numpy as np

from .data import Segment, data_positions, is_dask_array, same_length


def make_batches(
    args: tuple,
    batch_size: int | None,
    data_args,
    shuffle: bool,
    seed,
    shuffle_buffer: int | None = None,
    client=None,
):
    """The batch source of a run: in memory, or streamed when ``args`` holds dask arrays."""
    lazy = [i for i, a in enumerate(args) if is_dask_array(a)]
    if not lazy:
        return Minibatches(args, batch_size, data_args, shuffle, seed)
    if batch_size is None:
        where = ", ".join(f"args[{i}]" for i in lazy)
        raise ValueError(
            f"{where} {'is a dask array' if len(lazy) == 1 else 'are dask arrays'}, which "
            "`minimize` streams in minibatches: pass options['batch_size'] (and optionally "
            "options['shuffle_buffer'], in rows). To use all the data at every step, load it "
            "first: `np.asarray(a)` or `a.compute()`."
        )
    from .stream import StreamedBatches

    return StreamedBatches(args, batch_size, data_args, shuffle, seed, shuffle_buffer, client)


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

    streamed = False

    def __init__(self, args: tuple, batch_size: int | None, data_args, shuffle: bool, seed):
        self.args = args
        self.shuffle = shuffle
        self.batched = batch_size is not None
        self.data_idx, self.data_is_auto = data_positions(args, data_args)
        self.nepoch = 0
        self.n_samples = self.batch_size = self.n_batches = None
        self.perm = None
        if not self.batched:
            return
        if not self.data_idx:
            raise ValueError(
                f"`batch_size={batch_size!r}` was given but `args` holds no data arrays "
                "(numpy arrays with ndim >= 1) to slice into minibatches."
            )
        self.n_samples = ns = same_length(args, self.data_idx)
        if batch_size > ns:
            raise ValueError(f"`batch_size={batch_size}` is larger than the data ({ns} samples).")
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

    def segment(self, epoch_pos: int) -> Segment:
        """The :class:`Segment` that starts at batch ``epoch_pos`` of the epoch (the
        rest of the epoch); without batching, ``args`` whole."""
        if not self.batched:
            return Segment(self.args, None, 0, 1, sys.maxsize, 0)
        return Segment(
            self.args,
            self.order(),
            self.rows(epoch_pos)[0],
            self.n_samples,
            self.n_batches - epoch_pos,
            epoch_pos,
        )

    def evaluate_full(self, evaluate, dtype) -> tuple:
        """``(loss, gradient, calls)`` of the objective on all the data:
        ``evaluate(args)`` once."""
        f, g = evaluate(self.args)
        return f, g, 1

    def close(self) -> None:
        """Nothing to release (the streamed source stops its loader here)."""
