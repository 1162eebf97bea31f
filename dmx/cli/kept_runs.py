"""What ``dmx finetune`` and ``dmx eval`` share: the finished runs under a folder, each with
its own config and the command's overrides applied, all checked before the first one is
touched, and dmx's progress lines on the console."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmx.common.errors import UserError

if TYPE_CHECKING:
    from dmx.config import Config


def runs_and_configs(
    run_dir: Path,
    args: Sequence[str],
    command: str,
    make_config: Callable[[Path, Sequence[str]], Config],
) -> list[tuple[Path, Config]]:
    """Every run under ``run_dir`` that kept its encoder, with ``make_config`` (the run's
    config.yaml and the overrides) checked for each; a mistake in any is one line before
    anything runs."""
    from dmx.common.run_folder import ENCODER_FILE, find_runs

    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a folder; give a run's folder or a sweep's")
    runs = [r for r in find_runs(run_dir) if (r / ENCODER_FILE).is_file()]
    if not runs:
        raise UserError(
            f"{run_dir} holds no run with a kept encoder ({ENCODER_FILE}); dmx {command} "
            "needs runs trained by dmx train to the end"
        )
    return [(run, make_config(run, args)) for run in runs]


def saved_config(run: Path) -> Any:
    from omegaconf import OmegaConf

    from dmx.common.run_folder import CONFIG_FILE

    return OmegaConf.load(run / CONFIG_FILE)


def show_progress() -> None:
    """dmx's own log lines (the cell or paradigm under way) on the console, as a run
    started by Hydra shows them."""
    logger = logging.getLogger("dmx")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def apply_each(
    chosen: Sequence[tuple[Path, Config]],
    apply: Callable[[Config, Path], dict[str, Any]],
    closing: Callable[[Path, dict[str, Any]], str],
) -> None:
    """``apply`` on each run in turn, with dmx's progress lines, one closing line a run; a
    user's mistake found on the way is one line and exit code 2."""
    import typer

    from dmx.cli.common import fail

    show_progress()
    for n, (run, config) in enumerate(chosen, start=1):
        if len(chosen) > 1:
            typer.echo(f"run {n} of {len(chosen)}: {run}")
        try:
            metrics = apply(config, run)
        except UserError as err:
            raise fail(err) from None
        typer.echo(closing(run, metrics))
