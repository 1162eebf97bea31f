"""``dmx eval RUN_DIR [overrides]``: score finished runs' kept encoders on minimal pairs
(BLiMP, the embedded pairs) without pretraining them again.

RUN_DIR is one run, or a folder of runs (a sweep): each run's config.yaml gives the
pretraining settings, the overrides change only ``eval`` and ``impl``. Every run's settings
and the pairs are checked before the first paradigm is scored, so a bad override costs
nothing and writes nothing.
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


def eval(  # noqa: A001 - the command's name
    ctx: typer.Context,
    run_dir: Annotated[
        Path, typer.Argument(help="A finished run's folder, or a folder of runs (a sweep).")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="eval.* and impl.* overrides, key=value (eval=blimp, ...)."),
    ] = None,
) -> None:
    """Score finished runs' encoders on minimal pairs by pseudo-log-likelihood, zero-shot.

    A pair is right when its grammatical sentence scores strictly higher. Paradigms
    already scored in a run folder with the same settings (eval/<suite>/<paradigm>.json)
    are read, not scored again: a second call scores nothing, and a killed one goes on at
    the first paradigm missing. Each run's metrics.json gains blimp_* or pairs_* fields.

    [bold]Examples[/bold]

      dmx eval outputs/runs/RUN eval=embedded

      dmx eval SWEEP eval=blimp eval.blimp_dir=blimp/data \\
        eval.pairs_per_paradigm=100

      dmx eval SWEEP eval=blimp eval.scoring=pll    [dim]# Salazar et al.'s PLL[/dim]
    """
    from dmx.common.run_folder import CONFIG_FILE
    from dmx.config.validate import eval_config
    from dmx.downstream.zeroshot import read_suite
    from dmx.run.entry import zero_shot_part
    from dmx.run.finished import add_eval

    def checked(run: Path, args: Sequence[str]) -> Config:
        config = eval_config(saved_config(run), args, where=str(run / CONFIG_FILE))
        if config.eval.name == "none":
            raise UserError(
                "nothing to score: give eval=blimp (with eval.blimp_dir) or eval=embedded"
            )
        return config

    try:
        chosen = runs_and_configs(run_dir, [*(overrides or []), *ctx.args], "eval", checked)
        for _, config in chosen[:1]:
            read_suite(config)  # the pairs read and checked before anything is scored
    except (UserError, OSError) as err:
        raise fail(err) from None
    apply_each(chosen, add_eval, lambda run, m: f"done:{zero_shot_part(m)[1:]}; {run}")
