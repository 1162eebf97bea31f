"""The optimiser's rules: which parameters decay, and the learning-rate schedule's values."""

from __future__ import annotations

import pytest
import torch

from dmx.config import OptimConfig
from dmx.model import EncoderShape, MaskedLM
from dmx.training.optim import build_optimizer, lr_lambda, param_groups


def test_decay_applies_to_matrices_only_and_never_to_embeddings() -> None:
    model = MaskedLM(EncoderShape(100, n_layers=2, d_model=32, n_heads=2, d_ff=64, max_seq_len=16))
    decay, no_decay = param_groups(model, weight_decay=0.05)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = [names[id(p)] for p in decay["params"]]
    expected = [
        f"blocks.{i}.{w}"
        for i in range(2)
        for w in ("attn.qkv.weight", "attn.out.weight", "ff.0.weight", "ff.2.weight")
    ] + ["head_transform.0.weight"]
    assert decayed == expected
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert {"tok.weight", "pos.weight", "head_bias", "ln_f.weight", "blocks.0.ln1.bias"} <= exempt
    # Every parameter exactly once (the tied decoder is the token embedding itself).
    assert len(decayed) + len(exempt) == len(list(model.parameters()))


def test_schedule_warms_up_then_decays_linearly_to_the_final_fraction() -> None:
    cfg = OptimConfig(warmup_frac=0.1, final_lr_frac=0.1)
    f = lr_lambda(cfg, total_steps=100)
    assert [f(0), f(4), f(9)] == pytest.approx([0.1, 0.5, 1.0])
    assert [f(10), f(55), f(100), f(150)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    assert lr_lambda(OptimConfig(warmup_frac=0.0), total_steps=10)(0) == 1.0


def test_optimizer_takes_lr_and_betas_from_the_config() -> None:
    model = torch.nn.Linear(4, 4)
    opt = build_optimizer(model, OptimConfig(lr=3e-4, beta1=0.8, beta2=0.95, weight_decay=0.2))
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["lr"] for g in opt.param_groups] == [3e-4, 3e-4]
    assert opt.param_groups[0]["betas"] == (0.8, 0.95)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 1]  # weight decays, bias not
