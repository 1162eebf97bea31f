"""The corpus a run trains on: one call from a DataConfig to train and validation rows.

:func:`load_corpus` reads the documents (dmx.data.sources), tokenizes them once into a
memory-mapped cache (dmx.data.cache) and cuts rows from it at load time
(dmx.data.sequences). What the rest of dmx sees is deliberately small::

    corpus = load_corpus(cfg.data)
    len(corpus.train); ids, word_starts = corpus.train[i]   # int64 and bool, seq_len each
    corpus.val, corpus.tokenizer, corpus.vocab_size, corpus.stats, corpus.fingerprint

A row's index is its identity (the masks are keyed by it), and rows are a pure function
of the cache and (seq_len, packing), so the same corpus gives the same rows on every run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from dmx.common.errors import UserError
from dmx.config import DataConfig
from dmx.data.cache import load_or_tokenize
from dmx.data.sequences import Sequences, make_sequences
from dmx.data.sources import open_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Corpus:
    """Train and validation rows, the tokenizer that made them, and their counts.

    ``stats``: train_docs, val_docs, train_tokens, val_tokens (the documents' tokens, no
    special tokens), train_sequences, val_sequences and vocab_size. ``fingerprint`` names
    the token cache in ``folder``.
    """

    train: Sequences
    val: Sequences
    tokenizer: Tokenizer
    stats: dict[str, int]
    fingerprint: str
    folder: Path

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


def load_corpus(
    cfg: DataConfig, cache_dir: str | Path | None = None, *, require_batch: bool = True
) -> Corpus:
    """The corpus ``cfg`` describes, from the token cache when it holds it.

    With ``require_batch`` (training), a corpus with fewer training rows than one batch of
    ``data.batch_size`` is a UserError: there would be no full step to take.
    """
    tokenized = load_or_tokenize(cfg, open_source(cfg), cache_dir)
    train = make_sequences(tokenized.train, cfg.seq_len, cfg.packing)
    val = make_sequences(tokenized.val, cfg.seq_len, cfg.packing)
    stats = {
        "train_docs": tokenized.train.n_docs,
        "val_docs": tokenized.val.n_docs,
        "train_tokens": tokenized.train.n_tokens,
        "val_tokens": tokenized.val.n_tokens,
        "train_sequences": len(train),
        "val_sequences": len(val),
        "vocab_size": tokenized.tokenizer.get_vocab_size(),
    }
    if require_batch and len(train) < cfg.batch_size:
        raise UserError(
            f"the corpus has {len(train)} training sequences of data.seq_len={cfg.seq_len}, "
            f"fewer than one batch of data.batch_size={cfg.batch_size}; add more text or lower "
            "data.batch_size (or data.seq_len)"
        )
    return Corpus(
        train=train,
        val=val,
        tokenizer=tokenized.tokenizer,
        stats=stats,
        fingerprint=tokenized.fingerprint,
        folder=tokenized.folder,
    )
