"""The checkpoint a run resumes from: its files, and the state it carries beyond Lightning's.

Kept apart from the run-folder callback (dmx.run.callbacks), which decides *when* a
checkpoint is taken: what makes a resume exact is here. The files are written so that a
crash or a full disk never leaves a half-written file as the newest, and a checkpoint holds
torch's generators, so a resumed run draws (dropout, the loader's seed) what the
uninterrupted one drew.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch

from dmx.common.run_folder import CHECKPOINT_DIR, LAST_CHECKPOINT, step_checkpoints

RNG_KEY = "dmx_rng"
MID_EPOCH_KEY = "dmx_mid_epoch"


def write_checkpoint(trainer: L.Trainer, run_dir: Path, keep: int, rank_zero: bool) -> None:
    """``step-<global step>.ckpt``, written under a temporary name and renamed; then
    ``last.ckpt`` names the newest (a hard link, no second copy), and only the newest
    ``keep`` step files stay."""
    folder = run_dir / CHECKPOINT_DIR
    final = folder / f"step-{trainer.global_step:09d}.ckpt"
    tmp = folder / f".{final.name}.tmp"
    try:  # collective under DDP: all ranks call it
        trainer.save_checkpoint(tmp, weights_only=False)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk: the last good checkpoint stays the newest
        raise
    if not (trainer.is_global_zero and rank_zero):
        return
    os.replace(tmp, final)
    link = folder / ".last.ckpt.tmp"
    link.unlink(missing_ok=True)
    try:
        os.link(final, link)
    except OSError:  # a file system without hard links
        shutil.copyfile(final, link)
    os.replace(link, folder / LAST_CHECKPOINT)
    for old in step_checkpoints(run_dir)[keep:]:
        old.unlink(missing_ok=True)


def add_rng(checkpoint: dict[str, Any], mid_epoch: bool) -> None:
    """Into the checkpoint being saved: the generators, and whether it is taken mid-epoch
    (a resume then sets them again before its first step)."""
    # Dropout draws from torch's generator: it continues where it was, so a resumed run
    # draws what the uninterrupted one drew.
    checkpoint[RNG_KEY] = get_rng()
    checkpoint[MID_EPOCH_KEY] = mid_epoch


def restore_rng(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """Sets the generators a checkpoint holds; returns them when it was taken mid-epoch, to
    be set again before the resumed epoch's first step (None otherwise)."""
    rng = checkpoint.get(RNG_KEY)
    if rng is not None:
        set_rng(rng)
        if checkpoint.get(MID_EPOCH_KEY):
            return rng
    return None


def get_rng() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
