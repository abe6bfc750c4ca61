"""What gets installed: the PEP 561 ``py.typed`` marker ships with the package."""

import importlib.resources
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_installed_package_has_py_typed():
    marker = importlib.resources.files("numba_rmsprop").joinpath("py.typed")
    assert marker.is_file()


def test_pyproject_lists_py_typed_as_package_data():
    # setuptools >= 69 ships py.typed by default; listed all the same.
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        cfg = tomllib.load(f)
    assert "py.typed" in cfg["tool"]["setuptools"]["package-data"]["numba_rmsprop"]
    assert cfg["build-system"]["requires"] == ["setuptools>=77"]  # SPDX `license`


def _can_build_without_isolation() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    return major >= 77  # what pyproject.toml asks for


def test_wheel_contains_py_typed(tmp_path):
    """Built from a copy of the project files, as `pip install .` builds it (an
    editable install would find the marker in the source tree either way).
    With this environment's setuptools when it is recent enough, else in pip's
    isolated environment. The build warns of nothing deprecated (a TOML-table
    `license` stops building in 2027)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    shutil.copytree(
        os.path.join(ROOT, "numba_rmsprop"),
        src / "numba_rmsprop",
        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"),
    )
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        str(tmp_path / "out"),
        str(src),
    ]
    if _can_build_without_isolation():
        cmd.insert(4, "--no-build-isolation")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip(
            f"cannot build a wheel here (no build backend reachable?): "
            f"{(proc.stdout + proc.stderr)[-800:]}"
        )
    (wheel,) = (tmp_path / "out").glob("numba_rmsprop-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "numba_rmsprop/py.typed" in names, names
    assert "deprecated" not in (proc.stdout + proc.stderr).lower(), proc.stdout + proc.stderr


def test_dask_is_an_extra_not_a_dependency():
    tomllib = pytest.importorskip("tomllib")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert not any(d.startswith(("dask", "distributed", "zarr")) for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert extras["dask"] == ["dask[distributed]", "zarr"]
    assert set(extras["dask"]) <= set(extras["test"])  # CI runs the streaming tests
