"""A file lock around Numba's cache writes, so that processes can share one cache folder.

Numba's disk cache (``cache=True``) is not safe for concurrent first compiles of
different signatures of one function in one folder (numba/numba#4807): saving
an entry reads the function's index, picks the first free data-file number,
writes the index and then the data. Two processes doing that at once can pick
the same number, and a signature then loads the other's machine code. This
happens whenever several processes compile into one folder: Dask workers of
one machine, pytest-xdist workers, a script and its subprocesses.

:func:`install` wraps ``numba.core.caching.IndexDataCacheFile.save`` in an
exclusive lock (``fcntl.flock`` on ``<index>.lock`` beside the index), and
writes an entry's data before the index entry that names it, so that a reader
(which takes no lock) never finds an entry whose data is missing or is a
stale file of an older build. Loading is unchanged. It changes nothing else
and costs one lock per compiled signature. ``import numba_rmsprop`` installs
it; ``NUMBA_RMSPROP_CACHE_LOCK=0`` leaves Numba as it is. Where ``fcntl`` does
not exist (Windows) nothing is installed.
"""

from __future__ import annotations

import contextlib
import itertools
import os

#: The methods of ``IndexDataCacheFile`` the locked ``save`` uses (Numba 0.58 to 0.68).
_NEEDED = ("save", "_load_index", "_save_index", "_save_data", "_data_name")


@contextlib.contextmanager
def _locked(path: str):
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _save(self, key, data) -> None:
    """``IndexDataCacheFile.save`` under the index's lock, data before index."""
    with _locked(self._index_path + ".lock"):
        overloads = self._load_index()
        name = overloads.get(key)
        if name is None:
            taken = set(overloads.values())
            name = next(n for n in map(self._data_name, itertools.count(1)) if n not in taken)
            self._save_data(name, data)
            overloads[key] = name
            self._save_index(overloads)
        else:
            self._save_data(name, data)


def install() -> bool:
    """Lock Numba's cache writes (see the module docstring); True when installed."""
    if os.environ.get("NUMBA_RMSPROP_CACHE_LOCK", "1") == "0":
        return False
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - Windows
        return False
    from numba.core import caching

    cls = getattr(caching, "IndexDataCacheFile", None)
    if cls is None or not all(hasattr(cls, name) for name in _NEEDED):  # pragma: no cover
        return False  # another Numba layout: leave it alone
    if cls.save is not _save:
        cls.save = _save
    return True
