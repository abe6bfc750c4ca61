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

import inspect
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

    Made when it is first used, not when the kernel is defined: Numba's cache
    finds its folder (creating it and a test file) and stats the source file
    when made, which cost the import of the CPU kernels 15-30 ms. The first
    attribute of Numba's cache that a method reads (each reads one before it
    does anything) makes it.
    """

    def __init__(self, py_func):
        self._deferred = py_func

    def __getattr__(self, name):  # not found: an attribute Numba's cache sets when made
        if name.startswith("__") or "_deferred" not in self.__dict__:
            raise AttributeError(name)
        py_func = self.__dict__.pop("_deferred")
        super().__init__(py_func)
        return getattr(self, name)

    def load_overload(self, sig, target_context):
        from numba.core.runtime import nrt

        nrt.rtsys.initialize(target_context)  # what loaded code links against; once a process
        with self._guard_against_spurious_io_errors():
            loaded = self._load_overload(sig, target_context)
        if loaded is not None and (loaded.objectmode or loaded.lifted):  # pragma: no cover
            target_context.refresh()  # object mode needs the registries; no kernel here has it
        return loaded


def _supported() -> bool:
    return all(hasattr(caching.FunctionCache, name) for name in _NEEDED)


def _no_extension_hook() -> None:
    """Stands for Numba's hook that runs its extensions' entry points (see :func:`njit`)."""


def _ours(dispatcher, cache: bool):
    """``dispatcher`` as :func:`njit` makes it: without Numba's extension hook, and with
    a disk cache if ``cache`` (a :class:`FastLoadCache`, or Numba's own)."""
    if not isinstance(dispatcher, Dispatcher):  # NUMBA_DISABLE_JIT: the Python function
        return dispatcher
    dispatcher._compilation_chain_init_hook = _no_extension_hook
    if cache and ENABLED and _supported():
        dispatcher._cache = FastLoadCache(dispatcher.py_func)
    elif cache:
        dispatcher.enable_caching()
    return dispatcher


def njit(*args, **options):
    """``numba.njit`` for this package's kernels: ``njit(func)`` or ``njit(**options)``.

    With ``cache=True`` the dispatcher loads through :class:`FastLoadCache`. And
    its first call skips Numba's extension hook, which runs the ``init`` entry
    points of the ``numba_extensions`` group before typing the arguments (reading
    every installed package's entry points: 45 ms in the project's venv of 111
    packages) so that types an extension defines are known: the kernels take only
    NumPy arrays, tuples, None and numbers that the package builds. A user's
    first compile still runs the hook.
    """
    cache = bool(options.pop("cache", False))
    if args and inspect.isfunction(args[0]):
        return _ours(_numba_njit(*args, **options), cache)
    made = _numba_njit(*args, **options)
    return lambda func: _ours(made(func), cache)
