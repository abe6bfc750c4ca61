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
Numba's cache; the objective of a run, if cached (``@njit(cache=True)``), is
loaded the same way by :func:`load_cached` before the run's first call (its
code may still import what it needs: an objective calling ``np.sum`` or ``@``
imports ``numba.np.arraymath`` and, for its BLAS check, ``scipy.linalg``,
when it loads). Every compile (a cache miss, a new objective) still
refreshes first, in Numba's compiler. ``NUMBA_RMSPROP_FAST_LOAD=0`` gives
this package's kernels, and the objectives, Numba's loading.
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
        return _load(self, sig, target_context)


def _load(cache, sig, target_context):
    """What Numba's ``FunctionCache.load_overload`` does, initializing only the NRT."""
    from numba.core.runtime import nrt

    nrt.rtsys.initialize(target_context)  # what loaded code links against; once a process
    with cache._guard_against_spurious_io_errors():
        loaded = cache._load_overload(sig, target_context)
    if loaded is not None and (loaded.objectmode or loaded.lifted):
        target_context.refresh()  # object mode needs the registries (none of our kernels)
    return loaded


def load_cached(dispatcher, sig: tuple | None = None, args: tuple = ()) -> None:
    """Load a user's ``@njit(cache=True)`` function for ``sig`` as this package's kernels load.

    A warm first call of ``minimize`` with such an objective spent 0.35 s of its
    0.5 s in the registries that Numba's cache loads first. Where ``dispatcher``
    has Numba's own disk cache and no compiled version yet, this loads the one
    for the argument types ``sig`` (a tuple; or the types its call gives
    ``args``, typed only then: 30-50 us) as ``Dispatcher.compile`` does on a
    cache hit, initializing only the NRT. Otherwise (no cache, a version already
    in, a cache miss, ``NUMBA_RMSPROP_FAST_LOAD=0``) it does nothing, and the
    call finds its version, or loads or compiles it as Numba does: only a
    process's first version of a function gains from loading fast.
    """
    from numba.core.compiler_lock import global_compiler_lock

    if not (ENABLED and _supported() and isinstance(dispatcher, Dispatcher)):
        return
    cache = dispatcher._cache  # (Numba's Dispatcher.compile, less its target refresh)
    if type(cache) is not caching.FunctionCache or dispatcher.overloads:
        return  # no cache (or another kind); or a version is in, and Numba's load with it
    if sig is None:
        sig = tuple(map(dispatcher.typeof_pyval, args))
    with global_compiler_lock:
        if sig in dispatcher.overloads:
            return
        cres = _load(cache, sig, dispatcher.targetctx)
        if cres is None:
            return
        dispatcher._cache_hits[sig] += 1
        if not cres.objectmode:
            dispatcher.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
        dispatcher.add_overload(cres)


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
