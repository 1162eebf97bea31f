"""``dmx report``: every run under a folder in one table, with statistics, plots and W&B."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from dmx.cli.common import fail
from dmx.common.errors import UserError


def report(
    folder: Annotated[
        Path, typer.Argument(help="A sweep folder, a run folder, or any folder of runs.")
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table, md, csv, json or latex.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    per_seed: Annotated[
        bool, typer.Option("--per-seed", help="One row per seed instead of pooling seeds.")
    ] = False,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            "--baseline",
            "-b",
            metavar="KEY=VALUE",
            help="Compare every group with this one: Δ, p (paired by seed when it can), "
            "effect size, seeds for 80% power. KEY is a config key or a label name "
            "(mask=static, mask.copies=1, attention=full); repeat to narrow down.",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="DIR",
            help="Write val_loss.png and final_metrics.png into this folder.",
        ),
    ] = None,
    wandb: Annotated[
        bool,
        typer.Option(
            "--wandb",
            help="Also log the report (table, plots) as a W&B run; offline unless W&B "
            "credentials exist or WANDB_MODE says otherwise.",
        ),
    ] = False,
    zero_shot: Annotated[
        bool,
        typer.Option(
            "--zero-shot",
            help="Also a column for each zero-shot field and phenomenon (BLiMP's "
            "morphology, ..., island_effects; the embedded pairs' a_an, ...).",
        ),
    ] = False,
) -> None:
    """Gather every run under FOLDER into one table, grouped by what differs (seeds pooled).

    [bold]Examples[/bold]

      dmx report outputs/sweeps/static_vs_dynamic

      dmx report SWEEP --baseline mask=static    [dim]# Δ and p against static[/dim]

      dmx report SWEEP --baseline mask.copies=1 --plot figures/

      dmx report outputs/ --format md

      dmx report SWEEP --format latex --baseline mask=dynamic -o table.tex

      dmx report SWEEP --format json -o results.json

      dmx report SWEEP --wandb          [dim]# then wandb sync, as printed[/dim]

      dmx report SWEEP --per-seed       [dim]# does it hold seed by seed?[/dim]
    """
    print_report(
        folder,
        fmt,
        output,
        per_seed=per_seed,
        baseline=baseline or [],
        plot=plot,
        wandb=wandb,
        zero_shot=zero_shot,
    )


def print_report(
    folder: Path,
    fmt: str,
    output: Path | None,
    per_seed: bool = False,
    baseline: list[str] | None = None,
    plot: Path | None = None,
    wandb: bool = False,
    zero_shot: bool = False,
) -> list[Any]:
    """Print (or write) the report of ``folder``; returns its rows."""
    from dmx import report as report_module
    from dmx.common.files import atomic_write_text
    from dmx.tracking.report_run import log_report

    if output is not None and fmt == "table":
        raise fail("--output writes text formats; add --format md, csv, json or latex")
    baseline = baseline or []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", report_module.SkippedRunWarning)
        warnings.simplefilter("always", report_module.PlotWarning)
        try:
            # Every option checked before a run is read: a typo costs no wait.
            report_module.check_format(fmt)
            for spec in baseline:
                report_module.parse_baseline(spec)
            if plot is not None:
                report_module.check_plot_dir(plot)
            rows = report_module.load(
                folder, per_seed=per_seed, baseline=baseline, zero_shot=zero_shot
            )
            text = report_module.render(rows, fmt)
            plots = None
            if plot is not None:
                plots = report_module.write_plots(rows, plot, Path(folder).resolve().name)
        except UserError as err:
            raise fail(err) from None
        logged = log_report(rows, folder, plots, baseline) if wandb else None
    for warning in caught:
        typer.echo(f"dmx: warning: {warning.message}", err=True)
    if text is not None:
        if output is None:
            typer.echo(text, nl=not text.endswith("\n"))
        else:
            atomic_write_text(output, text)
            typer.echo(f"wrote {output}", err=True)
    for path in plots or []:
        typer.echo(f"wrote {path}", err=True)
    if logged is not None:
        if logged.url:
            typer.echo(f"W&B report run: {logged.url}", err=True)
        else:
            typer.echo(
                f"W&B report run saved offline in {logged.folder}; "
                f"upload it with: {logged.sync_command}",
                err=True,
            )
    elif wandb:
        typer.echo("W&B is disabled (WANDB_MODE=disabled): nothing logged", err=True)
    return rows
