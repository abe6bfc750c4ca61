"""What the compiler made of the kernels: float32 stays float32, and loops vectorise.

Both regressions are silent: a literal like ``d * 0`` promotes float32 to
float64 (a different result *and* a 2x slower loop), and an offset index or a
non-inlined helper stops LLVM's loop vectoriser (measured 8x slower). These
tests read the LLVM IR of the compiled kernels, so they fail when either
comes back. Numba cannot inspect kernels loaded from its disk cache, so the
checks run in a subprocess with an empty cache directory.
"""

import os
import platform
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# Compiles every checked kernel from scratch, in a fresh cache, by design (~15 s):
# .ci/run runs it (pytest -m slow).
pytestmark = pytest.mark.slow

import numba_rmsprop as nr
from numba_rmsprop.engine import layout, rule
from numba_rmsprop.engine.cpu import kernels as _cpu

CONFIGS = [
    {},
    dict(momentum=0.9, centered=True),
    dict(
        centered=True,
        weight_decay=0.1,
        use_ema=True,
        clipnorm=1.0,
        gradient_accumulation_steps=2,
        loss_scale_factor=2.0,
    ),
    dict(global_clipnorm=1.0, clipvalue=None, momentum=0.5),
]


def _every_switch(without):
    """The element rule's switch tuple with every switch on but ``without``."""
    return tuple(None if k == without else True for k in range(len(rule.SWITCHES)))


def _compile_every_switch():
    """Each variant on at once (the two weight decays in turn), all state arrays present."""
    for dtype in (np.float32, np.float64):
        x, g, v, mg, mom, acc, avg = (np.ones(50, dtype) for _ in range(7))
        s = tuple(np.ones(layout.N_SLOTS, dtype))
        for without in (rule.COUPLED_DECAY, rule.DECOUPLED_DECAY):
            _cpu.segment_update(
                x,
                0,
                g,
                v,
                mg,
                mom,
                acc,
                avg,
                s,
                _every_switch(without),
                dtype(1),
                dtype(2),
                True,
                False,
            )


def _compile_configs():
    """``update_serial`` (and the ``segment_update`` it calls) for each of ``CONFIGS`` in
    both dtypes, with the state arrays and clip factors that configuration has: the
    kernels the checks read, without the rest of an ``apply``."""
    for cfg in CONFIGS:
        spec = nr.RMSprop(**cfg)._spec
        for dtype in (np.float32, np.float64):

            def arr(on, dtype=dtype):
                return np.zeros(50, dtype) if on else None

            x, g, v = arr(True), np.ones(50, dtype), arr(True)
            mg, mom = arr(spec.centered), arr(spec.momentum > 0)
            acc, avg = arr(spec.accumulation_steps), arr(spec.use_ema)
            num = den = dtype(1) if spec.clips_by_norm else None
            P = spec.constants(dtype).copy()
            _cpu.update_serial(x, g, v, mg, mom, acc, avg, P, spec.switches, num, den, True, False)


def _compile_all():
    _compile_every_switch()
    _compile_configs()


def _float32_irs(dispatcher):
    return [ir for sig, ir in dispatcher.inspect_llvm().items() if str(sig[0].dtype) == "float32"]


def check_float32_update_never_touches_float64():
    _compile_all()
    irs = _float32_irs(_cpu.segment_update)
    assert irs
    for ir in irs:
        assert "fpext" not in ir and "@sqrt(" not in ir
        assert not re.search(r"@llvm\.sqrt\.(v\d+)?f64", ir)


def check_update_loops_vectorise():
    _compile_all()
    for dispatcher in (_cpu.segment_update, _cpu.update_serial):
        for sig, ir in dispatcher.inspect_llvm().items():
            elem = "float" if str(sig[0].dtype) == "float32" else "double"
            assert re.search(rf"<\d+ x {elem}>", ir), (
                f"{dispatcher.__name__}{sig} is not vectorised"
            )


CHECKS = ["check_float32_update_never_touches_float64", "check_update_loops_vectorise"]


@pytest.fixture(scope="module")
def fresh_results(tmp_path_factory):
    """Run every check in one process with an empty Numba cache; name -> error text or ''."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = textwrap.dedent(f"""
        import sys, traceback
        sys.path.insert(0, {here!r})
        import test_codegen
        for name in {CHECKS!r}:
            try:
                getattr(test_codegen, name)()
                print("RESULT", name, "OK")
            except Exception:
                print("RESULT", name, "FAIL", traceback.format_exc().replace("\\n", " | "))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path_factory.mktemp("numba-cache")))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=900
    )
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            _, name, status, *rest = line.split(" ", 3)
            results[name] = "" if status == "OK" else " ".join(rest)
    assert set(results) == set(CHECKS), proc.stdout + proc.stderr
    return results


def test_float32_update_never_touches_float64(fresh_results):
    assert fresh_results["check_float32_update_never_touches_float64"] == ""


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64", "aarch64", "arm64"),
    reason="vector width checked on x86-64 and arm64 only",
)
def test_update_loops_vectorise(fresh_results):
    assert fresh_results["check_update_loops_vectorise"] == ""
