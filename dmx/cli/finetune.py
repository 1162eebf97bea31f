"""``dmx finetune RUN_DIR [overrides]``: fine-tune finished runs' kept encoders again (new
tasks, another grid) without pretraining them again.

RUN_DIR is one run, or a folder of runs (a sweep): each run's config.yaml gives the
pretraining settings, the overrides change only ``finetune`` and ``impl``. Every run's
settings are checked before the first cell trains, so a bad override costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dmx.cli.common import fail
from dmx.cli.kept_runs import apply_each, runs_and_configs, saved_config
from dmx.common.errors import UserError

if TYPE_CHECKING:
    from dmx.config import Config


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
    from dmx.common.run_folder import CONFIG_FILE
    from dmx.config.validate import finetune_config
    from dmx.run.finished import add_finetuning

    def checked(run: Path, args: Sequence[str]) -> Config:
        config = finetune_config(saved_config(run), args, where=str(run / CONFIG_FILE))
        if config.finetune.name == "none":
            raise UserError(
                "nothing to fine-tune: give finetune=glue, finetune=tsv, finetune=hf or "
                "finetune=embedded (with its settings)"
            )
        return config

    try:
        chosen = runs_and_configs(run_dir, [*(overrides or []), *ctx.args], "finetune", checked)
    except (UserError, OSError) as err:
        raise fail(err) from None
    apply_each(chosen, add_finetuning, _closing)


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
