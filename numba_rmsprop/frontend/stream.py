"""Minibatches streamed from dask arrays: data larger than memory.

When ``args`` of :func:`numba_rmsprop.minimize` holds ``dask.array`` arrays
(and so Zarr or HDF5 data, through ``da.from_zarr`` / ``da.from_array``) and
``batch_size`` is given, the rows are streamed through a *shuffle buffer* of
``shuffle_buffer`` rows: chunks (the arrays' blocks along axis 0) are loaded
in the background while the rows already in the buffer are used, and only the
buffer, about two chunk groups in flight and the current batch are in memory.
This module is imported only then; ``import numba_rmsprop`` never imports dask.

Order of the minibatches
------------------------
Everything random is drawn in the caller's thread from two generators, so the
sequence of batches is a pure function of ``(seed, n_samples, the chunk sizes
along axis 0, shuffle_buffer, batch_size, shuffle)``: independent of timing,
of how chunks are grouped for loading, and of where they are loaded (the
run's own threads or a dask ``Client``). ``rng = numpy.random.default_rng(seed)``
is the generator of the in-memory path; ``crng = rng.spawn(1)[0]``, made on the
first epoch that needs it, draws the chunk orders (so ``rng`` draws exactly
what it draws in memory when everything fits). Let ``n`` be the number of rows,
``B = min(shuffle_buffer, n)`` and ``bs = batch_size``.

*The data fit the buffer* (``n <= shuffle_buffer``). The arrays are loaded
once, in storage order, and each epoch is one ``rng.permutation(n)`` with
batches ``perm[k*bs:(k+1)*bs]``: exactly the in-memory order, so the run is
bit for bit the in-memory run for the same seed.

*Otherwise* every epoch streams all chunks once:

1. ``pi = crng.permutation(n_chunks)``, the order in which the epoch loads
   the chunks (storage order with ``shuffle=False``).
2. The buffer has ``B`` slots, listed in an array ``S``; ``S[:m]`` are the
   ``m`` rows in the buffer, ``S[m:]`` the free slots. *Refill*: while chunks
   of ``pi`` remain and the next one fits in the free slots, its rows (in
   storage order) go into the slots ``S[m:m+c]`` and ``m += c``.
3. *Round*: while chunks remain, ``R`` is the smallest multiple of ``bs`` that
   frees room for the next chunk; after the last chunk, ``R = m`` (the buffer
   drains). The round draws ``js = rng.integers(0, [m, m-1, ..., m-R+1])`` in
   one call and, for ``k = 0 .. R-1``, swaps ``S[m-1-k]`` with ``S[js[k]]``
   (the last ``R`` steps of a Fisher-Yates shuffle of the buffer: a uniform
   draw of ``R`` rows without replacement, in a uniformly random order). Its
   rows are ``S[m-R:m]``, in that order, cut into batches of ``bs``;
   ``m -= R``. With ``shuffle=False`` the round takes the oldest rows instead
   (``S[:R]``, a FIFO), which reproduces the in-memory order.
4. Back to 2 until the epoch's rows are used.

Every epoch uses every row exactly once, and all batches have ``bs`` rows
but the last of the epoch, which has ``n % bs`` (if not 0): epochs, batches
per epoch (``ceil(n / bs)``), ``nepoch`` and the batch sizes are those of the
in-memory run. Rounds are multiples of ``bs``, so no batch spans a refill.
This needs ``shuffle_buffer >= largest chunk + batch_size`` (checked).

Statistically this is *buffer shuffling*, not one global permutation: a row
can only be drawn once its chunk is in the buffer, so a batch mixes rows of
the about ``B / chunk`` chunks the buffer holds at the time, and a row tends
to come out within about ``B`` rows of its chunk's turn in ``pi``. Each batch
is still a uniform draw from the buffer, and with the chunk order permuted per
epoch, batches are unbiased over an epoch; but rows that are ordered on disk
(by label, by time) make batches of neighbouring rows more alike than in a
global shuffle. Make chunks small against the buffer, or shuffle the rows
when writing the store, when that matters.

Loading
-------
A loader thread (``numba-rmsprop-stream``) loads *groups* of chunks, in the
order of ``pi`` (epoch after epoch), about ``min(`` :data:`GROUP_BYTES` ``, buffer
/ 4)`` at a time (at most :data:`GROUP_CHUNKS` chunks, at least one): one
computation of the blocks of every data array, run by the loader thread
itself (dask's synchronous scheduler: ``client=None`` without a distributed
Client, or ``"local"``) or through a ``distributed.Client`` (the one passed,
or with ``client=None`` the default client ``dask.compute`` would use). A run
inside a task on a dask worker (e.g. one of many runs sent to a cluster)
loads in its own process with ``client=None``: through the worker's client
it would wait for a free worker thread while holding one (with one thread
per worker, a deadlock) and move the rows between workers; with an explicit
Client it secedes from the worker's thread pool while it runs (as
``distributed.worker_client`` does). One group is being copied into the buffer while
the next one loads. Loading in one thread is deliberate: chunks allocated in
several threads stay cached in glibc's per-thread arenas after they are
freed (measured: 131 MiB above the buffer with a pool of 4 threads and 8 MiB
chunks, 52 MiB with the one thread, no slower). Exceptions of the loader are
raised in the caller; the thread and anything in flight end with the run
(``close``), also when the run ends in an exception. Each data array's task
graph is materialised once and every group runs the part of it its blocks
need (``cull``): a ``dask.compute`` per group re-optimises the array's
expression every time (measured 12 ms per 8 MiB chunk of a Zarr array, 5 ms
this way, of which 3 ms is Zarr reading it).
NumPy data arrays in ``args`` may be mixed with dask arrays: they are sliced
by the dask arrays' chunks.

With ``n > shuffle_buffer`` the final evaluation of ``minimize`` (``res.fun``,
``res.jac``) runs over consecutive blocks of at most ``B`` rows (whole chunks,
storage order) loaded into the buffer, and combines them as the row-weighted
mean ``sum(rows_b * f_b) / n`` (the same for the gradient, in float64): the
full objective when ``fun`` is a mean over its rows, as a minibatch loss
is. Each block counts as one evaluation in ``nfev``.
"""

from __future__ import annotations

import collections
import math

import numpy as np

from ..engine import config
from ..engine.jit import njit
from .data import Segment, data_positions, is_dask_array, same_length
from .stream_loader import Loader, in_worker_task, resolve_client, short_chunks

#: Default buffer size, in bytes of rows of all data arrays together.
DEFAULT_BUFFER_BYTES = 256 * 2**20
#: Chunks are loaded in groups of about this many bytes (at least one chunk), and
#: of at most a quarter of the buffer and :data:`GROUP_CHUNKS` chunks.
GROUP_BYTES = 16 * 2**20
GROUP_CHUNKS = 64
#: Name of the loader thread.


@njit(cache=config.CACHE)
def _draw_tail(S, m, js):
    """The last ``js.size`` steps of a Fisher-Yates shuffle of ``S[:m]``."""
    for k in range(js.size):
        i = m - 1 - k
        j = js[k]
        t = S[i]
        S[i] = S[j]
        S[j] = t


def _rechunk_hint(i: int, ref: int) -> str:
    return f"args[{i}] = args[{i}].rechunk({{0: args[{ref}].chunks[0]}})"


class StreamedBatches:
    """The batch source of a run whose data arrays include dask arrays.

    The same interface as :class:`numba_rmsprop.frontend.minibatches.Minibatches`
    (see the module docstring for the order of the batches).
    """

    batched = True
    streamed = True

    def __init__(
        self,
        args: tuple,
        batch_size: int,
        data_args,
        shuffle: bool,
        seed,
        shuffle_buffer: int | None,
        client,
    ):
        self.args = args
        self.shuffle = shuffle
        self.data_idx, self.data_is_auto = data_positions(args, data_args)
        stray = [i for i, a in enumerate(args) if is_dask_array(a) and i not in self.data_idx]
        if stray:
            raise ValueError(
                f"args[{stray[0]}] is a dask array but not one of the data arrays sliced into "
                "minibatches (numpy or dask arrays with ndim >= 1, or those `data_args` names); "
                "load it first (`np.asarray(a)`) or name it in `data_args`."
            )
        arrays = [args[i] for i in self.data_idx]
        self._check_rows(arrays)
        self.n_samples = n = int(arrays[0].shape[0])
        if batch_size > n:
            raise ValueError(f"`batch_size={batch_size}` is larger than the data ({n} samples).")
        self.batch_size = bs = int(batch_size)
        self.n_batches = -(-n // bs)
        self.nepoch = 0
        self.perm = None

        ref = next(a for a in arrays if is_dask_array(a))
        sizes = np.array(ref.chunks[0], dtype=np.int64)
        self.sizes = sizes
        self.bounds = np.concatenate([[0], np.cumsum(sizes)])
        self.n_chunks = len(sizes)
        self.row_bytes = row_bytes = sum(a.dtype.itemsize * math.prod(a.shape[1:]) for a in arrays)
        c_max = int(sizes.max())
        if shuffle_buffer is None:
            shuffle_buffer = max(DEFAULT_BUFFER_BYTES // max(row_bytes, 1), c_max + bs)
        self.shuffle_buffer = int(shuffle_buffer)
        self.fits = self.shuffle_buffer >= n
        self.B = n if self.fits else self.shuffle_buffer
        if not self.fits and self.B < c_max + bs:
            hint = f"Raise it to at least {c_max + bs} rows (or to all {n})"
            if self.B > bs:
                hint += (
                    f", or rechunk every data array to at most {self.B - bs} rows along "
                    f"axis 0, e.g. `a = a.rechunk({{0: {self.B - bs}}})`"
                )
            raise ValueError(
                f"`shuffle_buffer={self.B}` rows cannot hold the largest chunk ({c_max} rows) "
                f"and a batch ({bs} rows) at once, as streaming needs. {hint}."
            )
        self.client = resolve_client(client)
        self.group_bytes = min(GROUP_BYTES, self.B * row_bytes // 4)

        self.rng = np.random.default_rng(seed)
        self._crng = None
        self._orders = {}  # epoch -> its chunk order (epochs not begun yet, and the current)
        self._drawn = 0  # chunk orders drawn so far, one per epoch, in epoch order
        self._arrays = arrays
        self._loader: Loader | None = None
        self._seceded = False  # left a dask worker's thread pool (see _start)
        self._bufs = None
        self._buf_args = None
        self._pending = collections.deque()  # (chunk, [rows per array]) taken, not yet copied
        self._plan = None  # iterator of the chunks to request, in order
        self._loaded = False  # fits: the whole data is in the buffer
        # streaming state (n > shuffle_buffer)
        self._S = None
        self._m = 0
        self._pi = None
        self._t = 0
        self._order = None
        self._round = (0, 0)  # (first, end) positions in the epoch of the round's batches

    # ------------------------------------------------------------ checks
    def _check_rows(self, arrays) -> None:
        idx = self.data_idx
        for i, a in zip(idx, arrays, strict=False):
            if is_dask_array(a) and any(math.isnan(c) for c in a.chunks[0]):
                raise ValueError(
                    f"args[{i}] is a dask array with unknown chunk sizes along axis 0; call "
                    f"`args[{i}] = args[{i}].compute_chunk_sizes()` first."
                )
        same_length(dict(zip(idx, arrays, strict=False)), idx)
        lazy = [(i, a) for i, a in zip(idx, arrays, strict=False) if is_dask_array(a)]
        i0, a0 = lazy[0]
        for i, a in lazy[1:]:
            if tuple(a.chunks[0]) != tuple(a0.chunks[0]):
                raise ValueError(
                    f"The dask arrays of `args` are streamed chunk by chunk, so they must be "
                    "chunked alike along axis 0; "
                    f"args[{i0}] has chunks {short_chunks(a0.chunks[0])} "
                    f"and args[{i}] has {short_chunks(a.chunks[0])}. Rechunk one like the other, "
                    f"e.g. `{_rechunk_hint(i, i0)}`."
                )

    # ------------------------------------------------------------ the interface
    def rows(self, pos: int) -> tuple:
        """``(start, stop)``: the positions in the epoch's order of batch ``pos``."""
        s = pos * self.batch_size
        return s, min(s + self.batch_size, self.n_samples)

    def new_epoch(self) -> None:
        self.nepoch += 1
        self._start()
        if self.fits:
            self._load_all()
            self.perm = self.rng.permutation(self.n_samples) if self.shuffle else None
            return
        self._pi = self._epoch_order(self.nepoch)
        for e in [e for e in self._orders if e < self.nepoch]:
            del self._orders[e]
        self._t = 0
        self._round = (0, 0)

    def segment(self, epoch_pos: int) -> Segment:
        bs = self.batch_size
        if self.fits:
            order = self.perm if self.shuffle else 1
            return Segment(
                self._buf_args,
                order,
                epoch_pos * bs,
                self.n_samples,
                self.n_batches - epoch_pos,
                epoch_pos,
            )
        first, end = self._round
        if epoch_pos >= end:
            self._next_round(epoch_pos)
            first, end = self._round
        return Segment(
            self._buf_args,
            self._order,
            (epoch_pos - first) * bs,
            self._order.size,
            end - epoch_pos,
            epoch_pos,
        )

    def evaluate_full(self, evaluate, dtype) -> tuple:
        """``(loss, gradient, calls)`` on all the data (see the module docstring)."""
        self._start()
        if self.fits:
            self._load_all()
            f, g = evaluate(self._buf_args)
            return f, g, 1
        self._switch_plan(iter(range(self.n_chunks)))
        fsum, gsum, calls, chunk = 0.0, None, 0, 0
        while chunk < self.n_chunks:
            r = 0
            while chunk < self.n_chunks and r + self.sizes[chunk] <= self.B:
                self._copy_next(slice(r, r + self.sizes[chunk]), chunk)
                r += int(self.sizes[chunk])
                chunk += 1
            f, g = evaluate(self._args_with([buf[:r] for buf in self._bufs]))
            calls += 1
            fsum += r * float(f)
            gsum = r * g.astype(np.float64) if gsum is None else gsum + r * g.astype(np.float64)
        n = self.n_samples
        return fsum / n, (gsum / n).astype(dtype), calls

    def close(self) -> None:
        """Stop the loader thread (waiting for it) and drop what is in flight."""
        loader, self._loader = self._loader, None
        self._pending.clear()
        try:
            if loader is not None:
                loader.close()
        finally:
            if self._seceded:
                self._seceded = False
                import distributed

                distributed.rejoin()

    # ------------------------------------------------------------ loading
    def _args_with(self, bufs) -> tuple:
        lst = list(self.args)
        for i, b in zip(self.data_idx, bufs, strict=False):
            lst[i] = b
        return tuple(lst)

    def _start(self) -> None:
        """Allocate the buffer and start the loader (unless everything is loaded).

        In a task on a dask worker, loading through a Client needs another
        worker thread: the task secedes from the worker's pool until ``close``.
        """
        if self._bufs is None:
            self._bufs = [
                np.empty((self.B,) + tuple(a.shape[1:]), dtype=a.dtype) for a in self._arrays
            ]
            self._buf_args = self._args_with(self._bufs)
            if not self.fits:
                self._S = np.arange(self.B, dtype=np.int64)
        if self._loader is not None or self._loaded:
            return
        if self.client is not None and not self._seceded and in_worker_task():
            import distributed

            distributed.secede()
            self._seceded = True
        self._loader = Loader(self._arrays, self.bounds, self.client)
        self._loader.start()
        self._switch_plan(iter(range(self.n_chunks)) if self.fits else self._training_plan())

    def _load_all(self) -> None:
        """``fits``: copy every chunk into the buffer, in storage order (once)."""
        if self._loaded:
            return
        for c in range(self.n_chunks):
            self._copy_next(slice(self.bounds[c], self.bounds[c + 1]), c)
        self._loaded = True
        self.close()  # nothing more to load: the thread ends now, not with the run

    def _epoch_order(self, epoch: int) -> np.ndarray:
        """The chunk order ``pi`` of ``epoch`` (drawn from ``crng`` in epoch order)."""
        while self._drawn < epoch:
            self._drawn += 1
            if not self.shuffle:
                self._orders[self._drawn] = np.arange(self.n_chunks)
                continue
            if self._crng is None:
                self._crng = self.rng.spawn(1)[0]
            self._orders[self._drawn] = self._crng.permutation(self.n_chunks)
        return self._orders[epoch]

    def _training_plan(self):
        """The chunks to load while training: ``pi`` of every epoch, one after another."""
        epoch = max(self.nepoch, 1)
        while True:
            yield from self._epoch_order(epoch).tolist()
            epoch += 1

    def _switch_plan(self, plan) -> None:
        """Drop what was requested for the previous plan; request the first group of ``plan``."""
        loader = self._loader
        while loader.outstanding:
            loader.take(discard=True)
        self._pending.clear()
        self._plan = plan
        self._request_group()

    def _request_group(self) -> None:
        """Request the next chunks of the plan, about ``group_bytes`` of them."""
        chunks, nbytes = [], 0
        while nbytes < self.group_bytes and len(chunks) < GROUP_CHUNKS:
            c = next(self._plan, None)
            if c is None:
                break
            chunks.append(c)
            nbytes += int(self.sizes[c]) * self.row_bytes
        if chunks:
            self._loader.request(chunks)

    def _next_loaded(self) -> tuple:
        """``(chunk, [its rows per data array])``: the next chunk of the plan.

        Taking a group requests the next one; by then the group before has
        been copied into the buffer and dropped, and the loader gives its
        memory back to the system (:func:`_trim`) before loading.
        """
        if not self._pending:
            group = self._loader.take()
            self._request_group()  # the next group loads while this one is used
            self._pending.extend(group)
        return self._pending.popleft()

    def _copy_next(self, where, chunk: int) -> None:
        """Copy the next loaded chunk (which must be ``chunk``) to rows ``where`` of the buffer."""
        c, data = self._next_loaded()
        assert c == chunk, (c, chunk)
        for buf, d in zip(self._bufs, data, strict=False):
            buf[where] = d

    # ------------------------------------------------------------ rounds
    def _next_round(self, epoch_pos: int) -> None:
        S, B, bs = self._S, self.B, self.batch_size
        pi, sizes = self._pi, self.sizes
        m = self._m
        while self._t < self.n_chunks and B - m >= sizes[pi[self._t]]:  # refill
            k = int(sizes[pi[self._t]])
            self._copy_next(S[m : m + k], pi[self._t])
            m += k
            self._t += 1
        if self._t < self.n_chunks:
            need = int(sizes[pi[self._t]]) - (B - m)
            R = bs * -(-need // bs)
        else:
            R = m
        if self.shuffle:
            js = self.rng.integers(0, np.arange(m, m - R, -1, dtype=np.int64))
            _draw_tail(S, m, js)
            order = S[m - R : m].copy()
        else:
            order = S[:R].copy()
            S[: m - R] = S[R:m].copy()
            S[m - R : m] = order
        self._m = m - R
        self._order = order
        self._round = (epoch_pos, epoch_pos + -(-R // bs))
