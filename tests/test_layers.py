"""The layers are kept by a tool: `make lint` runs import-linter over the contracts in
pyproject.toml. Here the tool runs on a copy of the package, once as it is (kept) and once
with an import planted that breaks a contract, so a contract that checks nothing, or a
`make lint` that stopped running it, cannot pass unseen."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(tmp_path: Path, plant: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """lint-imports over a copy of dmx/ (``plant``: file -> a line appended to it)."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "dmx", copy / "dmx", ignore=shutil.ignore_patterns("__pycache__"))
    for name, line in (plant or {}).items():
        with open(copy / "dmx" / name, "a", encoding="utf-8") as f:
            f.write(f"\n\ndef _planted() -> None:\n    {line}\n")
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=copy,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(copy)},
        capture_output=True,
        text=True,
    )


def test_the_package_keeps_its_contracts(tmp_path: Path) -> None:
    result = _lint(tmp_path)
    assert result.returncode == 0, result.stdout
    verdicts = _verdicts(result.stdout)
    assert len(verdicts) == 5 and set(verdicts.values()) == {"KEPT"}, verdicts


@pytest.mark.parametrize(
    ("plant", "broken", "shown"),
    [
        # An import up the layers, inside a function (a lazy import is still a dependency).
        (
            {"masking/keyed.py": "from dmx.cli import app  # noqa"},
            "Layers: the CLI on top",
            "dmx.masking.keyed -> dmx.cli",
        ),
        # Two packages of one layer that must not import each other.
        (
            {"report/labels.py": "import dmx.training.scores  # noqa"},
            "Layers: the CLI on top",
            "dmx.report.labels -> dmx.training.scores",
        ),
        # A circle inside a package (the one data/ had: a source and its dispatcher).
        (
            {"data/source.py": "from dmx.data.sources import open_source  # noqa"},
            "No import circle",
            ".source -> .sources",
        ),
        # Masking stays plain torch.
        (
            {"masking/schedule.py": "import omegaconf  # noqa"},
            "Masking and the model are plain torch",
            "dmx.masking.schedule -> omegaconf",
        ),
    ],
    ids=["upward", "siblings", "circle", "third-party"],
)
def test_a_planted_import_breaks_its_contract(
    tmp_path: Path, plant: dict[str, str], broken: str, shown: str
) -> None:
    result = _lint(tmp_path, plant)
    assert result.returncode == 1, result.stdout
    summary, report = result.stdout.split("Broken contracts", 1)
    verdicts = _verdicts(summary)
    # The contract it breaks (an upward import from masking may break the third-party one
    # too: what lies above masking imports Lightning), and the import named in the report.
    assert [v for name, v in verdicts.items() if name.startswith(broken)] == ["BROKEN"], verdicts
    assert shown in report, report


def _verdicts(summary: str) -> dict[str, str]:
    """Each contract's name and KEPT or BROKEN, from lint-imports' summary (it wraps names)."""
    listed = " ".join(summary.split("Analyzed", 1)[1].split("\n", 2)[2].split())
    return {name.strip(): verdict for name, verdict in re.findall(r"(.+?) (KEPT|BROKEN)", listed)}
