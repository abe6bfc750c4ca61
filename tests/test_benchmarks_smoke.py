"""Smoke test of ``benchmarks/`` (needs neither asv nor the peer libraries), well under a minute.

asv suites: for every module of the ``benchmarks`` package, import it, and
for every public benchmark class in it run -- as asv would, but once --
``setup_cache`` (in a scratch working directory), ``setup``, one call of each
``time_``/``track_``/``peakmem_``/``mem_`` method and ``teardown``, for the
smallest parameter combination only (numbers: the smallest; strings: the
first). A size of 1e7 or more, where it is a parameter's only value, is run
at 1000 elements instead. ``track_`` values must be positive finite numbers.
A ``setup`` raising ``NotImplementedError`` (asv's skip: a missing peer or
GPU) skips its class. Also checks what asv's discovery would trip over: a
module-level function named like a benchmark must take no arguments or carry
``skip_benchmark``.

The report script ``report.py``: every section at tiny sizes but
``first_call`` (whose children the ``bench_compile`` suites run) and
``time_to_loss`` (scipy's full runs: import only); ``peers`` with one child
per peer; run as a file, with a child per section; each must print its Markdown with the
machine description and the command. Peers that are not installed are
skipped by the scripts themselves.
"""

# The benchmark scripts are development tools, and each of these checks compiles
# what its suite measures (~1 min in all with a cold cache): .ci/run runs them
# (pytest -m slow); the README's test command does not.

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import os
import pkgutil
import re
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "benchmarks")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

BENCH_PREFIX = re.compile(r"^(time|timeraw|track|mem|peakmem)_")
RUN_PREFIX = re.compile(r"^(time|track|mem|peakmem)_")  # timeraw_ returns code: not called
BIG = 10_000_000
SMALL_STANDIN = 1_000

MODULES = sorted(name for _, name, _ in pkgutil.iter_modules([BENCH_DIR]))


def _param_lists(cls):
    params = getattr(cls, "params", None)
    if not params:
        return []
    if all(isinstance(p, (list, tuple)) for p in params):
        return [list(p) for p in params]
    return [list(params)]


def _smallest(values):
    if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        v = min(values)
        if v >= BIG:
            v = type(v)(SMALL_STANDIN)
        return v
    return values[0]


def _benchmark_classes(module):
    for cname, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module.__name__ or cname.startswith("_"):  # as asv
            continue
        names = [n for n, f in inspect.getmembers(cls, inspect.isfunction) if BENCH_PREFIX.match(n)]
        if names:
            yield cls, names


def _check_track(value, where):
    assert isinstance(value, numbers.Real) and not isinstance(value, bool), (where, value)
    assert math.isfinite(value) and value > 0, (where, value)


@pytest.mark.parametrize(
    "modname",
    MODULES,
)
def test_benchmark_module(modname, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_SMOKE", "1")  # common.sized: the suites' smoke sizes
    module = importlib.import_module(f"benchmarks.{modname}")

    for name, obj in vars(module).items():
        if inspect.isfunction(obj) and BENCH_PREFIX.match(name) and not name.startswith("_"):
            required = [
                p
                for p in inspect.signature(obj).parameters.values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            assert getattr(obj, "skip_benchmark", False) or not required, (
                f"asv would collect the helper {modname}.{name}() as a benchmark and "
                "`asv check` fails on it: rename it (e.g. with a leading underscore) or "
                "set its `skip_benchmark = True`"
            )

    ran, skipped = [], []
    for cls, names in _benchmark_classes(module):
        args = tuple(_smallest(v) for v in _param_lists(cls))
        inst = cls()
        where = f"{modname}.{cls.__name__}{args}"
        if hasattr(inst, "setup_cache"):
            scratch = tmp_path / cls.__name__
            scratch.mkdir()
            monkeypatch.chdir(scratch)  # asv runs setup_cache and the suite there
            args = (inst.setup_cache(),) + args
        try:
            if hasattr(inst, "setup"):
                inst.setup(*args)
        except NotImplementedError as exc:
            skipped.append(f"{where}: {exc}")
            continue
        try:
            for name in names:
                if not RUN_PREFIX.match(name):
                    continue
                value = getattr(inst, name)(*args)
                if name.startswith("track_"):
                    _check_track(value, f"{where}.{name}")
                ran.append(f"{where}.{name}")
        finally:
            if hasattr(inst, "teardown"):
                inst.teardown(*args)
    if skipped and not ran:
        pytest.skip("; ".join(skipped))


def _check_report(text, *expected):
    assert "- CPU:" in text and "- Command: `" in text, text[:2000]
    for e in expected:
        assert e in text, (e, text[-3000:])
    assert "Failed:" not in text, text


def test_report_quick(capsys):
    from benchmarks import report

    names = [n for n in report.PRESETS["all"] if n not in ("first_call", "peers", "time_to_loss")]
    results = report.main(["--quick", "--in-process", "--sections", *names])
    _check_report(capsys.readouterr().out, *(report.SECTIONS[n][0] for n in names))
    for variant in ("ours", "handwritten"):
        r = results["training"][variant]
        assert r["finite"] and r["decreasing"], r
    assert results["training"]["agreement"]["one_step_max_ulps"] <= 1


def test_report_as_a_script_with_children():
    import subprocess

    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH_DIR, "report.py"), "--quick", "--sections", "minimize"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_report(proc.stdout, "| compiled loop, @njit objective |")


def test_peers_isolated(capsys):
    from benchmarks import report

    report.main(
        [
            "--quick",
            "--in-process",
            "--sections",
            "peers",
            "--set",
            'peers.peers=["ours", "numpy", "torch_shift", "bw_par"]',
        ]
    )
    _check_report(
        capsys.readouterr().out,
        "### centered+momentum, float32",
        "Trajectory agreement",
        "one process per peer",
    )
