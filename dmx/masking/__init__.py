"""Keyed masks: every mask is a pure function of (seed, key, sample index). Imports torch only.

``token_masks`` (which tokens are hidden, and what they become), ``select`` (tokens, whole
words, spans, PMI units), ``schedule`` (the rate over training), ``attention_masks`` (which
keys a query may see), ``weights`` and ``adaptive`` (per-id rates).

Layer 7 of 9, beside dmx.model: imports only dmx.common and torch (no Lightning, Hydra,
OmegaConf, W&B or numpy; `make lint` checks it). A new masking strategy goes here (its
choice in dmx.common.choices, its settings in dmx.config.mask).
"""

from dmx.masking.attention_masks import AttentionPattern
from dmx.masking.keyed import keyed_uniform
from dmx.masking.schedule import rate_at
from dmx.masking.token_masks import EVAL_KEY, IGNORE_INDEX, MaskedBatch, TokenMasker

__all__ = [
    "EVAL_KEY",
    "IGNORE_INDEX",
    "AttentionPattern",
    "MaskedBatch",
    "TokenMasker",
    "keyed_uniform",
    "rate_at",
]
