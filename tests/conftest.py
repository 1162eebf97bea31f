"""Shared test settings: a shrunken real config, and an isolated, offline environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The real config, shrunk: a one-layer model on a small slice of the embedded corpus, so a
# complete run through the CLI takes seconds on a CPU.
TINY = [
    "model.n_layers=1",
    "model.d_model=32",
    "model.n_heads=2",
    "model.d_ff=64",
    "data.n_docs=60",
    "data.val_docs=10",
    "data.vocab_size=256",
    "data.seq_len=32",
    "data.batch_size=16",
    "trainer.max_epochs=2",
    "trainer.progress_bar=false",
]

DMX = str(Path(sys.executable).with_name("dmx"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dmx-cache")


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, cache_dir: Path, tmp_path: Path) -> None:
    """No test reaches a network or the user's own caches and credentials."""
    monkeypatch.setenv("DMX_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def run_dmx(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the installed `dmx` command, as a user would, from ``cwd``."""
    result = subprocess.run(
        [DMX, *args], cwd=cwd, env=os.environ.copy(), capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"dmx {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result
