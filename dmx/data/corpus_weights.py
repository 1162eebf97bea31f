"""Corpus statistics per token id: how often it occurs, and how informative it is.

Corpus-weighted masking (``weighting=corpus``) masks the tokens that carry information more
often than the ones that do not. The idea is InforMask's (Sadeq et al., EMNLP 2022): a token
that goes with particular neighbours ("Kong" with "Hong", a topic word with its topic) is
informative, a function word that sits next to anything is not. The method is simpler than
InforMask's (``weighting=informask``, dmx.data.informask, follows the paper): each token
*id* gets one weight, once per corpus, so the mask stays keyed and costs one table lookup:

    relevance(v) = sum over neighbours u of p(u | v) log p(u | v) / p(u)

the expected PMI between ``v`` and a token within ``window`` positions of it in the same
document, i.e. the KL divergence of v's neighbour distribution from the unigram
distribution. Estimated from counts, this is biased upward for rare ids (few neighbours
look peculiar by chance), so the Miller-Madow term ``(distinct neighbours - 1) / (2 x
pairs)`` is subtracted, and ids seen fewer than ``min_count`` times get the mean relevance.

Why neighbour PMI and not inverse frequency (``corpus_weight_by=inverse_frequency``, the
simpler option, weight ``1 / sqrt(count)`` as word2vec's subsampling): frequency is only a
proxy. Rare ids are often rare pieces of rare words, not informative ones, and frequent
content words ("river" in a corpus about rivers) are exactly what PMI keeps and inverse
frequency drops. Both are offered; PMI is the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmx.common.choices import CORPUS_WEIGHT_BY
from dmx.data.tokenizer import N_SPECIAL

# Pairs are counted on at most this many tokens from the start of the stream: the table
# needs the common ids' neighbourhoods, not a pass over a whole 100M-token corpus.
MAX_TOKENS = 5_000_000


def token_counts(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """How often each id occurs in the stream, special tokens set to 0 (never selected)."""
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=vocab_size)[:vocab_size]
    counts = counts.astype(np.float64)
    counts[:N_SPECIAL] = 0.0
    return counts


@dataclass(frozen=True)
class NeighbourPairs:
    """Every (id, id within ``window`` positions in the same document) pair of a stream,
    counted in both directions: ``keys`` (a x vocab + b, sorted), their counts ``c_ab``,
    each id's neighbour slots ``c_a`` and the total."""

    keys: np.ndarray
    c_ab: np.ndarray
    c_a: np.ndarray
    total: float
    vocab_size: int

    def pmi(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """PMI of the pairs (a, b), each of which must have been counted."""
        queries = a * self.vocab_size + b
        # Looked up in sorted order: the same answers, five times faster for millions of
        # queries, whose random order would miss the cache at every step of the search.
        order = np.argsort(queries, kind="stable")
        at = np.empty_like(order)
        at[order] = np.searchsorted(self.keys, queries[order])
        c_ab = self.c_ab[at]
        return np.log(c_ab * self.total / (self.c_a[a] * self.c_a[b]))


def document_of(offsets: np.ndarray, n: int) -> np.ndarray:
    """The document index of each of the stream's first ``n`` tokens."""
    return np.searchsorted(np.asarray(offsets, dtype=np.int64), np.arange(n), side="right")


def neighbour_pairs(
    ids: np.ndarray, doc: np.ndarray, vocab_size: int, window: int
) -> NeighbourPairs:
    """Count the ordinary-token pairs within ``window`` of each other (special tokens and
    document boundaries excluded)."""
    ordinary = ids >= N_SPECIAL
    keys = []
    for d in range(1, window + 1):
        ok = ordinary[:-d] & ordinary[d:] & (doc[:-d] == doc[d:])
        a, b = ids[:-d][ok], ids[d:][ok]
        keys += [a * vocab_size + b, b * vocab_size + a]  # both directions
    pair_keys = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    pairs, c_ab = np.unique(pair_keys, return_counts=True)
    c_ab = c_ab.astype(np.float64)
    c_a = np.bincount(pairs // vocab_size, weights=c_ab, minlength=vocab_size)
    return NeighbourPairs(pairs, c_ab, c_a, float(c_ab.sum()), vocab_size)


def neighbour_relevance(
    ids: np.ndarray,
    offsets: np.ndarray,
    vocab_size: int,
    window: int = 5,
    min_count: int = 5,
) -> np.ndarray:
    """Each id's expected PMI with the tokens within ``window`` of it, in its document."""
    ids = np.asarray(ids[:MAX_TOKENS], dtype=np.int64)
    counted = neighbour_pairs(ids, document_of(offsets, len(ids)), vocab_size, window)
    relevance = np.full(vocab_size, np.nan)
    if counted.total == 0:
        return relevance
    a, b = counted.keys // vocab_size, counted.keys % vocab_size
    c_a = counted.c_a
    p_cond = counted.c_ab / c_a[a]
    pmi = np.log(counted.c_ab * counted.total / (c_a[a] * c_a[b]))
    kl = np.bincount(a, weights=p_cond * pmi, minlength=vocab_size)
    distinct = np.bincount(a, minlength=vocab_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        corrected = np.maximum(kl - (distinct - 1) / (2 * c_a), 0.0)
    occurrences = np.bincount(ids, minlength=vocab_size)[:vocab_size]
    known = (occurrences >= min_count) & (c_a > 0)
    relevance[known] = corrected[known]
    return relevance


def corpus_weights(
    ids: np.ndarray,
    offsets: np.ndarray,
    vocab_size: int,
    by: str = "neighbour_pmi",
    window: int = 5,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """Raw (unnormalised) selection weights per id; ids without a score get the mean of the
    scored ones (weighted by count), so they are masked at the plain rate. ``counts``: the
    stream's :func:`token_counts`, when the caller has them (one pass over a large stream
    fewer)."""
    counts = token_counts(ids, vocab_size) if counts is None else counts
    if by == "inverse_frequency":
        raw = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), np.nan)
    elif by == "neighbour_pmi":
        raw = neighbour_relevance(ids, offsets, vocab_size, window)
    else:
        raise ValueError(f"unknown corpus_weight_by {by!r}; choose one of {CORPUS_WEIGHT_BY}")
    scored = ~np.isnan(raw) & (counts > 0)
    mean = float((raw[scored] * counts[scored]).sum() / max(counts[scored].sum(), 1e-12))
    return np.where(np.isnan(raw), mean if mean > 0 else 1.0, raw)
