"""What a run folder already holds, and what a new attempt does with it: train nothing (a
finished run), continue from the newest checkpoint that loads, or start over.

``resume=auto`` (the default) continues an unfinished run and leaves a finished one alone;
``true`` insists on a checkpoint; ``false`` replaces whatever the folder holds. A folder
is only ever continued by the experiment it holds.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from dmx.common.errors import UserError
from dmx.common.run_folder import (
    ADAPTIVE_FILE,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    ENCODER_BEST_FILE,
    ENCODER_FILE,
    EVAL_DIR,
    FINETUNE_DIR,
    HISTORY_FILE,
    METRICS_FILE,
    STATUS_DONE,
    read_metrics,
    step_checkpoints,
)
from dmx.config import Config

log = logging.getLogger("dmx")

# Settings a folder's run may change between attempts: how it runs and what it records.
NOT_THE_EXPERIMENT = ("resume", "impl", "logger")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int


def previous_run(config: Config, run_dir: Path) -> dict[str, Any] | Checkpoint | None:
    """What the folder holds, as ``resume`` decides: a finished run's metrics (train
    nothing), the checkpoint to continue from, or None (start from the beginning)."""
    if config.resume == "false":
        return None
    metrics = None
    if (run_dir / METRICS_FILE).exists():
        try:
            metrics = read_metrics(run_dir)
        except (OSError, ValueError):
            metrics = None  # unreadable: there is nothing trustworthy to continue
    if metrics is not None and not holds_nothing(run_dir, metrics):
        check_same_experiment(config, run_dir)
        if metrics.get("status") == STATUS_DONE:
            return metrics
    checkpoint = loadable_checkpoint(run_dir)
    if checkpoint is None and config.resume == "true":
        raise UserError(
            f"resume=true but {run_dir} holds no checkpoint to resume from; run without "
            "resume=true to start it"
        )
    return checkpoint


def holds_nothing(run_dir: Path, metrics: dict[str, Any]) -> bool:
    """Whether an unfinished run stopped before its first optimizer step and kept nothing
    (no checkpoint, history, encoder or fine-tuning cell): a corrected command in the same
    folder replaces it, whatever its config was."""
    return (
        metrics.get("status") != STATUS_DONE
        and not metrics.get("steps")
        and not step_checkpoints(run_dir)
        and not (run_dir / HISTORY_FILE).exists()
        and not (run_dir / ENCODER_FILE).exists()
        and not (run_dir / FINETUNE_DIR).exists()
    )


def read_json_field(path: Path, key: str) -> Any:
    """One field of a JSON file, or None when the file or the field is not there."""
    try:
        return json.loads(path.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def check_same_experiment(config: Config, run_dir: Path) -> None:
    """A folder is resumed only by the run it holds: another experiment (any setting but
    resume, impl and logger) would continue from weights it did not train."""
    saved_path = run_dir / CONFIG_FILE
    if not saved_path.exists():
        return
    try:
        saved = OmegaConf.to_container(OmegaConf.load(saved_path))
    except Exception:  # noqa: BLE001 - an unreadable record cannot vouch for the folder
        saved = None
    ours = OmegaConf.to_container(OmegaConf.structured(config))
    if not isinstance(saved, dict) or any(
        saved.get(k) != ours.get(k) for k in ours if k not in NOT_THE_EXPERIMENT
    ):
        raise UserError(
            f"{run_dir} holds a run with another config; train into another folder "
            "(hydra.run.dir=...), or add resume=false to replace it"
        )


def loadable_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The newest checkpoint that loads (safely: tensors and plain data only), with its
    global step; a truncated or corrupt newer one is skipped with a warning."""
    bad = []
    for path in step_checkpoints(run_dir):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return Checkpoint(path, int(state["global_step"]))
        except Exception as err:  # noqa: BLE001 - any failure to load means: not this one
            bad.append(f"{path.name} ({type(err).__name__})")
            log.warning("checkpoint %s does not load (%s); trying an older one", path, err)
    if bad:
        raise UserError(
            f"no checkpoint in {run_dir / CHECKPOINT_DIR} loads ({', '.join(bad)}); add "
            "resume=false to start the run again"
        )
    return None


def clear_run(run_dir: Path) -> None:
    """Starting over: the previous attempt's history, metrics and checkpoints go, so none
    of them can be mistaken for this run's."""
    for name in (HISTORY_FILE, METRICS_FILE, ADAPTIVE_FILE, ENCODER_FILE, ENCODER_BEST_FILE):
        (run_dir / name).unlink(missing_ok=True)
    for name in (CHECKPOINT_DIR, FINETUNE_DIR, EVAL_DIR):
        if (run_dir / name).is_dir():
            shutil.rmtree(run_dir / name)


def kept_pretraining(config: Config, run_dir: Path) -> dict[str, Any] | None:
    """What an earlier attempt of this run recorded, when it finished pretraining (its
    encoder is kept): the attempt then goes straight to the fine-tuning cells still
    missing. None when there is no such attempt, or its record does not read."""
    if config.resume == "false" or not (run_dir / ENCODER_FILE).is_file():
        return None
    try:
        return read_metrics(run_dir)
    except (OSError, ValueError):
        return None
