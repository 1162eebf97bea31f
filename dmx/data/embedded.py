"""The embedded corpus as packed token arrays, built once and cached by a fingerprint.

Documents are split by document (validation documents are never seen in training),
the tokenizer is fitted on the training documents, and each split is packed into
fixed-length sequences ``[CLS] tokens… [SEP] tokens…`` across document boundaries, so no
position is wasted on padding (only the last sequence of a split is padded).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from dmx.config import DataConfig
from dmx.data import corpus
from dmx.data.tokenizer import CLS_ID, PAD_ID, SEP_ID, train_tokenizer
from dmx.runs import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

# Bump when the corpus generator, the tokenizer recipe or the packing changes, so stale
# caches are not reused.
FORMAT_VERSION = 3


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


def default_cache_dir() -> Path:
    """$DMX_CACHE_DIR, else $XDG_CACHE_HOME/dmx, else ~/.cache/dmx."""
    if os.environ.get("DMX_CACHE_DIR"):
        return Path(os.environ["DMX_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dmx"


def fingerprint(cfg: DataConfig) -> str:
    """Everything that changes the arrays, and nothing else (batch size, workers, eval mask)."""
    keys = {
        "format": FORMAT_VERSION,
        # The generator's own source: editing the grammar invalidates old caches.
        "generator": hashlib.sha256(Path(corpus.__file__).read_bytes()).hexdigest(),
        "name": cfg.name,
        "corpus_seed": cfg.corpus_seed,
        "n_docs": cfg.n_docs,
        "val_docs": cfg.val_docs,
        "vocab_size": cfg.vocab_size,
        "seq_len": cfg.seq_len,
    }
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def word_starts(word_ids: list[int | None]) -> list[int]:
    """1 where a token begins a word, from an encoding's ``word_ids``."""
    return [int(i == 0 or w is None or w != word_ids[i - 1]) for i, w in enumerate(word_ids)]


def pack(
    docs: list[list[int]], seq_len: int, starts: list[list[int]] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate documents with [SEP] between them and cut into [CLS]-led sequences.

    Returns the ids and the word starts beside them (every token its own word when
    ``starts`` is None). A word cut by a sequence boundary begins a word again after [CLS],
    so no word reaches back into a special token.
    """
    stream: list[int] = []
    start_stream: list[int] = []
    for i, ids in enumerate(docs):
        stream.extend(ids)
        start_stream.extend(starts[i] if starts is not None else [1] * len(ids))
        stream.append(SEP_ID)
        start_stream.append(1)
    body = seq_len - 1
    n_seq = -(-len(stream) // body)
    out = np.full((n_seq, seq_len), PAD_ID, dtype=np.int32)
    words = np.ones((n_seq, seq_len), dtype=np.uint8)
    out[:, 0] = CLS_ID
    flat = np.asarray(stream, dtype=np.int32)
    flat_starts = np.asarray(start_stream, dtype=np.uint8)
    for i in range(n_seq):
        chunk = flat[i * body : (i + 1) * body]
        out[i, 1 : 1 + len(chunk)] = chunk
        words[i, 1 : 1 + len(chunk)] = flat_starts[i * body : (i + 1) * body]
    words[:, 1] = 1
    return out, words


def build(cfg: DataConfig) -> TokenizedCorpus:
    docs = corpus.generate_documents(cfg.corpus_seed, cfg.n_docs)
    train_docs, val_docs = docs[: -cfg.val_docs], docs[-cfg.val_docs :]
    tokenizer = train_tokenizer(train_docs, cfg.vocab_size)
    train_enc = tokenizer.encode_batch(train_docs, add_special_tokens=False)
    val_enc = tokenizer.encode_batch(val_docs, add_special_tokens=False)
    train_ids, val_ids = [e.ids for e in train_enc], [e.ids for e in val_enc]
    train, train_words = pack(train_ids, cfg.seq_len, [word_starts(e.word_ids) for e in train_enc])
    val, val_words = pack(val_ids, cfg.seq_len, [word_starts(e.word_ids) for e in val_enc])
    stats = {
        "train_docs": len(train_docs),
        "val_docs": len(val_docs),
        "train_tokens": int(sum(len(x) for x in train_ids)),
        "val_tokens": int(sum(len(x) for x in val_ids)),
        "train_sequences": int(train.shape[0]),
        "val_sequences": int(val.shape[0]),
        "vocab_size": tokenizer.get_vocab_size(),
    }
    return TokenizedCorpus(
        train=train,
        val=val,
        train_words=train_words,
        val_words=val_words,
        tokenizer=tokenizer,
        stats=stats,
    )


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def load_or_build(cfg: DataConfig, cache_dir: str | Path | None = None) -> TokenizedCorpus:
    """Build the corpus, or reuse the cached build with the same fingerprint.

    Each file is written atomically and ``stats.json`` last, so a half-written cache (a
    crash, two runs at once) is never mistaken for a complete one.
    """
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    folder = root / f"{cfg.name}-{fingerprint(cfg)}"
    stats_file = folder / "stats.json"
    if stats_file.exists():
        try:
            cached = TokenizedCorpus(
                train=np.load(folder / "train.npy"),
                val=np.load(folder / "val.npy"),
                train_words=np.load(folder / "train_words.npy"),
                val_words=np.load(folder / "val_words.npy"),
                tokenizer=Tokenizer.from_file(str(folder / "tokenizer.json")),
                stats=json.loads(stats_file.read_text())["stats"],
            )
            log.info("corpus: reusing cache %s", folder)
            return cached
        except Exception as err:  # a damaged cache is rebuilt, never fatal
            log.warning("corpus: cache %s unreadable (%s); rebuilding", folder, err)
    built = build(cfg)
    atomic_write_bytes(folder / "train.npy", _npy_bytes(built.train))
    atomic_write_bytes(folder / "val.npy", _npy_bytes(built.val))
    atomic_write_bytes(folder / "train_words.npy", _npy_bytes(built.train_words))
    atomic_write_bytes(folder / "val_words.npy", _npy_bytes(built.val_words))
    atomic_write_text(folder / "tokenizer.json", built.tokenizer.to_str())
    atomic_write_text(
        stats_file, json.dumps({"stats": built.stats, "config": asdict(cfg)}, indent=2)
    )
    log.info("corpus: built %s into %s", built.stats, folder)
    return built
