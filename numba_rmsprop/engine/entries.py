"""Compiled entry points: a dispatcher's compiled function for given argument types.

Calling a compiled entry directly skips Numba's type dispatch (tens of
microseconds for a tuple of arrays); :func:`type_key` is a much cheaper key
that stands for ``numba.typeof``, and :class:`EntryCache` remembers entries
by it.
"""

from __future__ import annotations

import inspect

import numba
import numpy as np


def type_key(value):
    """A hashable key that equals for values Numba types alike, or None when unsure.

    Much cheaper than ``numba.typeof`` (about 1 us against 20-50 us for a
    tuple of arrays): arrays by dtype, dimension, layout, writeability and
    alignment (the fields of ``numba.types.Array``), Python and NumPy scalars by
    type (integers also by whether they fit int64), tuples element by element.
    Anything else gives None: the caller then types it with Numba.
    """
    if value is None or isinstance(value, (bool, float, complex, str)):
        return value.__class__
    if isinstance(value, np.ndarray):
        f = value.flags
        layout = "C" if f.c_contiguous else "F" if f.f_contiguous else "A"
        return (
            value.dtype.str,
            value.dtype.isnative,
            value.ndim,
            layout,
            f.writeable,
            f.aligned,
            type(value) is np.ndarray,
        )
    if isinstance(value, int):
        return (int, -(1 << 63) <= value < (1 << 63))
    if isinstance(value, np.generic):
        return (value.__class__, value.dtype.str)
    if isinstance(value, tuple) and value.__class__ is tuple:
        keys = tuple(type_key(v) for v in value)
        return None if any(k is None for k in keys) else ("tuple",) + keys
    return None


class EntryCache:
    """A small bounded map from a key to a compiled entry point (oldest out first)."""

    def __init__(self, size: int = 256):
        self.size = size
        self.entries: dict = {}

    @staticmethod
    def key(owner, args):
        """``(owner, type_key(args))``, or None when the arguments' key is unsure."""
        key = type_key(args)
        return None if key is None else (owner, key)

    def get(self, key):
        return None if key is None else self.entries.get(key)

    def put(self, key, entry) -> None:
        if key is None:
            return
        if len(self.entries) >= self.size:
            self.entries.pop(next(iter(self.entries)), None)
        self.entries[key] = entry


_ENTRIES = EntryCache()


def entry_point(dispatcher, args, **replace):
    """The compiled entry of ``dispatcher`` for the types of ``args``, or the dispatcher.

    Calling the entry skips Numba's type dispatch: the caller guarantees that
    later calls pass arguments of the same types. ``replace`` names
    arguments (by the kernel's parameter names) whose type is read from
    another array of the same dtype, dimension and layout (e.g. the group's
    own gradient buffer for a user's, possibly read-only, gradient). Entries
    are remembered by :func:`type_key` of the arguments.
    """
    if replace:
        names = list(inspect.signature(dispatcher.py_func).parameters)
        args = tuple(replace.get(n, a) for n, a in zip(names, args, strict=False))
    key = EntryCache.key(dispatcher, args)
    entry = _ENTRIES.get(key)
    if entry is not None:
        return entry
    try:
        entry = dispatcher.compile(tuple(numba.typeof(a) for a in args))
    except Exception:  # pragma: no cover - numba internals changed
        return dispatcher
    _ENTRIES.put(key, entry)
    return entry
