"""The embedded corpus as whole arrays: the interface dmx had before memory-mapped caches.

Training reads rows on demand through :func:`dmx.data.corpora.load_corpus`; this module
keeps the older, materialised view (every row as one (n, seq_len) array) for callers that
want plain arrays of a small corpus, such as tests that count tokens. The arrays are built
from the same cache, so both views agree row for row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from dmx.config import DataConfig
from dmx.data.cache import default_cache_dir
from dmx.data.corpora import load_corpus
from dmx.data.sequences import pack, word_starts

__all__ = ["TokenizedCorpus", "default_cache_dir", "load_or_build", "pack", "word_starts"]


@dataclass(frozen=True)
class TokenizedCorpus:
    train: np.ndarray  # (n_train_sequences, seq_len) int32
    val: np.ndarray  # (n_val_sequences, seq_len) int32
    # 1 where a position begins a word (the tokenizer's pre-tokenized words; each special
    # token is a word of its own), 0 inside one: whole-word and span masking need it.
    train_words: np.ndarray  # (n_train_sequences, seq_len) uint8
    val_words: np.ndarray  # (n_val_sequences, seq_len) uint8
    tokenizer: Tokenizer
    stats: dict[str, int]

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


def load_or_build(cfg: DataConfig, cache_dir: str | Path | None = None) -> TokenizedCorpus:
    """Every row of ``cfg``'s corpus as arrays (small corpora only: nothing is streamed)."""
    corpus = load_corpus(cfg, cache_dir, require_batch=False)
    train, train_words = corpus.train.to_numpy()
    val, val_words = corpus.val.to_numpy()
    return TokenizedCorpus(
        train=train,
        val=val,
        train_words=train_words,
        val_words=val_words,
        tokenizer=corpus.tokenizer,
        stats=corpus.stats,
    )
