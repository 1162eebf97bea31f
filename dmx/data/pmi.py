"""PMI-Masking's units (Levine et al., ICLR 2021): word n-grams that occur together far more
often than their parts do, masked as one unit.

Masking single words lets a model fill "[MASK] Kong" from "Hong" alone, a shortcut that
teaches little; masking "Hong Kong" whole removes it. Which n-grams deserve this comes from
the training split's own statistics:

1. count every word n-gram, n = 1 to ``ngram_max`` (a word is the tokens from one word start
   to the next; no n-gram crosses a special token, so none crosses a document);
2. score each n-gram (n >= 2) seen at least ``min_count`` times by AI21's ranking score
   ``min over segmentations s of log p(w)^2 / prod p(segment)``, where p of a k-gram is its
   count over the number of k-gram positions, and keep those whose plain PMI_n (the same
   minimum without the square) is positive: they co-occur more than every split predicts;
3. keep the top ``vocab_size`` by score, split across lengths as AI21's released lists are
   (half bigrams, a quarter trigrams, an eighth each of 4- and 5-grams);
4. cut the training stream into units once: longest n-grams first, then left to right, no
   two overlapping; every other word is a unit of its own.

Step 4 is fixed per corpus, so a mask stays a pure function of (seed, key, row index) given
the vocabulary: AI21's collator instead resolves overlapping matches at random on every
draw. The result is a ``units.npy`` beside the token streams (1 where a token begins a
unit), cached by the corpus fingerprint and these settings, with ``vocabulary.tsv`` to read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmx.common.files import atomic_write_text
from dmx.common.progress import Stages, no_steps
from dmx.data.tokenizer import N_SPECIAL

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
# AI21's released vocabularies: 50% bigrams, 25% trigrams, 12.5% each 4- and 5-grams.
_LENGTH_SHARES = {2: 0.5, 3: 0.25, 4: 0.125, 5: 0.125}
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class PMISettings:
    ngram_max: int = 5
    min_count: int = 10
    vocab_size: int = 2000

    @classmethod
    def from_config(cls, mask: Any) -> PMISettings:
        """The vocabulary settings of a ``mask`` config (:class:`dmx.config.MaskConfig`)."""
        return cls(mask.pmi_ngram_max, mask.pmi_min_count, mask.pmi_vocab_size)

    def key(self) -> str:
        payload = json.dumps({"format": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Collocation:
    """One n-gram of the masking vocabulary, for people to read."""

    n: int
    count: int
    score: float  # the ranking score, log p^2 / prod p(segments), minimised
    pmi: float  # PMI_n: log p / prod p(segments), minimised
    first: int  # where it first occurs, as a position in the token stream
    n_tokens: int


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (multiplication wraps modulo 2**64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


@dataclass
class _Words:
    """The stream as words: a hash of each word's tokens, whether it holds a special token,
    where it begins, and the word of every token."""

    # (n_words,) uint64, a hash of the word's tokens: equal words share it in any stream,
    # so a vocabulary built on one stream matches words of another
    ids: np.ndarray
    breaker: np.ndarray  # (n_words,) bool: a special token ([SEP]) stops n-grams here
    begin: np.ndarray  # (n_words,) int64, first token position
    of_token: np.ndarray  # (n_tokens,) int64


def _words(ids: np.ndarray, starts: np.ndarray) -> _Words:
    tokens = np.asarray(ids, dtype=np.int64)
    starts = np.asarray(starts, dtype=bool).copy()
    if len(starts):
        starts[0] = True
    begin = np.flatnonzero(starts).astype(np.int64)
    of_token = np.cumsum(starts, dtype=np.int64) - 1
    within = np.arange(len(tokens), dtype=np.int64) - begin[of_token]
    with np.errstate(over="ignore"):
        token_hash = _mix(tokens.astype(np.uint64) * _GOLDEN + (within + 1).astype(np.uint64))
        word_hash = np.add.reduceat(token_hash, begin) if len(begin) else token_hash[:0]
    special = tokens < N_SPECIAL
    breaker = (
        np.maximum.reduceat(special, begin) if len(begin) else np.zeros(0, dtype=bool)
    ).astype(bool)
    return _Words(word_hash.astype(np.uint64), breaker, begin, of_token)


def _ngram_hashes(words: _Words, n_max: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """For n = 1..n_max: the hash of the n-gram starting at every word, and whether it is a
    real n-gram (no special token inside). Index n holds length n; index 0 is unused."""
    n_words = len(words.ids)
    hashes: list[np.ndarray] = [np.zeros(0, dtype=np.uint64)]
    valid: list[np.ndarray] = [np.zeros(0, dtype=bool)]
    breaks = np.concatenate([[0], np.cumsum(words.breaker, dtype=np.int64)])
    current = _mix(words.ids)
    for n in range(1, n_max + 1):
        count = max(n_words - n + 1, 0)
        if n > 1:
            with np.errstate(over="ignore"):
                current = _mix(current[:count] * _GOLDEN + words.ids[n - 1 :])
        hashes.append(current[:count])
        valid.append((breaks[n : n + count] - breaks[:count]) == 0)
    return hashes, valid


class _Counts:
    """Sorted n-gram hashes of one length with their counts: log p by binary search."""

    def __init__(self, hashes: np.ndarray, valid: np.ndarray) -> None:
        positions = np.flatnonzero(valid)
        self.keys, first, self.counts = np.unique(
            hashes[positions], return_index=True, return_counts=True
        )
        self.first = positions[first]  # the word where each first occurs
        self.total = max(len(positions), 1)

    def log_p(self, hashes: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.keys, hashes)
        return np.log(self.counts[at]) - np.log(self.total)


def _segmentations(n: int) -> list[list[tuple[int, int]]]:
    """Every way to cut n words into two or more contiguous segments, as (begin, end) pairs."""
    out = []
    for cuts in range(1, 1 << (n - 1)):
        bounds = [0] + [i + 1 for i in range(n - 1) if cuts >> i & 1] + [n]
        out.append(list(zip(bounds[:-1], bounds[1:], strict=True)))
    return out


def _lengths(settings: PMISettings) -> list[int]:
    """The n-gram lengths that get a share of the masking vocabulary."""
    return [n for n in _LENGTH_SHARES if n <= settings.ngram_max]


def collocations(
    ids: np.ndarray,
    starts: np.ndarray,
    settings: PMISettings,
    step: Callable[..., None] = no_steps,
) -> tuple[dict[int, np.ndarray], list[Collocation]]:
    """The masking vocabulary of a token stream: per length n, the sorted hashes of the kept
    n-grams (what :func:`segment` matches), and the kept n-grams ranked, for reading.
    ``step`` is told each stage's name as it begins (a progress display)."""
    step("counting n-grams")
    words = _words(ids, starts)
    hashes, valid = _ngram_hashes(words, settings.ngram_max)
    counts = [None] + [_Counts(hashes[n], valid[n]) for n in range(1, settings.ngram_max + 1)]
    lengths = _lengths(settings)
    share_total = sum(_LENGTH_SHARES[n] for n in lengths)
    vocab: dict[int, np.ndarray] = {}
    kept: list[Collocation] = []
    for n in lengths:
        step(f"scoring {n}-grams")
        table = counts[n]
        assert table is not None
        frequent = np.flatnonzero(table.counts >= settings.min_count)
        where = table.first[frequent]  # a word position of each candidate
        log_p = np.log(table.counts[frequent]) - np.log(table.total)
        best = np.full(len(frequent), -np.inf)
        for segments in _segmentations(n):
            total = np.zeros(len(frequent))
            for begin, end in segments:
                sub = counts[end - begin]
                assert sub is not None
                total += sub.log_p(hashes[end - begin][where + begin])
            best = np.maximum(best, total)
        pmi = log_p - best
        score = log_p + pmi  # log p^2 / prod p(segments), at the same segmentation
        positive = np.flatnonzero(pmi > 0)
        quota = round(settings.vocab_size * _LENGTH_SHARES[n] / share_total)
        top = positive[np.argsort(-score[positive], kind="stable")[:quota]]
        vocab[n] = np.sort(table.keys[frequent[top]])
        for i in top:
            begin = int(words.begin[where[i]])
            end_word = where[i] + n
            end = int(words.begin[end_word]) if end_word < len(words.begin) else len(ids)
            kept.append(
                Collocation(
                    n=n,
                    count=int(table.counts[frequent[i]]),
                    score=float(score[i]),
                    pmi=float(pmi[i]),
                    first=begin,
                    n_tokens=end - begin,
                )
            )
    return vocab, kept


def segment(
    ids: np.ndarray,
    starts: np.ndarray,
    vocab: dict[int, np.ndarray],
    step: Callable[..., None] = no_steps,
) -> np.ndarray:
    """uint8 per token, 1 where a masking unit begins: the vocabulary's n-grams, longest
    first and then left to right, never overlapping; every other word is its own unit."""
    words = _words(ids, starts)
    n_max = max(vocab, default=1)
    hashes, valid = _ngram_hashes(words, n_max)
    covered = np.zeros(len(words.ids), dtype=bool)
    unit_start = np.ones(len(words.ids), dtype=bool)
    for n in sorted(vocab, reverse=True):
        step(f"marking {n}-gram units")
        matches = np.flatnonzero(valid[n] & np.isin(hashes[n], vocab[n]))
        # Only matches whose words are all still free can be taken; a taken match covers
        # later ones, so the scan is in order (matches are sparse: a loop over them only).
        for p in matches.tolist():
            if not covered[p : p + n].any():
                covered[p : p + n] = True
                unit_start[p + 1 : p + n] = False
    stream_starts = np.asarray(starts, dtype=bool).copy()
    if len(stream_starts):
        stream_starts[0] = True
    return (stream_starts & unit_start[words.of_token]).astype(np.uint8)


def multiword_share(starts: np.ndarray, units: np.ndarray) -> float:
    """The share of tokens inside a unit of two or more words."""
    starts = np.asarray(starts, dtype=bool)
    units = np.asarray(units, dtype=bool)
    if not len(units):
        return 0.0
    unit_of = np.cumsum(units) - 1
    words_per_unit = np.bincount(unit_of, weights=starts, minlength=int(unit_of[-1]) + 1)
    return float((words_per_unit[unit_of] >= 2).mean())


def load_or_build_units(
    corpus_folder: Path,
    ids: np.ndarray,
    starts: np.ndarray,
    settings: PMISettings,
    decode: Callable[[list[int]], str] | None = None,
) -> np.ndarray:
    """The training stream's unit starts, from ``<corpus folder>/pmi-<settings>/`` when it
    was built before (the corpus folder is named by its fingerprint), else built and saved
    there (``units.npy``, ``vocabulary.tsv`` for reading, then ``meta.json``, whose presence
    marks the folder complete). ``decode`` turns token ids into text for the TSV."""
    folder = corpus_folder / f"pmi-{settings.key()}"
    meta_path, units_path = folder / "meta.json", folder / "units.npy"
    if meta_path.exists() and units_path.exists():
        try:
            units = np.load(units_path, mmap_mode="r", allow_pickle=False)
            if len(units) == len(ids):
                return units
        except (OSError, ValueError):
            pass  # incomplete or corrupt: build it again
    started = time.perf_counter()
    # Counting, then each length scored (collocations) and its units marked (segment).
    with Stages("PMI units", total=1 + 2 * len(_lengths(settings))) as stages:
        vocab, kept = collocations(ids, starts, settings, stages.step)
        units = segment(ids, starts, vocab, stages.step)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".units.{os.getpid()}.npy"
    np.save(tmp, units)
    os.replace(tmp, units_path)
    lines = ["n\tcount\tpmi\tscore\ttext"]
    for c in sorted(kept, key=lambda c: (c.n, -c.score)):
        text = ""
        if decode is not None:
            text = str(decode(np.asarray(ids[c.first : c.first + c.n_tokens]).tolist()))
        lines.append(f"{c.n}\t{c.count}\t{c.pmi:.3f}\t{c.score:.3f}\t{text}")
    atomic_write_text(folder / "vocabulary.tsv", "\n".join(lines) + "\n")
    share = multiword_share(starts, units)
    meta = {
        "format": FORMAT_VERSION,
        "settings": asdict(settings),
        "ngrams": {str(n): int(len(v)) for n, v in vocab.items()},
        "multiword_token_share": round(share, 4),
        "build_s": round(time.perf_counter() - started, 3),
    }
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    log.info(
        "PMI masking vocabulary: %s n-grams; %.1f%% of training tokens lie in multi-word "
        "units (%s)",
        sum(len(v) for v in vocab.values()),
        100 * share,
        folder,
    )
    return np.load(units_path, mmap_mode="r", allow_pickle=False)
