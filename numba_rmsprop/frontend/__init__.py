"""The ``scipy.optimize.minimize`` front end: :func:`minimize` and :func:`rmsprop`.

:mod:`.api` holds the public functions, the options and the stop table;
the loops (Python and compiled), the objective's forms, minibatches
(in memory, or streamed from dask arrays), learning-rate blocks and the
progress display each have a module of their own.
"""

from .api import minimize, rmsprop

__all__ = ["minimize", "rmsprop"]
