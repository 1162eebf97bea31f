"""``dmx export RUN OUT``: the pretrained encoder as a transformers model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dmx.cli.common import fail
from dmx.common.errors import UserError


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder that holds encoder.pt.")],
    out: Annotated[Path, typer.Argument(help="A new folder for the transformers model.")],
) -> None:
    """Write a run's pretrained encoder as a HuggingFace transformers model folder
    (config.json, model.safetensors, the tokenizer), for the fine-tuning code everyone has.

    It loads with AutoModelForMaskedLM.from_pretrained(OUT) and
    AutoTokenizer.from_pretrained(OUT) as XLM-RoBERTa-XL, the transformers architecture
    that is dmx's encoder exactly (pre-LayerNorm); its logits equal dmx's.

    [bold]Examples[/bold]

      dmx export outputs/runs/my_run hf/my_run

      dmx export outputs/sweeps/static_vs_dynamic/<run> hf/dynamic-s0
    """
    from dmx.downstream.export import export as write

    try:
        folder = write(run_dir, out)
    except UserError as err:
        raise fail(err) from None
    typer.echo(
        f"wrote {folder}: load it with AutoModelForMaskedLM.from_pretrained({str(folder)!r})"
    )
