"""``dmx bench --data``: how fast a text corpus becomes memory-mapped token streams, and
how fast training reads them back, on a synthetic corpus of a chosen size.

The corpus is words drawn from a Zipf law over a fixed vocabulary (as natural text's word
frequencies are), in documents of varying length separated by blank lines, written to a
.txt file as ``data=text`` reads it. Preprocessing is what the first run on a corpus pays
(training the BPE tokenizer, encoding, writing the streams); every later run opens the
cache instead. The process's peak resident memory is reported beside the sizes, so a
reader can see that neither step holds the corpus in memory.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmx.common.hardware import peak_rss_mb
from dmx.config import DataConfig
from dmx.data.corpus import load_corpus

WORDS_PER_DOC = (50, 400)
_TOKENS_PER_WORD = 1.35  # BPE tokens per synthetic word at an 8192 vocabulary, measured


@dataclass(frozen=True)
class DataBench:
    text_mb: float
    write_s: float
    tokens: int  # train and validation tokens in the streams
    preprocess_s: float  # tokenizer training, encoding and writing the cache
    open_s: float  # a second run opening the cache
    rows: int  # training rows read back
    read_s: float
    seq_len: int
    peak_rss_mb: float | None

    @property
    def preprocess_tokens_per_s(self) -> float:
        return self.tokens / self.preprocess_s

    @property
    def read_tokens_per_s(self) -> float:
        return self.rows * self.seq_len / self.read_s


def _vocabulary(n: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(2, 9))))
    return sorted(words)


def write_synthetic_corpus(path: Path, n_tokens: int, seed: int = 0) -> float:
    """About ``n_tokens`` BPE tokens of Zipf-distributed words; returns the size in MB."""
    rng = random.Random(seed)
    vocab = np.array(_vocabulary(20_000, rng))
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    gen = np.random.default_rng(seed)
    words_left = int(n_tokens / _TOKENS_PER_WORD)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        while words_left > 0:
            lengths = gen.integers(*WORDS_PER_DOC, size=1000)
            picks = vocab[gen.choice(len(vocab), size=int(lengths.sum()), p=weights)]
            docs, start = [], 0
            for length in lengths:
                docs.append(" ".join(picks[start : start + length]))
                start += length
                words_left -= int(length)
                if words_left <= 0:
                    break
            out.write("\n\n".join(docs) + "\n\n")
    tmp.replace(path)
    return path.stat().st_size / 1e6


def bench_data(
    n_tokens: int,
    workdir: Path,
    vocab_size: int = 8192,
    seq_len: int = 128,
    rows: int = 20_000,
    seed: int = 0,
) -> DataBench:
    """Write a synthetic corpus under ``workdir``, preprocess it into a fresh cache there,
    open the cache again, and read ``rows`` random training rows back."""
    workdir.mkdir(parents=True, exist_ok=True)
    text = workdir / "synthetic.txt"
    started = time.perf_counter()
    text_mb = write_synthetic_corpus(text, n_tokens, seed)
    write_s = time.perf_counter() - started
    cache = workdir / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    cfg = DataConfig(
        source="text", name="synthetic", path=str(text), vocab_size=vocab_size, seq_len=seq_len
    )
    started = time.perf_counter()
    corpus = load_corpus(cfg, cache, require_batch=False)
    preprocess_s = time.perf_counter() - started
    tokens = int(corpus.stats["train_tokens"] + corpus.stats["val_tokens"])
    started = time.perf_counter()
    corpus = load_corpus(cfg, cache, require_batch=False)
    open_s = time.perf_counter() - started
    gen = np.random.default_rng(seed)
    picks = gen.integers(0, len(corpus.train), size=min(rows, len(corpus.train)))
    started = time.perf_counter()
    for i in picks:
        corpus.train[int(i)]
    read_s = time.perf_counter() - started
    return DataBench(
        text_mb=text_mb,
        write_s=write_s,
        tokens=tokens,
        preprocess_s=preprocess_s,
        open_s=open_s,
        rows=len(picks),
        read_s=read_s,
        seq_len=seq_len,
        peak_rss_mb=peak_rss_mb(),
    )
