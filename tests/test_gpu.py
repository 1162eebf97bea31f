"""The GPU path (bf16 mixed precision on CUDA). Skipped on machines without a GPU, like CI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_tiny_run_trains_on_the_gpu_in_bf16(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_module

    from dmx.config import to_config
    from dmx.train import train

    with initialize_config_module(config_module="dmx.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY, "logger=none"])
    summary = train(to_config(cfg), tmp_path / "run")
    assert summary["status"] == "done"
    assert summary["precision"] == "bf16-mixed"
    assert torch.cuda.get_device_name(0) in summary["device"]
    assert summary["final_val_loss"] < 10


def test_masking_on_the_gpu_equals_masking_on_the_cpu() -> None:
    from dmx.masking import TokenMasker

    masker = TokenMasker(0, None, 0.15, 0.8, 0.1, 4, 5, 1000)
    ids = torch.randint(5, 1000, (64, 128))
    index = torch.arange(64)
    cpu = masker(ids, index, key=3)
    gpu = masker(ids.cuda(), index.cuda(), key=3)
    assert torch.equal(cpu.input_ids, gpu.input_ids.cpu())
    assert torch.equal(cpu.selected, gpu.selected.cpu())
