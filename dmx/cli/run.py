"""``dmx train`` and ``dmx sweep``: check every override, then hand them to the Hydra entry.

Both hand their arguments to the real ``@hydra.main`` entry in :mod:`dmx.run.entry` (by setting
``sys.argv``), so Hydra's overrides, multirun and launchers work unchanged. Before that they
compose the config once with Hydra's compose API, so a mistake (an unknown choice, a bad
value) stops at start with one line naming the fix and exit code 2, before anything is
trained or written.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from dmx.cli.common import fail
from dmx.cli.groups import complete_override
from dmx.cli.report import print_report
from dmx.common.errors import UserError, one_line
from dmx.common.overrides import hydra_overrides, is_override, override_key, override_value

DEFAULT_EXPERIMENT = "static_vs_dynamic"


# Hydra flags after which nothing runs: the config or help is printed instead.
INSPECT_FLAGS = {
    "--cfg",
    "-c",
    "--info",
    "-i",
    "--help",
    "-h",
    "--hydra-help",
    "--shell-completion",
}


def _run_hydra(args: list[str]) -> None:
    from dmx.run.entry import main as hydra_entry

    # Hydra records the entry as the job's program, and Lightning re-runs it to start the
    # other processes of a data-parallel run: it must be dmx-train (installed beside dmx),
    # not dmx, whose own parser would not take Hydra's arguments.
    beside = Path(sys.argv[0]).with_name("dmx-train")
    program = str(beside) if beside.is_file() else shutil.which("dmx-train") or sys.argv[0]
    # Hydra's parser wants its flags (and their values) before the overrides.
    flags = [a for a in args if not is_override(a)]
    saved = sys.argv
    sys.argv = [program, *flags, *(a for a in args if is_override(a))]
    try:
        hydra_entry()
    finally:
        sys.argv = saved


def _check_flags(args: list[str], command: str) -> None:
    """Hydra's flags read by Hydra's own parser, so that a mistake (``--bogus``, a word
    without ``=``) is one line naming the fix, not Hydra's usage text."""
    from hydra._internal.utils import get_args_parser

    see = f"see `dmx {command} --help`"

    def error(message: str) -> NoReturn:
        raise UserError(f"{message}; {see}")

    parser = get_args_parser()
    parser.error = error  # type: ignore[method-assign]
    parsed, unknown = parser.parse_known_args([a for a in args if not is_override(a)])
    if unknown:
        error(f"no such option: {' '.join(unknown)}")
    for word in parsed.overrides:  # a positional argument, but no key=value
        error(f"{word!r} is not an override; give key=value (e.g. mask=dynamic)")
    modes = ("run", "multirun", "cfg", "info", "shell_completion")
    if sum(getattr(parsed, m) not in (None, False) for m in modes) > 1:  # as Hydra counts them
        error("give only one of --run, --multirun, --cfg, --info and --shell-completion")


def _check(args: list[str], *, multirun: bool, command: str) -> list[str]:
    """Every value checked before anything runs; returns the first run's overrides."""
    from dmx.config.validate import check_overrides

    try:
        _check_flags(args, command)
        return check_overrides(args, multirun=multirun)
    except UserError as err:
        raise fail(err) from None


def train(
    ctx: typer.Context,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Hydra overrides, key=value.", autocompletion=complete_override),
    ] = None,
) -> None:
    """Train one run. Arguments are Hydra overrides; the run folder lands under outputs/runs/.

    [bold]Examples[/bold]

      dmx train mask=dynamic

      dmx train mask=static mask.copies=10 model=small trainer.max_epochs=20 seed=3

      dmx train mask=dynamic logger=none trainer.max_epochs=1

      dmx train hydra.run.dir=runs/my_run mask.prob=0.4

      dmx train --cfg job          [dim]# print the composed config and stop[/dim]
    """
    args = [*(overrides or []), *ctx.args]
    multirun = any(a in ("-m", "--multirun") for a in args)
    first_run = _check(args, multirun=multirun, command="train")
    if not INSPECT_FLAGS & set(args):
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        _check_output(override_value(args, key) or _default_folder(first_run, args, key), key)
    _run_hydra(args)


def sweep(
    ctx: typer.Context,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Hydra overrides, key=value.", autocompletion=complete_override),
    ] = None,
    report_format: Annotated[
        str,
        typer.Option("--format", help="Format of the closing report: table, md, csv, json, latex."),
    ] = "table",
    per_seed: Annotated[
        bool, typer.Option("--per-seed", help="After the report, the same runs seed by seed.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Train every run again (resume=false), even those the sweep folder holds "
            "finished.",
        ),
    ] = False,
    wandb: Annotated[
        bool,
        typer.Option(
            "--wandb",
            help="Train nothing here: write the grid as a W&B sweep (wandb_sweep.yaml in the "
            "sweep folder), register it when online with an API key, and print the "
            "`wandb agent` command that runs it on any number of machines.",
        ),
    ] = False,
) -> None:
    """Run a grid (Hydra multirun) of an experiment preset, then print its report.

    Without experiment=NAME it runs experiment=static_vs_dynamic: mask in {static, dynamic}
    x seed in {0, 1, 2}. Every run lands in one sweep folder under outputs/sweeps/.

    [bold]Examples[/bold]

      dmx sweep

      dmx sweep experiment=static_vs_dynamic seed=0,1,2,3,4

      dmx sweep mask=static,dynamic mask.prob=0.15,0.4 trainer.max_epochs=10

      dmx sweep hydra.sweep.dir=outputs/sweeps/my_sweep logger=none

      dmx sweep --per-seed         [dim]# then a row per seed: does the gap hold?[/dim]

      dmx sweep --force            [dim]# train every run again, finished or not[/dim]

      dmx sweep --wandb experiment=dupe_factor   [dim]# the same grid as a W&B sweep[/dim]
    """
    from dmx.report import check_format

    try:
        check_format(report_format)
    except UserError as err:
        raise fail(err) from None
    args = [a for a in [*(overrides or []), *ctx.args] if a not in ("-m", "--multirun")]
    if override_value(args, "experiment") is None:
        args.insert(0, f"experiment={DEFAULT_EXPERIMENT}")
    first_run = _check(args, multirun=True, command="sweep")
    if INSPECT_FLAGS & set(args):  # print the config (or help) of the sweep; run nothing
        _run_hydra(args)
        return
    folder = _sweep_folder(args, first_run)
    _check_output(folder, "hydra.sweep.dir")
    control = _wants_control(first_run)
    if force:
        args.append("resume=false")
    if wandb:  # the same grid, run by W&B agents instead of this process
        _write_wandb_sweep(args, folder)
        return
    _run_hydra(["--multirun", *args])
    if control:
        _train_untrained(args, first_run, folder, force)
    _wait_for_other_processes(folder)
    typer.echo(f"\nsweep folder: {folder}")
    rows = print_report(folder, report_format, None)
    if per_seed:
        typer.echo("\nSeed by seed:")
        print_report(folder, report_format, None, per_seed=True)
    _say_how_to_upload(folder)
    failed = sorted(str(run.path) for row in rows for run in row.failed)
    if failed:  # scripts and CI notice: the report is printed, the exit code says it failed
        typer.echo(
            f"dmx: {len(failed)} run(s) of this sweep failed: {', '.join(failed)}; fix the "
            "cause and run the same command again (finished runs are kept)",
            err=True,
        )
        raise typer.Exit(code=1)


def _wants_control(first_run: list[str]) -> bool:
    from dmx.config.validate import compose_checked

    return compose_checked(first_run, devices=False).untrained_control


def _train_untrained(args: list[str], first_run: list[str], folder: Path, force: bool) -> None:
    """untrained_control=true: one run per seed of the grid, as its first run but never
    pretrained (trainer.max_epochs=0), in the sweep folder as ``untrained,seed=N``. A run
    finished there before trains nothing again, as the grid's do."""
    from dmx.config.validate import sweep_seeds

    base = [a for a in first_run if override_key(a) not in ("seed", "trainer.max_epochs")]
    for seed in sweep_seeds(args, first_run):
        run = folder / f"untrained,seed={seed}"
        typer.echo(f"untrained control, seed {seed}: {run}")
        extra = ["resume=false"] if force else []
        where = f"hydra.run.dir='{run}'"  # quoted: the name holds ',' and '='
        try:  # a failed control is recorded in its folder, as a failed run of the grid is
            _run_hydra([*base, f"seed={seed}", "trainer.max_epochs=0", *extra, where])
        except (Exception, SystemExit) as err:
            typer.echo(f"untrained control, seed {seed}: failed ({one_line(err)})", err=True)


def _say_how_to_upload(folder: Path) -> None:
    """One line for the whole sweep's offline W&B runs, not one per run."""
    from dmx.tracking.sync import pending_runs

    pending = pending_runs(folder)
    if pending:
        typer.echo(
            f"W&B: {len(pending)} run(s) saved offline; upload them with: dmx sync {folder}",
            err=True,
        )


def _default_folder(first_run: list[str], args: list[str], key: str) -> str:
    """The folder conf/config.yaml gives ``key`` for this command."""
    from dmx.config.validate import compose_config

    hydra_cfg = compose_config([*first_run, *hydra_overrides(args)], with_hydra=True).hydra
    return str(hydra_cfg.sweep.dir if key == "hydra.sweep.dir" else hydra_cfg.run.dir)


def _check_output(folder: str | Path, key: str) -> None:
    from dmx.config.validate import check_output_folder

    try:
        check_output_folder(folder, key)
    except UserError as err:
        raise fail(err) from None


def _wait_for_other_processes(folder: Path, poll_s: float = 1.0) -> None:
    """Runs of this sweep another process is training (a second `dmx sweep` of the same
    grid, started in another terminal) were left to it; the report waits for them, so it
    shows the whole sweep."""
    import time

    from dmx.common.run_folder import LOCK_FILE, is_live

    live = [p.parent for p in folder.rglob(LOCK_FILE) if is_live(p.parent)]
    if live:
        typer.echo(f"waiting for {len(live)} run(s) another dmx process is training here")
    while live:
        time.sleep(poll_s)
        live = [run for run in live if is_live(run)]


def _sweep_folder(args: list[str], first_run: list[str]) -> Path:
    """The sweep's folder, resolved once here (and added to ``args``), so the report reads
    the very folder Hydra writes. conf/config.yaml names it by what the sweep runs: the same
    command finds the same folder, whose finished runs train nothing and unfinished resume."""
    from dmx.config.validate import sweep_dir

    folder = override_value(args, "hydra.sweep.dir")
    if folder is None:
        folder = sweep_dir([*first_run, *hydra_overrides(args)], grid=args)
        args.append(f"hydra.sweep.dir={folder}")
    return Path(folder)


def _write_wandb_sweep(args: list[str], folder: Path) -> None:
    """The grid as a W&B sweep spec in ``folder``, registered when online, and what to run."""
    from dmx.tracking import sweep as wandb_sweep

    try:
        spec = wandb_sweep.sweep_spec(args)
        sweep_id = wandb_sweep.save_sweep(spec, folder)
    except UserError as err:
        raise fail(err) from None
    for line in wandb_sweep.next_steps(spec, folder / wandb_sweep.SPEC_FILE, sweep_id):
        typer.echo(line)
