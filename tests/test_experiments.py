"""Every preset in experiments/ runs: each point of its grid (seeds aside), shrunk to a few
steps, in this process. A preset that composes but crashes when trained is caught here."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from helpers import glue_folder, train_run
from hydra.core.override_parser.overrides_parser import OverridesParser

from dmx.config.validate import compose_config

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
PRESETS = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))


def grid(preset: str) -> list[list[str]]:
    """The preset's sweep as lists of overrides, one per run, with every seed but the first
    left out: seeds replicate a run, they do not change what it exercises."""
    params = compose_config([f"experiment={preset}"], with_hydra=True).hydra.sweeper.params or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    axes = []
    for override in parsed:
        key = override.get_key_element()
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        axes.append([f"{key}={v}" for v in (values[:1] if key == "seed" else values)])
    return [list(point) for point in itertools.product(*axes)]


def test_every_preset_is_found() -> None:
    assert "static_vs_dynamic" in PRESETS
    assert grid("static_vs_dynamic") == [["mask=static", "seed=0"], ["mask=dynamic", "seed=0"]]


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_every_point_of_every_preset_trains(preset: str, tmp_path: Path) -> None:
    # a GLUE preset reads small task files in GLUE's layouts, never the hub
    composed = compose_config([f"experiment={preset}"])
    glue = [f"finetune.glue_dir={glue_folder(tmp_path / 'glue')}", "finetune.max_len=32"]
    extra = glue if composed.finetune.name == "glue" else []
    for i, point in enumerate(grid(preset)):
        run = tmp_path / str(i)
        summary = train_run(run, f"experiment={preset}", *point, *extra, "trainer.max_steps=2")
        # trainer.max_steps caps fine-tuning too; a preset may skip pretraining altogether.
        steps = summary["steps"] if summary["pretrained"] else summary["finetune_steps"]
        assert (summary["status"], steps) == ("done", 2), (preset, point)
        assert summary.get("finetune_steps", 2) == 2, (preset, point)
        if extra:  # every GLUE task fine-tuned and scored
            assert summary["glue_tasks"] == ["CoLA", "STS-B", "MNLI", "RTE"], point
            assert summary["glue_cola_steps"] == 2 and summary["glue_score"] is not None
        assert f"experiment_name: {preset}" in (run / "config.yaml").read_text().splitlines()
