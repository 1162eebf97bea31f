"""Keyed masks: every mask is a pure function of (seed, key, sample index). Imports torch only."""

from dmx.masking.keyed import keyed_uniform
from dmx.masking.tokens import EVAL_KEY, IGNORE_INDEX, MaskedBatch, TokenMasker

__all__ = ["EVAL_KEY", "IGNORE_INDEX", "MaskedBatch", "TokenMasker", "keyed_uniform"]
