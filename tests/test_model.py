"""The encoder's fast paths: fp32 keeps torch's kernels bit for bit; under bf16 autocast on
a CPU, attention runs as matrix multiplies and dropout draws its mask from 64-bit words,
both computing what torch's kernels compute."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import TIMINGS, make_config, train_run

from dmx.common.run_folder import read_metrics
from dmx.data.corpus import load_corpus
from dmx.model import Dropout, EncoderShape, MaskedLM, _attention_matmuls


def _qkv(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 2, 16, 8, generator=g) for _ in range(3)]


@pytest.mark.parametrize("mask_kind", [None, "bool", "float"])
def test_attention_matmuls_compute_what_sdpa_computes(mask_kind: str | None) -> None:
    q, k, v = _qkv()
    mask = None
    if mask_kind == "bool":
        mask = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1)) < 0.7
        mask |= torch.eye(16, dtype=torch.bool)  # no query without a key
    elif mask_kind == "float":
        mask = torch.randn(3, 1, 16, 16)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(_attention_matmuls(q, k, v, mask, 0.0), expected, atol=1e-5)


def test_dropout_outside_cpu_autocast_is_torchs_own() -> None:
    x = torch.randn(64, 32)
    drop = Dropout(0.1).train()
    torch.manual_seed(5)
    ours = drop(x)
    torch.manual_seed(5)
    assert torch.equal(ours, F.dropout(x, 0.1, training=True))  # fp32 results unchanged
    assert torch.equal(drop.eval()(x), x)


def test_word_drawn_dropout_drops_at_rate_p_and_keeps_the_mean() -> None:
    x = torch.ones(1000, 1000, requires_grad=True)
    drop = Dropout(0.1).train()
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = drop(x)
    assert y.dtype == torch.float32  # dropout keeps its input's dtype
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(round(0.1 * 2**16) / 2**16, abs=0.002)  # 1M draws
    assert y.mean().item() == pytest.approx(1.0, abs=0.005)
    y.sum().backward()  # the gradient flows through the kept elements, scaled
    assert torch.equal(x.grad, (y != 0).float() / 0.9)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        again = drop(x)
    assert torch.equal(again, y)  # torch.manual_seed fixes the mask


def test_every_16_bit_draw_is_used() -> None:
    """The default range of int64.random_ leaves the sign bit 0, which would keep every
    fourth element: the full range must be drawn."""
    x = torch.ones(4, 250_000)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = Dropout(0.5).train()(x.view(-1)).view(-1, 4)
    for column in range(4):  # the four int16 draws of each word
        assert (y[:, column] == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)


def test_the_loss_under_bf16_autocast_tracks_fp32() -> None:
    torch.manual_seed(0)
    model = MaskedLM(EncoderShape(300, 2, 32, 4, 64, 16, dropout=0.0)).train()
    ids = torch.randint(5, 300, (8, 16))
    selected = torch.rand(8, 16) < 0.3
    fp32 = model(ids, ids, selected).loss_sum
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model(ids, ids, selected).loss_sum
    assert bf16.item() == pytest.approx(fp32.item(), rel=0.01)
    assert model(ids, ids, selected).correct is None  # no argmax while training
    assert model.eval()(ids, ids, selected).correct is not None


@pytest.mark.slow
def test_a_run_records_its_flops_per_token_and_rate(tmp_path: Path, cache_dir: Path) -> None:
    summary = train_run(tmp_path / "run", "mask=dynamic")
    config = make_config("mask=dynamic")
    vocab = load_corpus(config.data, cache_dir).vocab_size
    model = MaskedLM(EncoderShape.from_config(config.model, vocab))
    flops = model.flops_per_token(config.data.seq_len, summary["mask_rate"])
    assert summary["flops_per_token"] == round(flops)
    expected = round(summary["tokens_per_s"] * summary["flops_per_token"] / 1e12, 4)
    assert summary["model_tflops"] == expected
    assert "mfu" not in summary  # measured against a GPU's peak only; dmx bench on a CPU
    assert {"model_tflops"} <= TIMINGS


@pytest.mark.slow
def test_a_compiled_encoder_trains_to_the_same_loss(tmp_path: Path) -> None:
    plain = train_run(tmp_path / "plain", "trainer.max_steps=6")
    compiled = train_run(tmp_path / "compiled", "trainer.max_steps=6", "impl.compile=true")
    assert compiled["status"] == "done"
    # Fused kernels round differently: after 6 steps the losses agree to 1e-3.
    assert compiled["final_val_loss"] == pytest.approx(plain["final_val_loss"], rel=1e-3)
    checkpoint = torch.load(tmp_path / "compiled" / "checkpoints" / "last.ckpt")
    assert not any("_orig_mod" in key for key in checkpoint["state_dict"])
    assert read_metrics(tmp_path / "compiled")["status"] == "done"


@pytest.mark.slow
def test_a_bf16_run_on_the_cpu_is_done_and_says_so(tmp_path: Path) -> None:
    summary = train_run(tmp_path / "run", "impl.precision=bf16-mixed")
    assert summary["status"] == "done" and summary["precision"] == "bf16-mixed"
    fp32 = train_run(tmp_path / "fp32")
    assert summary["final_val_loss"] == pytest.approx(fp32["final_val_loss"], rel=0.02)
