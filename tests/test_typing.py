"""Type hints that check: the written constructor matches the declarations, and mypy
accepts the public API as a user calls it (``tests/typed/usage.py``) and rejects
wrong calls."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from numba_rmsprop.engine.hyperparameters import Configurable, boolean, hyperparameter, real

ROOT = Path(__file__).resolve().parent.parent


def _declare(init_source: str | None):
    """A Configurable with two hyperparameters and ``init_source`` as its __init__."""
    body: dict = {
        "__annotations__": {"rate": "float", "flag": "bool"},
        "rate": hyperparameter(0.1, check=real(0.0), doc="rate"),
        "flag": hyperparameter(False, check=boolean, kw_only=True, doc="flag"),
    }
    if init_source is not None:
        ns: dict = {}
        exec("from __future__ import annotations\n" + textwrap.dedent(init_source), ns)
        body["__init__"] = ns["__init__"]
    return type("Made", (Configurable,), body)


GOOD = """
def __init__(self, rate: float = 0.1, *, flag: bool = False, **kwargs) -> None:
    self._configure({"rate": rate, "flag": flag}, kwargs)
"""


def test_the_written_constructor_is_checked_against_the_declarations():
    made = _declare(GOOD)
    assert made(0.5, flag=True)._rate == 0.5
    cases = {
        "rate: float = 0.2, *, flag: bool = False, **kwargs": "rate=0.2, declared 0.1",
        "rate: float = 0.1, flag: bool = False, **kwargs": "flag is positional or keyword",
        "rate: int = 0.1, *, flag: bool = False, **kwargs": "rate: int, declared float",
        "*, flag: bool = False, rate: float = 0.1, **kwargs": "arguments ['flag', 'rate']",
        "rate: float = 0.1, *, flag: bool = False": "no **kwargs last",
        "rate: float = 0.1, *, flag: bool = 0, **kwargs": "flag=0, declared False",
    }
    for params, message in cases.items():
        with pytest.raises(TypeError, match=message.replace("[", r"\[").replace("*", r"\*")):
            _declare(f"def __init__(self, {params}) -> None:\n    pass\n")
    with pytest.raises(TypeError, match="must write out __init__"):
        _declare(None)


def _mypy(*paths: str) -> tuple[str, int]:
    api = pytest.importorskip("mypy.api")
    out, err, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache")]
        + list(paths)
    )
    return out + err, status


@pytest.mark.slow  # mypy over numpy's and scipy's stubs: ~1 min cold; .ci/run runs it
def test_mypy_accepts_the_api_and_rejects_wrong_calls(tmp_path):
    out, status = _mypy(str(ROOT / "tests" / "typed" / "usage.py"))
    assert status == 0, out
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        textwrap.dedent(
            """
            import numpy as np
            import numba_rmsprop as nr

            nr.RMSprop(lr=0.1)
            nr.RMSprop(learning_rate="fast")
            nr.RMSprop(device="tpu")
            nr.RMSprop.like_torch(0.1, betas=(0.9, 0.99))
            nr.minimize(lambda x: 0.0, np.zeros(3), option={"maxiter": 3})
            nr.minimize_many(lambda x: 0.0, np.zeros((2, 3)), vectorised=True)
            """
        )
    )
    out, status = _mypy(str(wrong))
    assert status == 1, out
    for line, expected in [
        (5, '"lr"'),
        (6, '"learning_rate"'),
        (7, '"device"'),
        (8, '"betas"'),
        (9, '"option"'),
        (10, '"vectorised"'),
    ]:
        assert any(f"wrong.py:{line}:" in o and expected in o for o in out.splitlines()), (
            line,
            out,
        )
