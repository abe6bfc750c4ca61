"""``njit`` for this package's kernels: Numba's, with a cache that loads without its registries.

Before it loads a cached function, Numba's ``Cache.load_overload`` calls
``target_context.refresh()``. The first time in a process that imports and
installs every typing and lowering registry Numba has (NumPy's linalg with a
``scipy.linalg`` import for its BLAS check, random generators, typed
containers, ...): 0.3-0.4 s on the project's 2-core machine, four times what
this package itself spends on a first ``apply``. Loading machine code needs
none of it: only the runtime (NRT) that the refresh initializes first, whose
absence was the crash the refresh was added for (numba/numba#2198).
:class:`FastLoadCache` initializes only that runtime, then loads as Numba does.

It serves only this package's kernels, which use no object mode and nothing
the registries add at run time (``tests/test_fast_load.py`` loads every
kernel family in a fresh process, checks no registry was imported and that
the results equal a process that compiled them). A user's functions keep
Numba's cache, and every compile (a cache miss, a user's objective) still
refreshes first, in Numba's compiler. ``NUMBA_RMSPROP_FAST_LOAD=0`` gives
this package's kernels Numba's cache too.
"""

from __future__ import annotations

import os

from numba import njit as _numba_njit
from numba.core import caching
from numba.core.dispatcher import Dispatcher

#: Whether cached kernels load through :class:`FastLoadCache`.
ENABLED: bool = os.environ.get("NUMBA_RMSPROP_FAST_LOAD", "1") != "0"

#: What :class:`FastLoadCache` uses of Numba's ``Cache`` (Numba 0.58 to 0.68).
_NEEDED = ("load_overload", "_load_overload", "_guard_against_spurious_io_errors")


class FastLoadCache(caching.FunctionCache):
    """Numba's ``FunctionCache``, loading after initializing only Numba's runtime (NRT).

    Made when its first overload is looked up, not when the kernel is defined:
    Numba's cache finds its folder (creating it and a test file) and stats the
    source file when made, which cost the import of the CPU kernels 15-30 ms.
    """

    def __init__(self, py_func):
        self._deferred = py_func

    def _ready(self) -> None:
        py_func = self.__dict__.pop("_deferred", None)
        if py_func is not None:
            super().__init__(py_func)

    def __getattr__(self, name):  # an attribute Numba's cache sets when made
        if name.startswith("__") or "_deferred" not in self.__dict__:
            raise AttributeError(name)
        self._ready()
        return getattr(self, name)

    @property
    def cache_path(self):
        self._ready()
        return self._cache_path

    def load_overload(self, sig, target_context):
        from numba.core.runtime import nrt

        self._ready()
        nrt.rtsys.initialize(target_context)  # what loaded code links against; once a process
        with self._guard_against_spurious_io_errors():
            loaded = self._load_overload(sig, target_context)
        if loaded is not None and (loaded.objectmode or loaded.lifted):  # pragma: no cover
            target_context.refresh()  # object mode needs the registries; no kernel here has it
        return loaded

    def save_overload(self, sig, data):
        self._ready()
        return super().save_overload(sig, data)

    def flush(self):
        self._ready()
        return super().flush()


def _supported() -> bool:
    return all(hasattr(caching.FunctionCache, name) for name in _NEEDED)


def _no_extension_hook() -> None:
    """Stands for Numba's hook that runs its extensions' entry points (see :func:`njit`)."""


def _ours(dispatcher):
    """``dispatcher`` without Numba's extension hook on its first call (see :func:`njit`)."""
    if isinstance(dispatcher, Dispatcher):
        dispatcher._compilation_chain_init_hook = _no_extension_hook
    return dispatcher


def _with_cache(dispatcher):
    """``dispatcher`` with a disk cache: a :class:`FastLoadCache`, or Numba's own."""
    if not isinstance(dispatcher, Dispatcher):  # NUMBA_DISABLE_JIT: the Python function
        return dispatcher
    if ENABLED and _supported():
        dispatcher._cache = FastLoadCache(dispatcher.py_func)
    else:
        dispatcher.enable_caching()
    return dispatcher


def njit(*args, **options):
    """``numba.njit`` for this package's kernels.

    With ``cache=True`` the dispatcher loads through :class:`FastLoadCache`. And
    its first call skips Numba's extension hook, which runs the ``init`` entry
    points of the ``numba_extensions`` group before typing the arguments (reading
    every installed package's entry points: 45 ms in the project's venv of 111
    packages) so that types an extension defines are known: the kernels take only
    NumPy arrays, tuples, None and numbers that the package builds. A user's
    first compile still runs the hook.
    """
    if not options.get("cache"):
        made = _numba_njit(*args, **options)
        if isinstance(made, Dispatcher):
            return _ours(made)
        return lambda func: _ours(made(func))
    made = _numba_njit(*args, **dict(options, cache=False))
    if isinstance(made, Dispatcher):
        return _ours(_with_cache(made))

    def decorate(func):
        return _ours(_with_cache(made(func)))

    return decorate
