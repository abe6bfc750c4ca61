"""Every code block of the README and of the guide pages in ``docs/`` runs, as pasted.

Each page runs in a fresh interpreter (``tests/run_page.py``), in an empty working
directory: ```` ```python ```` blocks each on their own, ```` ```pycon ```` blocks as
doctests whose printed output must match. A page that uses CUDA falls back to the CUDA
simulator by itself where no GPU can be used (its first lines set ``NUMBA_ENABLE_CUDASIM=1``
before numba loads): the test runs it as a reader would, without setting it. The Dask
pages start their own ``LocalCluster`` with process workers.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_page import blocks  # noqa: E402

PAGES = ["README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))
)
RUNNABLE = ("python", "pycon")


def _code(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as fh:
        return [(lang, code) for lang, _, code in blocks(fh.read()) if lang in RUNNABLE]


WITH_CODE = [p for p in PAGES if _code(p)]

#: Pages whose blocks take long with a cold cache: the Dask/Zarr page starts clusters of
#: process workers and streams a Zarr store (~19 s); the many-fits page compiles the
#: compiled vectorized loop in its own interpreter (~25 s; tests/test_many_columns.py
#: checks that loop in the README's test command). Run by .ci/run (pytest -m slow), kept
#: out of the README's test command, like the cluster tests of test_dask.py.
SLOW_PAGES = {os.path.join("docs", "scaling_out.md"), os.path.join("docs", "many.md")}


def test_the_guide_has_its_code():
    # the README, getting started, the optimizer, porting, scipy, many, scaling out, GPUs
    names = {os.path.basename(p) for p in WITH_CODE}
    expected = {"README.md", "getting_started.md", "optimizer.md", "porting.md", "scipy.md"}
    expected |= {"many.md", "scaling_out.md", "gpus.md"}
    assert expected <= names, sorted(names)


def test_every_code_block_says_its_language():
    """A fence without a language would be skipped silently: every block names one."""
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding="utf-8") as fh:
            text = fh.read()
        fences = text.count("\n```") + text.startswith("```")
        named = len(blocks(text))
        assert fences == 2 * named, f"{page}: a fence without a language (or unclosed)"


@pytest.mark.parametrize(
    "page", [pytest.param(p, marks=pytest.mark.slow) if p in SLOW_PAGES else p for p in WITH_CODE]
)
def test_page_runs(page, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    code = "\n".join(c for _, c in _code(page))
    if "dask" in code:  # the "Scaling out" blocks need the dask extra
        pytest.importorskip("dask.array")
        pytest.importorskip("distributed")
        pytest.importorskip("zarr")
    cmd = [sys.executable, os.path.join(ROOT, "tests", "run_page.py"), os.path.join(ROOT, page)]
    if "cuda" in code:
        pytest.importorskip("numba.cuda")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{page}:\n{proc.stdout}{proc.stderr}"
    ran = int(proc.stdout.strip().splitlines()[-1].split()[0])
    assert ran == len(_code(page)), proc.stdout


def test_the_readme_figures_are_the_reports():
    """Each figure of the README's "Measured" table (in bold) is printed, as written, in the
    committed report its row links to (``docs/reports/*.md``, each the output of the command
    at its top): a number that is not there was not measured by a committed command."""
    import re

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = text.split("\n## Measured\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "**" in line]
    assert len(rows) >= 4, section
    for row in rows:
        reports = re.findall(r"\((docs/reports/[\w.-]+\.md)\)", row)
        assert reports, f"no report linked: {row}"
        printed = ""
        for path in reports:
            with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
                printed += fh.read()
        assert "- Command: `" in printed, f"{reports}: not a report"
        for figure in re.findall(r"\*\*([^*]+)\*\*", row):
            assert figure in printed, f"{figure!r} is not in {reports}"
