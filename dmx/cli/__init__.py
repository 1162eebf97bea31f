"""The ``dmx`` command: train, sweep, finetune, report, bench; one file per command group.

:mod:`~dmx.cli.run` (train, sweep) hands Hydra overrides to the Hydra entry,
:mod:`~dmx.cli.report` prints and writes reports, :mod:`~dmx.cli.bench` measures. Each
command imports what it needs when it runs, so ``dmx --help`` stays quick.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dmx import __version__
from dmx.cli import bench, export, finetune, report, run, sync
from dmx.cli.common import PASS_THROUGH, OneLineErrors
from dmx.cli.groups import groups_help

app = typer.Typer(
    cls=OneLineErrors,
    help="dmx: does dynamic masking beat static masking, for your model, data and budget?",
    no_args_is_help=True,
    add_completion=True,  # dmx --install-completion; overrides complete groups and choices
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,  # locals may hold secrets; a fault shows the stack only
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dmx {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """dmx: does dynamic masking beat static masking, for your model, data and budget?"""


app.command(context_settings=PASS_THROUGH, epilog=groups_help())(run.train)
app.command(context_settings=PASS_THROUGH, epilog=groups_help())(run.sweep)
app.command(context_settings=PASS_THROUGH)(finetune.finetune)
app.command()(report.report)
app.command()(bench.bench)
app.command()(sync.sync)
app.command()(export.export)

__all__ = ["app"]
