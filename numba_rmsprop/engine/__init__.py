"""The engine: one element rule, compiled by a fused kernel per device.

Bottom layer of the package; it imports nothing from the layers above.

* :mod:`.hyperparameters` -- one description of the hyperparameters and the
  validators (constructor, config, front-end options and errors derive from it);
* :mod:`.spec` -- the fixed configuration as the kernels consume it;
* :mod:`.plan` -- the counter rules of one ``apply`` call (plain Python);
* :mod:`.layout` -- the per-call scalars: one layout for every kernel;
* :mod:`.rule` and :mod:`.clipping` -- the element rule and the clipping
  formulas, plain Python compiled by every kernel;
* :mod:`.arrays`, :mod:`.backend` -- array checks and the backend interface;
* :mod:`.cpu` (Numba ``@njit`` kernels) and :mod:`.cuda` (``@cuda.jit``
  kernels, imported only when used) -- a backend per device;
* :mod:`.threads` -- the thread policy; :mod:`.entries` -- compiled entry
  points; :mod:`.config` -- the package's tunables; :mod:`.cache_lock` -- a
  lock that lets processes share one Numba cache folder; :mod:`.jit` -- the
  package's ``njit``, whose cached kernels load without Numba's registries.
"""
