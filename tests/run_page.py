"""Run the code blocks of a Markdown page as a reader would: ``python tests/run_page.py PAGE``.

* A ```` ```python ```` block runs as a script in a fresh interpreter of its own
  (``python -c``): each one is self-contained, so a reader can paste any one of them
  alone (a GPU block can still choose the CUDA simulator before numba loads).
* A ```` ```pycon ```` block is a doctest (``>>>`` prompts and the output they print):
  the output must match (``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``). The ``pycon``
  blocks of a page share one namespace, in page order, as in one interpreter session.

Other blocks (``bash``, ``text``) are not run. Exits 1, naming the block and its first
line, when a block fails. ``tests/test_docs.py`` runs every page of ``docs/`` and the
README this way, each in a fresh interpreter (the CUDA pages under the simulator).
"""

from __future__ import annotations

import doctest
import re
import subprocess
import sys

FENCE = re.compile(r"^```([^\s`]+)[^\n]*\n(.*?)^```", flags=re.S | re.M)


def blocks(text: str) -> list[tuple[str, int, str]]:
    """``(language, line number, code)`` of each fenced block of ``text``."""
    return [
        (m.group(1), text.count("\n", 0, m.start()) + 2, m.group(2)) for m in FENCE.finditer(text)
    ]


def run(path: str) -> int:
    text = open(path, encoding="utf-8").read()
    session: dict = {"__name__": "__main__"}
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    ran = 0
    for language, line, code in blocks(text):
        where = f"{path}, line {line}"
        if language == "python":
            if "cuda" in code:
                # Simulated GPU threads poll each other at every syncthreads(): switch
                # often, or a simulated update takes minutes (as test_cuda_cases.py does).
                code = "import sys; sys.setswitchinterval(1e-4)\n" + code
            proc = subprocess.run([sys.executable, "-c", code])
            if proc.returncode:
                print(f"FAILED: the python block at {where}", file=sys.stderr)
                return 1
        elif language == "pycon":
            test = doctest.DocTestParser().get_doctest(code, session, where, path, line - 1)
            runner = doctest.DocTestRunner(optionflags=flags)
            runner.run(test, clear_globs=False)
            session = test.globs  # (a DocTest runs in a copy of the namespace it gets)
            if runner.failures:
                print(f"FAILED: the pycon block at {where}", file=sys.stderr)
                return 1
        else:
            continue
        ran += 1
    print(f"{ran} blocks ran")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
