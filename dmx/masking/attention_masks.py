"""Attention masks: which keys each query may attend to, as a keyed function of the step.

Fixed patterns (causal, window, block_sparse, random_static) are the same at every step;
``random_dynamic`` draws a fresh random pattern every step from (seed, step), the
attention counterpart of dynamic token masking; the learned gate lives in the model
(:mod:`dmx.model`), since it has weights. A pattern is a bool (length, length) tensor,
True where attention is allowed, shared by the batch; :func:`combine` adds each batch's
padding and guarantees that every query sees at least itself, so no row of the softmax is
empty (no NaN). ``full`` has nothing to mask and returns None, so PyTorch keeps its
fastest attention kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from dmx.common.choices import ATTENTION_PATTERNS
from dmx.common.fields import from_fields
from dmx.masking.keyed import keyed_uniform

_ATTENTION_STREAM = 16  # apart from the token-masking streams
EVAL_STEP = -1  # the key of random_dynamic's pattern during validation: one, fixed


@dataclass(frozen=True)
class AttentionPattern:
    pattern: str
    seed: int = 0
    window: int = 16
    block_size: int = 16
    n_global: int = 1
    density: float = 0.5

    @classmethod
    def from_config(cls, attention: Any, seed: int) -> AttentionPattern:
        """The pattern an ``attention`` config (:class:`dmx.config.AttentionConfig`) asks
        for, keyed by the run's seed, so pretraining and fine-tuning mask alike."""
        return from_fields(cls, attention, seed=seed)

    @property
    def learned(self) -> bool:
        return self.pattern == "learned_gate"

    @property
    def redrawn(self) -> bool:
        """Whether the pattern changes from step to step."""
        return self.pattern == "random_dynamic"

    def allowed(self, length: int, device: torch.device, step: int = 0) -> torch.Tensor | None:
        """The (length, length) bool pattern at ``step`` (True: query i may see key j)."""
        i = torch.arange(length, device=device)[:, None]
        j = torch.arange(length, device=device)[None, :]
        if self.pattern in ("full", "learned_gate"):
            return None
        if self.pattern == "causal":
            return j <= i
        if self.pattern == "window":
            return (i - j).abs() <= self.window // 2
        if self.pattern == "block_sparse":
            glob = (i < self.n_global) | (j < self.n_global)
            return (i // self.block_size == j // self.block_size) | glob
        if self.pattern in ("random_static", "random_dynamic"):
            key = 0 if self.pattern == "random_static" else step
            rows = torch.arange(length, device=device)
            u = keyed_uniform(self.seed, _ATTENTION_STREAM, key, rows, length)
            return (u < self.density) | (i == j)
        raise ValueError(
            f"unknown attention pattern {self.pattern!r}; choose one of "
            f"{', '.join(ATTENTION_PATTERNS)}"
        )


def gate_penalty(gate_mean: torch.Tensor, density: float, weight: float) -> torch.Tensor:
    """``weight x (mean gate - density)^2``: pulls the learned gate to the target density."""
    gap = gate_mean - density
    return weight * gap * gap


def combine(allowed: torch.Tensor | None, padding: torch.Tensor | None) -> torch.Tensor | None:
    """One bool mask for scaled_dot_product_attention: the pattern, minus padded keys.

    Returns None when nothing is masked. Each query keeps its own key, so no row is empty.
    """
    no_padding = padding is None or bool(padding.all())
    if allowed is None:
        # Padded keys hidden from every query; a padded query still sees the real tokens.
        return None if no_padding else padding[:, None, None, :]
    mask = allowed[None, None] if no_padding else allowed[None, None] & padding[:, None, None, :]
    eye = torch.eye(allowed.shape[0], dtype=torch.bool, device=allowed.device)
    return mask | eye


def density(mask: torch.Tensor | None, padding: torch.Tensor) -> torch.Tensor:
    """The share of (real query, real key) pairs the mask allows: 1 for no mask."""
    real = padding[:, :, None] & padding[:, None, :]  # (batch, length, length)
    pairs = real.sum()
    if mask is None:
        return torch.ones((), device=padding.device)
    allowed = mask.expand(padding.shape[0], 1, -1, -1)[:, 0] & real
    return allowed.sum() / pairs.clamp_min(1)
