"""The GPU path (bf16 mixed precision on CUDA). Skipped on machines without a GPU, like CI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import train_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


# bf16 autocast changes the arithmetic, not the experiment: the GPU's bf16 run ends at the
# CPU's fp32 loss give or take rounding. Measured on the 2-core CPU, the tiny run (36 steps,
# dropout off) goes from ln(256) = 5.55 nats to 5.222, and bf16 autocast there moves the final
# loss by 0.0001 nats. 0.05 nats is 500 times that, room for the GPU's other reduction orders,
# and a sixth of what training moves the loss: a GPU path that masks, scales or steps wrongly
# lands far outside it.
BF16_TOLERANCE_NATS = 0.05


@pytest.mark.slow
def test_tiny_run_in_bf16_on_the_gpu_ends_at_the_loss_of_fp32_on_the_cpu(tmp_path: Path) -> None:
    # Dropout off: the GPU draws its dropout masks from another generator than the CPU.
    gpu = train_run(tmp_path / "gpu", "model.dropout=0.0")
    assert gpu["status"] == "done"
    assert gpu["precision"] == "bf16-mixed"
    assert torch.cuda.get_device_name(0) in gpu["device"]

    cpu = train_run(
        tmp_path / "cpu", "model.dropout=0.0", "impl.accelerator=cpu", "impl.precision=32-true"
    )
    assert cpu["precision"] == "32-true" and gpu["steps"] == cpu["steps"]
    assert gpu["final_val_loss"] == pytest.approx(cpu["final_val_loss"], abs=BF16_TOLERANCE_NATS)


def test_masking_on_the_gpu_equals_masking_on_the_cpu() -> None:
    from dmx.masking import TokenMasker

    masker = TokenMasker(0, None, 0.15, 0.8, 0.1, 4, 5, 1000)
    ids = torch.randint(5, 1000, (64, 128))
    index = torch.arange(64)
    cpu = masker(ids, index, key=3)
    gpu = masker(ids.cuda(), index.cuda(), key=3)
    assert torch.equal(cpu.input_ids, gpu.input_ids.cpu())
    assert torch.equal(cpu.selected, gpu.selected.cpu())
