"""`dmx export`: a pretrained encoder leaves dmx as a transformers model folder that
computes exactly what dmx computes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers import train_run
from typer.testing import CliRunner

from dmx.cli import app
from dmx.downstream.export import run_config
from dmx.training.encoder import load_encoder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("export") / "run"
    train_run(run, "trainer.max_epochs=1", "model.n_layers=2")
    return run


def _export(*args: str) -> object:
    return CliRunner().invoke(app, ["export", *args], prog_name="dmx")


@pytest.mark.slow
def test_an_exported_encoder_loads_with_transformers_and_gives_dmxs_logits(
    trained: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    out = tmp_path / "hf"
    result = _export(str(trained), str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"wrote {out}: load it with AutoModelForMaskedLM.from_pretrained({str(out)!r})\n"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "dmx_run.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    model = AutoModelForMaskedLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "XLMRobertaXLForMaskedLM"
    encoder, dmx_tokenizer = load_encoder(run_config(trained), trained)
    encoder.eval()
    texts = ["the cat sat on the mat", "a longer sentence about the dogs of a small town"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    # The tokenizer wraps text as dmx's sequences are: [CLS] tokens [SEP], then padding.
    for row, text in zip(batch["input_ids"].tolist(), texts, strict=True):
        ids = dmx_tokenizer.encode(text).ids
        assert row[: len(ids) + 2] == [2, *ids, 3] and set(row[len(ids) + 2 :]) <= {0}
    real = batch["attention_mask"].bool()
    assert not bool(real.all())  # one row is padded: positions and masking are exercised
    with torch.no_grad():
        hidden, _ = encoder.encode(batch["input_ids"], real)
        ours = encoder.mlm_logits(hidden, real)
        theirs = model(**batch).logits[real]
    assert theirs.shape == ours.shape
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
    provenance = json.loads((out / "dmx_run.json").read_text())
    assert provenance["mask_strategy"] == "static(K=1)"
    assert provenance["final_val_loss"] == pytest.approx(
        json.loads((trained / "metrics.json").read_text())["final_val_loss"]
    )


@pytest.mark.slow
def test_what_cannot_be_exported_faithfully_is_one_line_and_writes_nothing(
    trained: Path, tmp_path: Path
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("mine")
    windowed = tmp_path / "windowed"
    shutil.copytree(trained, windowed)
    config = yaml.safe_load((windowed / "config.yaml").read_text())
    config["attention"]["pattern"] = "window"
    (windowed / "config.yaml").write_text(yaml.safe_dump(config))
    cases = [
        (
            [str(trained), str(taken)],
            f"{taken} exists and is not an empty folder; give a new folder",
        ),
        (
            [str(tmp_path / "nowhere"), str(tmp_path / "out")],
            f"{tmp_path / 'nowhere'} is not a folder; give a run's folder (it holds encoder.pt)",
        ),
        (
            [str(taken), str(tmp_path / "out")],
            f"{taken} holds no pretrained encoder (encoder.pt); dmx export needs a run trained "
            "by dmx train to the end of pretraining",
        ),
        (
            [str(windowed), str(tmp_path / "out")],
            f"{windowed} was pretrained with attention=window; transformers' XLM-RoBERTa-XL "
            "attends to every position, so the export would not compute what this encoder "
            "learned; export a run pretrained with attention=full",
        ),
    ]
    for args, line in cases:
        result = _export(*args)
        assert result.exit_code == 2, result.output
        assert result.stderr == f"dmx: error: {line}\n"
    assert not (tmp_path / "out").exists()
    assert [p.name for p in taken.iterdir()] == ["file"]
