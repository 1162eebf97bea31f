"""Shared fixtures: an isolated, offline environment for every test.

The helpers the test files share (the shrunk config, in-process training, the installed
``dmx`` command) live in ``tests/helpers``; this file holds only fixtures.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Under pytest-xdist (make test runs one worker per core) each worker, and every process it
# starts, computes on one thread: two workers with a thread per core each would fight over
# the cores. Set before anything imports torch, which reads it once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dmx-cache")


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, cache_dir: Path, tmp_path: Path) -> Iterator[None]:
    """No test reaches a network or the user's own caches and credentials, and each test's
    W&B writes into its own folder."""
    monkeypatch.setenv("DMX_CACHE_DIR", str(cache_dir))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    # Loading a hub dataset that is not cached probes the hub first: never from a test.
    monkeypatch.setattr("dmx.data.hub.hub_reachable", lambda timeout=0.0: False)
    yield
    if "wandb" in sys.modules:
        # W&B keeps its settings (WANDB_DIR among them) in a process-wide singleton: without
        # a teardown, a later test's run lands in an earlier test's folder.
        sys.modules["wandb"].teardown()
