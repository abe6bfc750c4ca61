"""The CPU backend: :mod:`.kernels` (``@njit`` serial, ``prange`` and grouped kernels of
the element rule) and :mod:`.backend` (runs a plan over NumPy arrays)."""
