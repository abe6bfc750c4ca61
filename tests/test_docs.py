"""Every Python snippet in README.md runs as pasted, in a fresh interpreter.

Each ```python block runs on its own (so each must be self-contained) in an
empty working directory. A snippet that uses CUDA runs under the CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``), as the CUDA tests do; one that uses dask
is skipped where the ``dask`` extra is not installed.
"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_snippets():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    return [(f"{i}:{_first_words(code)}", code) for i, code in enumerate(blocks)]


def _first_words(code):
    line = next((s for s in code.splitlines() if s and not s.startswith(("import", "from"))), "")
    return re.sub(r"\W+", "_", line)[:30]


SNIPPETS = python_snippets()


def test_the_readme_has_its_snippets():
    # the optimizer, checkpoints, the scipy front end, scaling out, GPUs
    assert len(SNIPPETS) >= 5, [name for name, _ in SNIPPETS]


@pytest.mark.parametrize("code", [c for _, c in SNIPPETS], ids=[n for n, _ in SNIPPETS])
def test_snippet_runs(code, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    run = code
    if "dask" in code:  # the "Scaling out" snippets need the dask extra
        pytest.importorskip("dask.array")
        pytest.importorskip("distributed")
        pytest.importorskip("zarr")
    if "cuda" in code:
        pytest.importorskip("numba.cuda")
        env["NUMBA_ENABLE_CUDASIM"] = "1"
        # The simulator's kernels are Python: keep them out of the shared cache.
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
        # Simulated GPU threads poll each other at every syncthreads(); without
        # frequent switches a 256x128 update takes minutes (test_cuda_cases.py does this too).
        run = "import sys; sys.setswitchinterval(1e-4)\n" + code
    proc = subprocess.run(
        [sys.executable, "-c", run],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"README snippet failed:\n{code}\n{proc.stdout}{proc.stderr}"
