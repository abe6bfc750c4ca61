"""Smoke test of the asv suites in ``benchmarks/`` (needs neither asv nor the peer libraries).

For every module of the ``benchmarks`` package: import it, and for every
benchmark class defined in it run -- as asv would, but once --
``setup_cache`` (in a scratch working directory), ``setup``, one call of each
``time_``/``track_``/``peakmem_``/``mem_`` method and ``teardown``, for the
smallest parameter combination only (numbers: the smallest; strings: the
first). A size of 1e7 or more, where it is a parameter's only value, is run
at 1000 elements instead. ``track_`` values must be positive finite numbers.
A ``setup`` raising ``NotImplementedError`` (asv's skip) skips its class.

Also checks what asv's discovery would trip over: a module-level function
named like a benchmark must take no arguments or carry ``skip_benchmark``.
"""

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
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module.__name__:
            continue
        names = [n for n, f in inspect.getmembers(cls, inspect.isfunction) if BENCH_PREFIX.match(n)]
        if names:
            yield cls, names


def _check_track(value, where):
    assert isinstance(value, numbers.Real) and not isinstance(value, bool), (where, value)
    assert math.isfinite(value) and value > 0, (where, value)


@pytest.mark.parametrize("modname", MODULES)
def test_benchmark_module(modname, tmp_path, monkeypatch):
    module = importlib.import_module(f"benchmarks.{modname}")

    for name, obj in vars(module).items():
        if inspect.isfunction(obj) and BENCH_PREFIX.match(name) and not name.startswith("_"):
            required = [p for p in inspect.signature(obj).parameters.values()
                        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                               p.POSITIONAL_OR_KEYWORD)]
            assert getattr(obj, "skip_benchmark", False) or not required, (
                f"asv would collect the helper {modname}.{name}() as a benchmark and "
                "`asv check` fails on it: rename it (e.g. with a leading underscore) or "
                "set its `skip_benchmark = True`")

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
