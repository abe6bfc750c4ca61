"""The loader of a streamed run: a thread that loads groups of chunks of dask arrays.

Chunks load in this thread, or through a ``distributed.Client`` (see
:mod:`.stream` for who loads and why one thread); freed memory is given back
to the system once per group.
"""

from __future__ import annotations

import queue
import sys
import threading

import numpy as np

from .data import is_dask_array

THREAD_NAME = "numba-rmsprop-stream"


def _assemble(parts):
    """One block along axis 0 from its pieces along the other axes (nested lists)."""
    while isinstance(parts, (list, tuple)) and len(parts) == 1:
        parts = parts[0]
    if not isinstance(parts, (list, tuple)):
        return parts
    return np.block(_as_lists(parts))


def _as_lists(parts):
    return [_as_lists(p) for p in parts] if isinstance(parts, (list, tuple)) else parts


def short_chunks(chunks) -> str:
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) <= 6:
        return str(chunks)
    return f"({', '.join(map(str, chunks[:3]))}, ..., {', '.join(map(str, chunks[-2:]))})"


_libc_trim = None


def _trim() -> None:
    """Give free heap memory back to the system (glibc's ``malloc_trim(0)``; else nothing).

    Loaded chunks are large blocks allocated in the loader thread (and
    dask's or zarr's) and freed in the caller's; glibc keeps freed blocks in
    its arenas (its mmap threshold grows to the size of freed blocks).
    Trimming once per group measured 51-56 MiB above a 64 MiB buffer with
    8 MiB chunks, against 58-66 MiB without. (It cannot release the top of
    the other threads' arenas, hence one loading thread, not a pool.)
    """
    global _libc_trim
    if _libc_trim is None:
        _libc_trim = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                _libc_trim = ctypes.CDLL("libc.so.6").malloc_trim
                _libc_trim.argtypes = [ctypes.c_size_t]
            except (OSError, AttributeError):  # not glibc (musl, ...)
                _libc_trim = False
    if _libc_trim:
        _libc_trim(0)


def resolve_client(client):
    """The ``distributed.Client`` that loads the chunks, or None (the loader thread itself).

    ``None`` picks what ``dask.compute`` would use, the default Client if there
    is one, except in a task on a worker (see the module docstring); else the
    loader thread. ``"local"`` always loads in the loader thread.
    """
    if client == "local":
        return None
    if client is not None:
        return client
    dist = sys.modules.get("distributed")
    if dist is None or in_worker_task():
        return None
    import dask.base

    try:
        sched = dask.base.get_scheduler()
    except Exception:  # an asynchronous client, a bad config: load locally
        return None
    owner = getattr(sched, "__self__", None)
    return owner if isinstance(owner, dist.Client) else None


def in_worker_task() -> bool:
    """Whether this thread runs a task of a dask worker."""
    dist = sys.modules.get("distributed")
    if dist is None:
        return False
    try:
        dist.get_worker()
    except ValueError:
        return False
    return True


class Loader:
    """A thread that loads groups of chunks (see the module docstring).

    ``request(chunks)`` queues a group; ``take()`` returns the oldest requested
    group, in order, as ``[(chunk, [rows of each data array]), ...]``, or
    raises what loading it raised. ``close()`` ends the thread.
    """

    def __init__(self, arrays, bounds, client):
        self._arrays = arrays
        self._bounds = bounds
        self._client = client
        self._requests: queue.Queue = queue.Queue()
        self._results: queue.Queue = queue.Queue()
        self._futures = None
        self._graphs = None  # per dask data array: (its task graph, its keys by block)
        self._thread = None
        self.outstanding = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def request(self, chunks) -> None:
        self.outstanding += 1
        self._requests.put(list(chunks))

    def take(self, discard: bool = False):
        while True:
            try:
                kind, value = self._results.get(timeout=0.05)
                break
            except queue.Empty:
                if not self._thread.is_alive():
                    raise RuntimeError(
                        "The chunk loader of the streamed run stopped unexpectedly."
                    ) from None
        self.outstanding -= 1
        if kind == "error" and not discard:
            raise value
        return value

    def close(self) -> None:
        while True:  # requests not started yet are dropped
            try:
                self._requests.get_nowait()
            except queue.Empty:
                break
        self._requests.put(None)
        futures = self._futures
        if futures is not None:  # in flight on a cluster: cancel rather than wait
            try:
                self._client.cancel(futures)
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join()
        self._results = self._requests = None
        self.outstanding = 0

    def _work(self) -> None:
        requests, results = self._requests, self._results
        while True:
            chunks = requests.get()
            if chunks is None:
                return
            try:
                _trim()  # the group before the one just taken is gone: give its memory back
                out = self._load(chunks)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                results.put(("error", exc))
                return
            results.put(("ok", out))
            del out  # the group belongs to the caller now, not to this waiting thread

    def _load(self, chunks) -> list:
        from dask.optimization import cull

        if self._graphs is None:
            self._graphs = [
                (dict(a.__dask_graph__()), a.__dask_keys__()) if is_dask_array(a) else None
                for a in self._arrays
            ]
        dsk, keys = {}, []
        for graph in self._graphs:
            if graph is not None:
                ks = [graph[1][c] for c in chunks]  # block c: a key, or nested lists of keys
                dsk.update(cull(graph[0], ks)[0])
                keys.append(ks)
        if self._client is not None:
            self._futures = self._client.get(dsk, keys, sync=False)
            try:
                values = self._client.gather(self._futures)
            finally:
                self._futures = None
        else:
            from dask.local import get_sync

            values = get_sync(dsk, keys)
        del dsk
        # values[array][i]: block chunks[i] of that array, as nested lists along axes 1..
        values = iter([_assemble(v) for per_array in zip(*values, strict=False) for v in per_array])
        out = []
        for c in chunks:
            s, e = int(self._bounds[c]), int(self._bounds[c + 1])
            rows = []
            for a in self._arrays:
                v = next(values) if is_dask_array(a) else a[s:e]
                v = np.asarray(v)
                if v.shape[0] != e - s:
                    raise ValueError(
                        f"chunk {c} of a data array has {v.shape[0]} rows, not "
                        f"the {e - s} its chunks along axis 0 promise."
                    )
                rows.append(v)
            out.append((c, rows))
        return out
