"""Keyed masks: every mask is a pure function of (seed, key, sample index). Imports torch only.

``tokens`` (which tokens are hidden, and what they become), ``select`` (tokens, whole words,
spans), ``schedule`` (the rate over training), ``attention`` (which keys a query may see).
"""

from dmx.masking.attention import AttentionPattern
from dmx.masking.keyed import keyed_uniform
from dmx.masking.schedule import rate_at
from dmx.masking.tokens import EVAL_KEY, IGNORE_INDEX, MaskedBatch, TokenMasker

__all__ = [
    "EVAL_KEY",
    "IGNORE_INDEX",
    "AttentionPattern",
    "MaskedBatch",
    "TokenMasker",
    "keyed_uniform",
    "rate_at",
]
