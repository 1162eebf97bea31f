"""The attention settings both tasks share: the keyed pattern built from the config, and the
learned gate's penalty. One home, so pretraining and fine-tuning mask attention alike."""

from __future__ import annotations

import torch

from dmx.config import AttentionConfig
from dmx.masking.attention import AttentionPattern


def pattern_from(cfg: AttentionConfig, seed: int) -> AttentionPattern:
    return AttentionPattern(
        cfg.pattern, seed, cfg.window, cfg.block_size, cfg.n_global, cfg.density
    )


def gate_penalty(cfg: AttentionConfig, gate_mean: torch.Tensor) -> torch.Tensor:
    """gate_penalty x (mean gate - density)^2: pulls the learned gate to the target density."""
    gap = gate_mean - cfg.density
    return cfg.gate_penalty * gap * gap
