"""The CUDA backend (imported only when a CUDA array or ``device="cuda"`` shows up):
:mod:`.backend` runs a plan over device arrays with ``@cuda.jit`` kernels of the
element rule."""
