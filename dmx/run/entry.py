"""The Hydra entry: ``dmx-train``, one run per call, or a sweep under ``-m``.

A real ``@hydra.main`` (``dmx train`` and ``dmx sweep`` hand it their arguments), so
multirun, launchers and Lightning's process re-launch all keep working. It turns the
composed config into checked dataclasses, trains (:func:`dmx.run.train.train`), and ends with
one line: the run's figures, or the one-line error and exit code 2 for a user's mistake.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from dmx.common.errors import UserError, error_line
from dmx.common.run_folder import CHECKPOINT_DIR, discard_unstarted, is_rank_zero, step_checkpoints
from dmx.config import to_config
from dmx.config.loading import register
from dmx.run import stops
from dmx.run.train import RunFolderInUse, train
from dmx.training.trainer import one_device_per_job

log = logging.getLogger("dmx")

register()  # the schema and resolvers conf/config.yaml names, before Hydra composes it


def resume_command(run_dir: Path) -> str:
    """The command that continues this run from its newest checkpoint."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("hydra.run.dir=")]
    return " ".join(["dmx train", *overrides, f"hydra.run.dir={run_dir}"])


def stopped_line(stop: stops.Stop, run_dir: Path, in_sweep: bool, started: bool) -> str:
    """What a run stopped by a signal says: where it stopped and the command that goes on."""
    if not started:
        return f"{stop} before run {run_dir} began: nothing was written"
    saved = step_checkpoints(run_dir)
    where = (
        f"at step {int(saved[0].stem.split('-')[1])} (checkpoint saved)"
        if saved
        else "before any checkpoint; the same command starts it again"
    )
    then = (
        "run the same dmx sweep command again: finished runs are kept and this one continues"
        if in_sweep
        else f"continue it with: {resume_command(run_dir)}"
    )
    return f"{stop}: run {run_dir} interrupted {where}; {then}"


def closing_line(summary: dict[str, Any], run_dir: Path) -> str:
    """The one line a finished run ends with; any figure that was not measured reads n/a."""

    def figure(key: str, spec: str) -> str:
        value = summary.get(key)
        return "n/a" if value is None else format(value, spec)

    if summary.get("pretrained", True):
        pretraining = (
            f"val loss {figure('final_val_loss', '.3f')} (best {figure('best_val_loss', '.3f')} "
            f"at epoch {summary.get('best_val_epoch')}), val acc {figure('final_val_acc', '.1%')}, "
            f"{figure('tokens_per_s', ',.0f')} tokens/s"
        )
    else:
        pretraining = "no pretraining"
    finetuned = ""
    if "finetune_task" in summary:
        finetuned = (
            f"; {summary['finetune_task']}: dev acc {figure('finetune_acc', '.1%')}, "
            f"macro-F1 {figure('finetune_f1', '.3f')}"
        )
    if "glue_score" in summary:
        tasks = summary.get("glue_tasks") or []
        finetuned = f"; GLUE score {figure('glue_score', '.3f')} over {', '.join(tasks)}"
    return (
        f"done: {summary.get('mask_strategy', '?')}, {pretraining}{finetuned}"
        f"{zero_shot_part(summary)}; run folder: {run_dir}"
    )


def zero_shot_part(summary: dict[str, Any]) -> str:
    """``; BLiMP 54.5%`` and ``; pairs 61.2%`` for the suites a run scored, else nothing."""
    parts = [
        f"; {label} {summary[key]:.1%}"
        for key, label in (("blimp_acc", "BLiMP"), ("pairs_acc", "pairs"))
        if isinstance(summary.get(key), (int, float))
    ]
    return "".join(parts)


@hydra.main(version_base="1.3", config_path="pkg://dmx.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Hydra's task: one run. In a multirun a failed run is recorded and the sweep goes on."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        config = to_config(cfg)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            config = one_device_per_job(config, int(hydra_cfg.job.num))
        summary = train(config, run_dir)
    except RunFolderInUse as err:
        if hydra_cfg.mode == RunMode.MULTIRUN:  # two sweeps into one folder: each run once
            log.warning(
                "run %s is being trained by another dmx process; this sweep goes on", run_dir
            )
            return None
        print(error_line(err), file=sys.stderr)  # the folder is the other process's: keep it
        raise SystemExit(UserError.exit_code) from None
    except UserError as err:
        if is_rank_zero():
            discard_unstarted(run_dir)  # a mistake leaves no run folder behind
        print(error_line(err), file=sys.stderr)
        raise SystemExit(UserError.exit_code) from None
    except stops.Stop as stop:
        if is_rank_zero():
            started = not discard_unstarted(run_dir)
            log.error(stopped_line(stop, run_dir, hydra_cfg.mode == RunMode.MULTIRUN, started))
        raise SystemExit(stop.exit_code) from None
    except BaseException as err:
        if hydra_cfg.mode != RunMode.MULTIRUN or not isinstance(err, Exception):
            if is_rank_zero() and (run_dir / CHECKPOINT_DIR).is_dir():
                log.error("the run stopped; continue it with: %s", resume_command(run_dir))
            raise
        log.error("run %s failed: %s: %s", run_dir, type(err).__name__, err)
        return None
    if is_rank_zero():
        log.info(closing_line(summary, run_dir))
    return summary.get("final_val_loss")
