"""The wheel: what it ships and its console script."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import datadam

REPO = Path(__file__).resolve().parents[1]
# Left out of the copy: the venv, caches, earlier build output and local data.
_TOP_LEVEL_SKIP = {".git", ".venv", "build", "dist", ".pytest_cache", ".ruff_cache", "data",
                   "runs", "out"}


def _skip(directory: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}
    if Path(directory) == REPO:
        skip |= _TOP_LEVEL_SKIP & set(names)
    return skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel once (from a copy of the repository, so the checkout stays clean)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=_skip)
    out = work / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-q", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("datadam-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow
def test_wheel_contents(wheel):
    assert wheel.name.startswith(f"datadam-{datadam.__version__}-py3-none-any")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("datadam/__init__.py", "datadam/__main__.py", "datadam/errors.py",
                 "datadam/data/__init__.py", "datadam/data/mnist.py", "datadam/data/mhist.py",
                 "datadam/data/folder.py", "datadam/models/convnet.py",
                 "datadam/cli/__init__.py", "datadam/apps/__init__.py"):
        assert path in names, path
    assert not any(n.startswith(("tests/", "sdk/", "apps/")) for n in names)
    assert not any("__pycache__" in n for n in names)


@pytest.mark.slow
def test_wheel_entry_point_and_metadata(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    assert parser["console_scripts"]["datadam"].replace(" ", "") == "datadam.cli:main"
    assert f"Version: {datadam.__version__}" in metadata
    assert "Requires-Dist: torch" in metadata and "Requires-Dist: typer" in metadata
