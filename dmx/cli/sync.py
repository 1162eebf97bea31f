"""``dmx sync DIR``: every offline W&B run under DIR uploaded, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dmx.cli.common import fail
from dmx.common.errors import UserError


def sync(
    folder: Annotated[
        Path, typer.Argument(help="A run folder, a sweep folder, or outputs/.", show_default=False)
    ],
) -> None:
    """Upload every offline W&B run under FOLDER: one `wandb sync` per run, a resumed run's
    folders as one run, runs uploaded before skipped.

    [bold]Examples[/bold]

      dmx sync outputs/sweeps/static_vs_dynamic

      dmx sync outputs/
    """
    from dmx.tracking.sync import sync as upload

    try:
        result = upload(folder)
    except UserError as err:
        raise fail(err) from None
    for run in result.uploaded:
        folders = len(run.folders)
        typer.echo(f"uploaded {run.run_id} ({folders} folder{'s' if folders > 1 else ''})")
    for run, reason in result.failed:
        typer.echo(f"dmx: failed to upload {run.run_id}: {reason}", err=True)
    typer.echo(
        f"{len(result.uploaded)} run(s) uploaded, {len(result.skipped)} uploaded before, "
        f"{len(result.failed)} failed"
    )
    if result.failed:
        raise typer.Exit(code=1)
