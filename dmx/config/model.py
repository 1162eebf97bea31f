"""What is trained and how: the encoder's shape, the attention pattern, the optimiser and the
length of training. Each field is checked where it is declared."""

from __future__ import annotations

from dataclasses import dataclass

from dmx.common.choices import ATTENTION_PATTERNS
from dmx.config.checks import check, check_choice


@dataclass
class ModelConfig:
    name: str = "tiny"
    n_layers: int = 2
    d_model: int = 128
    n_heads: int = 4
    d_ff: int = 512
    max_seq_len: int = 128
    dropout: float = 0.1
    # Dropout on attention probabilities; 0 keeps scaled_dot_product_attention on its fast kernels.
    attn_dropout: float = 0.0

    def __post_init__(self) -> None:
        for key in ("n_layers", "d_model", "n_heads", "d_ff", "max_seq_len"):
            check(getattr(self, key) >= 1, f"model.{key} must be >= 1, got {getattr(self, key)}")
        check(
            self.d_model % self.n_heads == 0,
            f"model.d_model ({self.d_model}) must be divisible by model.n_heads ({self.n_heads})",
        )
        for key in ("dropout", "attn_dropout"):
            value = getattr(self, key)
            check(0.0 <= value < 1.0, f"model.{key} must be in [0, 1), got {value}")


@dataclass
class AttentionConfig:
    """Which positions a token may attend to (the second meaning of "masking").

    Fixed patterns (full, causal, window, block_sparse, random_static) hold for the whole
    run; random_dynamic draws a fresh pattern every step, keyed by (seed, step); learned_gate
    learns a weight in (0, 1) per key from its hidden state, pulled towards ``density``.
    """

    pattern: str = "full"
    # window: each token sees the tokens within window // 2 positions either side.
    window: int = 16
    # block_sparse: local blocks of block_size tokens, plus the first n_global tokens, which
    # see and are seen by every token.
    block_size: int = 16
    n_global: int = 1
    # random_static / random_dynamic: the share of (query, key) pairs allowed;
    # learned_gate: the mean key weight the penalty pulls towards.
    density: float = 0.5
    # learned_gate: weight of the penalty (mean gate - density)^2 added to the loss.
    gate_penalty: float = 1.0

    def __post_init__(self) -> None:
        check_choice("attention.pattern", self.pattern, ATTENTION_PATTERNS)
        for key in ("window", "block_size"):
            check(
                getattr(self, key) >= 1, f"attention.{key} must be >= 1, got {getattr(self, key)}"
            )
        check(self.n_global >= 0, f"attention.n_global must be >= 0, got {self.n_global}")
        check(0.0 < self.density <= 1.0, f"attention.density must be in (0, 1], got {self.density}")
        check(
            self.gate_penalty >= 0, f"attention.gate_penalty must be >= 0, got {self.gate_penalty}"
        )


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.98
    warmup_frac: float = 0.06
    # Linear decay from lr to lr * final_lr_frac at the last step.
    final_lr_frac: float = 0.1

    def __post_init__(self) -> None:
        check(self.lr > 0, f"optim.lr must be > 0, got {self.lr}")
        check(self.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        check(
            0 <= self.warmup_frac < 1,
            f"optim.warmup_frac must be in [0, 1), got {self.warmup_frac}",
        )
        check(
            0 <= self.final_lr_frac <= 1,
            f"optim.final_lr_frac must be in [0, 1], got {self.final_lr_frac}",
        )


@dataclass
class TrainerConfig:
    max_epochs: int = 25
    # Stop early after this many optimiser steps (-1: run all epochs); for smoke runs.
    max_steps: int = -1
    grad_clip: float = 1.0
    # Validate this often within an epoch: a fraction of it (0.25: four times an epoch), or
    # every N training batches; 1.0 validates at the epoch's end only. A one-epoch run on a
    # large corpus gets a validation curve.
    val_check_interval: float = 1.0
    # Sum gradients over N batches before each optimiser step: an N times larger batch in
    # the memory of one (data.batch_size stays the batch of one forward pass).
    accumulate_grad_batches: int = 1

    def __post_init__(self) -> None:
        # 0 skips pretraining: a classifier trained from scratch (finetune=... is then needed).
        check(self.max_epochs >= 0, f"trainer.max_epochs must be >= 0, got {self.max_epochs}")
        check(
            self.max_steps == -1 or self.max_steps >= 1,
            f"trainer.max_steps must be -1 (no limit) or >= 1, got {self.max_steps}",
        )
        check(self.grad_clip >= 0, f"trainer.grad_clip must be >= 0, got {self.grad_clip}")
        interval = self.val_check_interval
        check(
            0 < interval <= 1 or (interval > 1 and float(interval).is_integer()),
            "trainer.val_check_interval must be a fraction of an epoch in (0, 1] or a whole "
            f"number of batches, got {interval}",
        )
        check(
            self.accumulate_grad_batches >= 1,
            f"trainer.accumulate_grad_batches must be >= 1, got {self.accumulate_grad_batches}",
        )
