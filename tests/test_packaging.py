"""A wheel built from the repository holds every package and every config file.

``pip install .`` (not ``-e``) installs exactly the wheel, so a package left out of it breaks
the installed command (dmx.bench once was). Built offline from this environment's
setuptools, without build isolation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools keeps build/ in the source tree, and a module deleted
    # since an earlier build would still ship from there.
    source = tmp_path_factory.mktemp("source") / "dmx"
    ignored = (
        ".git",
        ".venv",
        "build",
        "outputs",
        "wandb",
        "*.egg-info",
        "__pycache__",
        ".*_cache",
    )
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(*ignored))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        + ["--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (path,) = out.glob("dmx-*.whl")
    return zipfile.ZipFile(path)


def test_every_package_under_dmx_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    sources = [p.relative_to(REPO).as_posix() for p in (REPO / "dmx").rglob("*.py")]
    assert sources, "no sources found"
    missing = sorted(s for s in sources if s not in names)
    assert not missing, f"left out of the wheel: {missing}"
    assert "dmx/bench/model.py" in names


def test_every_config_file_ships_as_dmx_conf(wheel: zipfile.ZipFile) -> None:
    """conf/ (with conf/experiment, a link to experiments/) lands at dmx/conf/."""
    names = set(wheel.namelist())
    conf = REPO / "conf"
    configs = [
        (Path(folder) / name).relative_to(conf).as_posix()
        for folder, _, files in os.walk(conf, followlinks=True)  # rglob skips the link
        for name in files
        if name.endswith(".yaml")
    ]
    assert any(c.startswith("experiment/") for c in configs), "the experiments link was not read"
    missing = sorted(c for c in configs if f"dmx/conf/{c}" not in names)
    assert not missing, f"config files left out of the wheel: {missing}"


def test_the_wheel_installs_both_commands(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "dmx = dmx.cli:app" in text
    assert "dmx-train = dmx.run.entry:main" in text
