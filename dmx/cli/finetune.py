"""``dmx finetune RUN_DIR [overrides]``: fine-tune finished runs' kept encoders again (new
tasks, another grid) without pretraining them again.

RUN_DIR is one run, or a folder of runs (a sweep): each run's config.yaml gives the
pretraining settings, the overrides change only ``finetune`` and ``impl``. Every run's
settings are checked before the first cell trains, so a bad override costs nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from dmx.cli.common import fail
from dmx.common.errors import UserError


def finetune(
    ctx: typer.Context,
    run_dir: Annotated[
        Path, typer.Argument(help="A finished run's folder, or a folder of runs (a sweep).")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="finetune.* and impl.* overrides, key=value (finetune=glue, ...)."),
    ] = None,
) -> None:
    """Fine-tune finished runs' encoders under the protocol, without pretraining again.

    Cells already in a run folder (finetune/<task>/lr=...,seed=....json) are read, not
    trained again: a second call trains nothing, and a killed one goes on at the first
    missing cell. Each run's metrics.json gains the fine-tuning fields.

    [bold]Examples[/bold]

      dmx finetune outputs/runs/RUN finetune=glue finetune.glue_dir=glue_data

      dmx finetune SWEEP finetune=glue finetune.glue_dir=glue_data \\
        finetune.tasks=[RTE,MRPC] finetune.lrs=[1e-4,3e-4] finetune.seeds=[0,1,2]

      dmx finetune outputs/runs/RUN finetune=embedded finetune.epochs=5
    """
    from omegaconf import OmegaConf

    from dmx.common.run_folder import CONFIG_FILE, ENCODER_FILE, find_runs
    from dmx.config.validate import finetune_config
    from dmx.run.train import add_finetuning

    args = [*(overrides or []), *ctx.args]
    try:
        if not run_dir.is_dir():
            raise UserError(f"{run_dir} is not a folder; give a run's folder or a sweep's")
        runs = [r for r in find_runs(run_dir) if (r / ENCODER_FILE).is_file()]
        if not runs:
            raise UserError(
                f"{run_dir} holds no run with a kept encoder ({ENCODER_FILE}); dmx finetune "
                "needs runs trained by dmx train to the end"
            )
        configs = []
        for run in runs:
            saved = OmegaConf.load(run / CONFIG_FILE)
            config = finetune_config(saved, args, where=str(run / CONFIG_FILE))
            if config.finetune.name == "none":
                raise UserError(
                    "nothing to fine-tune: give finetune=glue, finetune=tsv, finetune=hf or "
                    "finetune=embedded (with its settings)"
                )
            configs.append(config)
    except (UserError, OSError) as err:
        raise fail(err) from None
    _show_progress()
    for n, (run, config) in enumerate(zip(runs, configs, strict=True), start=1):
        if len(runs) > 1:
            typer.echo(f"run {n} of {len(runs)}: {run}")
        try:
            metrics = add_finetuning(config, run)
        except UserError as err:
            raise fail(err) from None
        typer.echo(_closing(run, metrics))


def _show_progress() -> None:
    """dmx's own log lines (the cell under way, the time left) on the console, as a run
    started by Hydra shows them."""
    logger = logging.getLogger("dmx")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _closing(run: Path, metrics: dict) -> str:
    """One line per run: what the protocol reports, as dmx train's closing line says it."""
    protocol = metrics.get("finetune_protocol", {})
    how = (
        f"median of {len(protocol.get('seeds', []))} seed(s) at the best of "
        f"{len(protocol.get('lrs', []))} lr(s)"
    )
    if metrics.get("glue_score") is not None:
        tasks = ", ".join(metrics.get("glue_tasks") or [])
        return f"done: GLUE score {metrics['glue_score']:.3f} over {tasks} ({how}); {run}"
    if metrics.get("finetune_acc") is not None:
        return (
            f"done: {metrics['finetune_task']}: dev acc {metrics['finetune_acc']:.1%}, "
            f"macro-F1 {metrics['finetune_f1']:.3f} ({how}); {run}"
        )
    return f"done: {run}"
