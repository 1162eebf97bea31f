"""``dmx sync DIR``: upload every offline W&B run under a folder, in one command.

An offline run writes ``wandb/offline-run-<start time>-<id>/`` in its run folder, and a run
resumed offline writes a second folder with the same id. ``wandb sync`` uploads one folder
as one run, and a second folder of the same id would replace the first's history; given
``--id ID`` and both folders in start-time order it uploads them as one run. This module
finds the folders, groups them by id, and runs ``wandb sync`` once per run, skipping runs
W&B has marked uploaded (its ``.synced`` file).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dmx.common.errors import UserError
from dmx.common.net import unreachable
from dmx.tracking.wandb_run import has_credentials

FOLDER = re.compile(r"offline-run-(\d{8}_\d{6})-(\w+)$")
PROBE_TIMEOUT_S = 3.0
DEFAULT_BASE_URL = "https://api.wandb.ai"


@dataclass(frozen=True)
class OfflineRun:
    """One W&B run saved offline: its id and its folders, oldest first."""

    run_id: str
    folders: tuple[Path, ...]

    @property
    def uploaded(self) -> bool:
        """Whether ``wandb sync`` marked every folder's log uploaded."""
        return all(any(f.glob("*.wandb.synced")) for f in self.folders)

    def command(self, wandb: str) -> list[str]:
        return [wandb, "sync", "--id", self.run_id, *(str(f) for f in self.folders)]


def offline_runs(root: Path) -> list[OfflineRun]:
    """Every offline run under ``root``, its folders in start-time order."""
    by_id: dict[str, list[tuple[str, Path]]] = {}
    for folder in root.rglob("offline-run-*"):
        match = FOLDER.match(folder.name)
        if match and folder.is_dir() and any(folder.glob("*.wandb")):
            by_id.setdefault(match.group(2), []).append((match.group(1), folder))
    return [
        OfflineRun(run_id, tuple(f for _, f in sorted(found)))
        for run_id, found in sorted(by_id.items(), key=lambda item: min(item[1])[0])
    ]


def pending_runs(root: Path) -> list[OfflineRun]:
    return [run for run in offline_runs(root) if not run.uploaded]


def wandb_executable() -> str:
    """``wandb`` on the PATH, else the one installed beside this Python."""
    found = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    if not Path(found).exists():
        raise UserError("the wandb command is not installed; pip install wandb")
    return found


def check_can_upload() -> None:
    """A key, and W&B's server answering: else one line, before anything runs."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        raise UserError(
            f"WANDB_MODE={os.environ['WANDB_MODE']} forbids uploading; unset it and run "
            "dmx sync again"
        )
    if not has_credentials():
        raise UserError(
            "no W&B API key: run `wandb login` or set WANDB_API_KEY, then dmx sync again; "
            "nothing was uploaded"
        )
    base = os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)
    reason = unreachable(base, PROBE_TIMEOUT_S)
    if reason is not None:
        raise UserError(
            f"cannot reach W&B at {base} ({reason}); nothing was uploaded; run dmx sync "
            "again when online"
        ) from None


@dataclass(frozen=True)
class SyncResult:
    uploaded: list[OfflineRun]
    skipped: list[OfflineRun]  # uploaded before
    failed: list[tuple[OfflineRun, str]]


def sync(root: Path) -> SyncResult:
    """Upload every offline run under ``root`` not uploaded yet, one ``wandb sync`` each."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"no such folder: {root}; give a run's, a sweep's or outputs/")
    runs = offline_runs(root)
    pending = [run for run in runs if not run.uploaded]
    skipped = [run for run in runs if run.uploaded]
    if not pending:
        return SyncResult([], skipped, [])
    check_can_upload()
    wandb = wandb_executable()
    uploaded, failed = [], []
    for run in pending:
        result = subprocess.run(run.command(wandb), capture_output=True, text=True, check=False)
        if result.returncode == 0:
            uploaded.append(run)
        else:
            lines = (result.stderr or result.stdout).strip().splitlines()
            failed.append((run, lines[-1] if lines else f"exit code {result.returncode}"))
    return SyncResult(uploaded, skipped, failed)


__all__ = ["OfflineRun", "SyncResult", "check_can_upload", "offline_runs", "pending_runs", "sync"]
