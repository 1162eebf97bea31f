"""The ``dmx`` command: train, sweep, finetune, report, bench; one file per command group.

:mod:`~dmx.cli.run` (train, sweep) hands Hydra overrides to the Hydra entry,
:mod:`~dmx.cli.report` prints and writes reports, :mod:`~dmx.cli.bench` measures. Each
command imports what it needs when it runs, so ``dmx --help`` stays quick.

Layer 1 of 9, the top: may import every package below; none imports it. A new command is a
file here and one line in the loop below.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dmx import __version__
from dmx.cli import bench, export, finetune, report, run, sync
from dmx.cli import eval as eval_command
from dmx.cli.common import PASS_THROUGH, OneLineErrors, help_text
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


# Each command's help is its docstring, its prose re-flowed to the terminal's width.
for command, settings, epilog in (
    (run.train, PASS_THROUGH, groups_help()),
    (run.sweep, PASS_THROUGH, groups_help()),
    (finetune.finetune, PASS_THROUGH, None),
    (eval_command.eval, PASS_THROUGH, None),
    (report.report, None, None),
    (bench.bench, None, None),
    (sync.sync, None, None),
    (export.export, None, None),
):
    app.command(context_settings=settings, epilog=epilog, help=help_text(command))(command)

__all__ = ["app"]
