"""The protocol's cells (task × learning rate × fine-tuning seed), each a file in the run
folder: what was fine-tuned once is never fine-tuned again.

A cell is ``finetune/<task>/lr=<lr>,seed=<seed>.json`` in the run folder, written
atomically when the cell ends: its dev figures after every epoch, the best epoch, and the
settings it was fine-tuned with. A killed run, a rerun or ``dmx finetune`` on the folder
finds the finished cells and starts at the first missing one; a cell made with other
settings (more epochs, another max_len) is refused rather than mixed into the median.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmx.common.errors import UserError
from dmx.common.files import write_json
from dmx.common.run_folder import FINETUNE_DIR, is_rank_zero

log = logging.getLogger("dmx")


@dataclass(frozen=True)
class Cell:
    """One fine-tuning of the protocol's grid."""

    task: str  # the task's folder name: GLUE's key (cola, sst2) or finetune.name
    lr: float
    seed: int

    def path(self, run_dir: Path) -> Path:
        return run_dir / FINETUNE_DIR / self.task / f"lr={self.lr:g},seed={self.seed}.json"

    def label(self) -> str:
        return f"lr={self.lr:g}, seed {self.seed}"


def read_cell(run_dir: Path, cell: Cell, settings: dict[str, Any]) -> dict[str, Any] | None:
    """A finished cell's record, or None when it is still to be fine-tuned (an unreadable
    file counts as missing: it was never finished). Settings that differ stop the run."""
    path = cell.path(run_dir)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("%s does not read (%s); fine-tuning that cell again", path, err)
        return None
    if not isinstance(record, dict) or "best" not in record:
        return None
    theirs = record.get("settings", {})
    changed = [k for k in settings if theirs.get(k) != settings[k]]
    if changed:
        k = changed[0]
        raise UserError(
            f"{path} was fine-tuned with {k}={theirs.get(k)!r}, not {settings[k]!r}; remove "
            f"{path.parent} to fine-tune {cell.task} again with these settings"
        )
    return record


def write_cell(
    run_dir: Path,
    cell: Cell,
    settings: dict[str, Any],
    epochs: Sequence[dict[str, float]],
    best: int,
    steps: int,
    seconds: float,
) -> dict[str, Any]:
    """Record a finished cell (rank 0 writes; every process returns the same record)."""
    record = {
        "task": cell.task,
        "lr": cell.lr,
        "seed": cell.seed,
        "settings": settings,
        "epochs": list(epochs),
        "best_epoch": best + 1,
        "best": {k: v for k, v in epochs[best].items() if k not in ("epoch", "step")},
        "steps": steps,
        "seconds": round(seconds, 3),
    }
    if is_rank_zero():
        path = cell.path(run_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, record)
    return record


class Progress:
    """Where the grid is: the cell's number out of all, and the time left, estimated from
    the cells fine-tuned so far in this process by their training examples × epochs (a
    cell of MNLI costs a hundred of RTE's)."""

    def __init__(self, work: dict[Cell, float]) -> None:
        self.work, self.total = work, len(work)
        self.index = 0
        self.done_work = self.done_s = 0.0
        self.left_work = sum(work.values())

    def start(self, cell: Cell, task_name: str) -> float:
        self.index += 1
        eta = ""
        if self.done_work > 0:
            left = self.done_s / self.done_work * self.left_work
            eta = f"; about {_duration(left)} left"
        log.info(
            "fine-tuning %s: cell %d of %d (%s)%s",
            task_name,
            self.index,
            self.total,
            cell.label(),
            eta,
        )
        return time.perf_counter()

    def skip(self, cell: Cell) -> None:
        self.index += 1
        self.left_work -= self.work[cell]

    def finish(self, cell: Cell, started: float) -> float:
        seconds = time.perf_counter() - started
        self.done_s += seconds
        self.done_work += self.work[cell]
        self.left_work -= self.work[cell]
        return seconds


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


__all__ = ["Cell", "Progress", "read_cell", "write_cell"]
