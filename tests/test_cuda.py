"""The CUDA backend, tested without a GPU.

* ``tests/test_cuda_cases.py`` (parity with the CPU backend and the NumPy
  reference, checkpoints, errors) runs under the CUDA simulator in the test
  session itself; where a GPU is present it runs on it too (here, in a
  subprocess).
* The kernels are compiled to PTX for a real GPU (sm_90) with libNVVM, which
  needs no GPU: this checks what the simulator cannot (typing, no Python
  objects), including that float32 kernels do no float64 arithmetic. It takes
  ~40 s and is marked ``slow``: ``.ci/run`` runs it (``pytest -m slow``).
* ``device="cuda"`` without a usable CUDA, and the package without numba-cuda
  at all, are simulated in subprocesses.

Skipped only when numba-cuda itself is not installed.
"""

import os
import re
import shlex
import subprocess
import sys
import textwrap

import pytest

from numba_rmsprop.engine.cuda.driver import INSTALL_HINT

try:
    import numba.cuda  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(
        f"numba-cuda is not installed ({exc}); install it with {INSTALL_HINT}",
        allow_module_level=True,
    )

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join("tests", "test_cuda_cases.py")


def _run(args, env_extra=None, timeout=600):
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _script(code, env_extra=None):
    return _run(["-c", textwrap.dedent(code)], env_extra)


def _tail(proc, n=6000):
    out = proc.stdout + proc.stderr
    return out[-n:]


def test_real_gpu_cases():
    """The CUDA cases (tests/test_cuda_cases.py, which run under the simulator in this
    session) again on a real GPU, where one is present: in a subprocess without the
    simulator."""
    probe = _script("from numba import cuda; print(cuda.is_available())")
    if probe.stdout.strip() != "True":
        pytest.skip("no CUDA GPU on this machine (the simulator cases cover the logic)")
    proc = _run(
        ["-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", CASES],
        {"NUMBA_RMSPROP_REAL_GPU": "1"},
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{CASES} failed on the GPU:\n{out[-8000:]}"
    m = re.search(r"(\d+) passed", out)
    assert m and int(m.group(1)) >= 44, out[-8000:]


PTX_CHECK = r"""
import os, re, sys
import numpy as np
from numba import cuda, types

if not cuda.is_available():
    # Compile without a GPU: pin the target architecture and skip NVRTC's
    # architecture query (these are numba-cuda internals; any failure to
    # set this up is reported as "cannot compile here", exit 77).
    try:
        os.environ.setdefault("CUDA_HOME", "/usr/local/cuda")
        from numba.cuda.cudadrv import nvrtc
        from numba.cuda import cuda_paths
        import numba.cuda.dispatcher as dispatcher

        nvrtc.get_supported_ccs = lambda: ((7, 5), (8, 0), (8, 6), (8, 9), (9, 0))
        nvrtc.get_lowest_supported_cc = lambda: (7, 5)
        cuda_paths._get_nvrtc_path = lambda: ("none", None)

        class _Device:
            compute_capability = (9, 0)

        dispatcher.get_current_device = lambda: _Device()

        def probe(a):
            a[0] = a[0] * 2.0

        cuda.compile_ptx(probe, (types.float64[::1],), cc=(9, 0))
    except Exception as exc:
        print(f"cannot compile CUDA kernels here: {type(exc).__name__}: {exc}")
        sys.exit(77)

from numba_rmsprop.engine.cuda import kernels as C

f32, f64, i64, i32 = types.float32, types.float64, types.int64, types.int32


def a1(t):
    return types.Array(t, 1, "C")


def ptx(kernel, sig):
    return cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))[0]


F64_OP = re.compile(r"\b(?:add|sub|mul|div|sqrt|fma|neg|cvt)\.[a-z0-9.]*f64")


def assert_float32_only(src, what):
    bad = sorted(set(F64_OP.findall(src)))
    assert not bad, f"{what}: float64 arithmetic in a float32 kernel: {bad}"


from numba_rmsprop.engine import layout
from numba_rmsprop.engine import rule

off = (None,) * len(rule.SWITCHES)


def switches(*on):
    return tuple(True if k in on else None for k in range(len(rule.SWITCHES)))


every = switches(*[k for k in range(len(rule.SWITCHES)) if k != rule.COUPLED_DECAY])
torch_like = switches(rule.COUPLED_DECAY, rule.EPSILON_OUTSIDE_SQRT, rule.LEARNING_RATE_OUTSIDE)
optax_like = switches(rule.BIAS_CORRECTION, rule.NESTEROV, rule.SCALE_LOSS)

n = 0
for sw, flags in [(off, (False,) * 5), (every, (True,) * 5),
                  (torch_like, (False, True, True, False, True)),
                  (optax_like, (True, True, True, True, False)),
                  (off, (False, True, False, False, False))]:
    for t in (f32, f64):
        a = a1(t)
        s = types.UniTuple(t, layout.N_SLOTS)
        src = ptx(C._make_update_kernel(sw, *flags), (a,) * 7 + (s, a, i64, i64, i64))
        if t is f32:
            assert_float32_only(src, f"update{sw, flags}")
        n += 1
for sw, acc in [(off, False), (every, True)]:
    for t in (f32, f64):
        a = a1(t)
        s = types.UniTuple(t, layout.N_SLOTS)
        ptx(C._make_sumsq_kernel(sw, acc), (a, a, s, a1(f64), i64, a1(i32), a1(f64), i64))
        src = ptx(C._make_accumulate_kernel(sw, acc), (a, a, a, a, s, i64))
        if t is f32:
            assert_float32_only(src, f"accumulate{sw, acc}")
        n += 2
ptx(C._factor_kernel, (a1(f64), i64, i64, f64, a1(f32), a1(f64)))
for t in (f32, f64):
    src = ptx(C._ema_kernel, (a1(t), a1(t), types.UniTuple(t, layout.N_SLOTS), i64))
    if t is f32:
        assert_float32_only(src, "ema")
    ptx(C._fill_kernel, (a1(t), t))
    ptx(C._copy_kernel, (a1(t), a1(t)))
    for nd, kernel in C._STRIDED.items():
        ptx(kernel, (types.Array(t, nd, "A"), a1(t), i64, i64))
ptx(C._fill_kernel, (a1(i32), i32))

# minimize_many's fused step (one block per run) for a few layouts, and its gathers.
from numba_rmsprop import RMSprop
from numba_rmsprop.frontend.state import make_state
from numba_rmsprop.many import cuda as M

for kw, bounds in [({}, False), (dict(momentum=0.9, centered=True, use_ema=True,
                                      gradient_accumulation_steps=2, clipnorm=1.0), True),
                   (dict(momentum=0.9, nesterov=True, bias_correction=True,
                         global_clipnorm=1.0, maximize=True, weight_decay=0.1,
                         decoupled_weight_decay=False), False)]:
    spec = RMSprop(**kw)._spec
    for t in (f32, f64):
        dt = np.float32 if t is f32 else np.float64
        lb = (np.zeros(3, dt), np.ones(3, dt)) if bounds else None
        st = make_state(spec, np.zeros((2, 3), dt), lb, gtol=1e-3, ftol=1e-3,
                                  patience=3, tol_momentum=0.9, initial_velocity=0.0)
        for per_run in (False, True):
            k = M._make_step_kernel(st.cfg, bounds, per_run, dt)
            sig = (types.Array(t, 3, "C"), types.Array(t, 2, "C"), a1(f64),
                   types.Array(f64, 2, "C"), types.Array(t, 2, "C"), types.Array(i64, 2, "C"),
                   a1(i64), i64, t, a1(t), a1(i64))
            src = ptx(k, sig)
            n += 1
    ptx(M._gather_columns, (types.Array(t, 3, "C"), a1(i64), types.Array(t, 2, "C")))
    ptx(M._take_middle, (types.Array(t, 3, "C"), a1(i64), types.Array(t, 3, "C")))
print(f"compiled {n} configured kernels and the helpers")
"""


@pytest.mark.slow
def test_kernels_compile_for_a_real_gpu():
    """Every kernel compiles to PTX; float32 kernels stay in float32."""
    proc = _script(PTX_CHECK)
    if proc.returncode == 77:
        pytest.skip(proc.stdout.strip() or "libNVVM unavailable")
    assert proc.returncode == 0, _tail(proc)
    assert "compiled" in proc.stdout


@pytest.mark.parametrize(
    "reason, expected",
    [
        ("CUDA driver library cannot be found.", "driver could not be initialised"),
        (None, "no CUDA-capable GPU is visible"),
    ],
)
def test_device_cuda_without_a_usable_gpu_says_what_is_missing(reason, expected):
    proc = _script(f"""
        from numba import cuda
        cuda.is_available = lambda: False
        cuda.cuda_error = lambda: {reason!r}
        from numba_rmsprop import RMSprop
        try:
            RMSprop(device="cuda")
        except RuntimeError as exc:
            print("ERROR:", exc)
        else:
            print("no error")
    """)
    assert proc.returncode == 0, _tail(proc)
    assert "ERROR:" in proc.stdout, proc.stdout
    assert expected in proc.stdout
    _assert_names_working_install_commands(proc.stdout)


def _assert_names_working_install_commands(message):
    """The message names commands that work without a package index entry for
    numba-rmsprop (it is installed from a checkout), and reads cleanly."""
    assert INSTALL_HINT in message, message
    assert "numba-rmsprop[cuda]" not in message  # not on an index
    assert ".." not in message.replace('".[cuda]"', ""), message
    assert "  " not in message.strip(), message
    commands = [shlex.split(c) for c in re.findall(r"`(pip install [^`]*)`", message)]
    assert ["pip", "install", "-e", ".[cuda]"] in commands, commands
    spec = [c[2] for c in commands if len(c) == 3 and c[2].startswith("numba-cuda")]
    assert spec, commands
    # The same requirement as the `cuda` extra in pyproject.toml.
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    assert extras["cuda"] == spec, (extras["cuda"], spec)


BLOCK_NUMBA_CUDA = """
    import importlib.abc
    import sys

    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "numba.cuda" or name.startswith("numba.cuda.") \\
                    or name.split(".")[0] in ("numba_cuda", "cuda"):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, _Block())
"""


def test_without_numba_cuda_the_cpu_path_works_and_cuda_names_the_extra():
    proc = _script(
        BLOCK_NUMBA_CUDA
        + """
    import numpy as np
    import numba_rmsprop
    from numba_rmsprop import RMSprop

    x = np.ones(4)
    opt = RMSprop(0.1, momentum=0.9)
    opt.apply([np.ones(4)], [x])
    assert opt.device == "cpu" and np.all(x < 1), x
    assert opt.state_dict()["iterations"] == 1
    assert not any(m == "numba.cuda" or m.startswith("numba.cuda.") for m in sys.modules
                   if sys.modules[m] is not None)
    try:
        RMSprop(device="cuda")
    except ImportError as exc:
        print("ERROR:", exc)
    else:
        print("no error")
    """
    )
    assert proc.returncode == 0, _tail(proc)
    assert "ERROR:" in proc.stdout, proc.stdout
    _assert_names_working_install_commands(proc.stdout)
