"""Corpus statistics per token id: how often it occurs, and how informative it is.

Informative masking (after InforMask, Sadeq et al., EMNLP 2022) masks the tokens that carry
information more often than the ones that do not. InforMask scores a token by its PMI with
the other tokens of its sentence: a token that goes with particular neighbours ("Kong" with
"Hong", a topic word with its topic) scores high, a function word that sits next to anything
scores near zero. dmx scores each token *id* the same way, once per corpus, so the mask stays
keyed and costs one table lookup:

    relevance(v) = sum over neighbours u of p(u | v) log p(u | v) / p(u)

the expected PMI between ``v`` and a token within ``window`` positions of it in the same
document, i.e. the KL divergence of v's neighbour distribution from the unigram
distribution. Estimated from counts, this is biased upward for rare ids (few neighbours
look peculiar by chance), so the Miller-Madow term ``(distinct neighbours - 1) / (2 x
pairs)`` is subtracted, and ids seen fewer than ``min_count`` times get the mean relevance.

Why neighbour PMI and not inverse frequency (``informative_by=inverse_frequency``, the
simpler option, weight ``1 / sqrt(count)`` as word2vec's subsampling): frequency is only a
proxy. Rare ids are often rare pieces of rare words, not informative ones, and frequent
content words ("river" in a corpus about rivers) are exactly what PMI keeps and inverse
frequency drops. Both are offered; PMI is the default.
"""

from __future__ import annotations

import numpy as np

from dmx.choices import INFORMATIVE_BY
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


def neighbour_relevance(
    ids: np.ndarray,
    offsets: np.ndarray,
    vocab_size: int,
    window: int = 5,
    min_count: int = 5,
) -> np.ndarray:
    """Each id's expected PMI with the tokens within ``window`` of it, in its document."""
    ids = np.asarray(ids[:MAX_TOKENS], dtype=np.int64)
    n = len(ids)
    doc = np.searchsorted(np.asarray(offsets, dtype=np.int64), np.arange(n), side="right")
    ordinary = ids >= N_SPECIAL
    keys = []
    for d in range(1, window + 1):
        ok = ordinary[:-d] & ordinary[d:] & (doc[:-d] == doc[d:])
        a, b = ids[:-d][ok], ids[d:][ok]
        keys += [a * vocab_size + b, b * vocab_size + a]  # both directions
    pair_keys = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    pairs, c_ab = np.unique(pair_keys, return_counts=True)
    a, b = pairs // vocab_size, pairs % vocab_size
    c_ab = c_ab.astype(np.float64)
    c_a = np.bincount(a, weights=c_ab, minlength=vocab_size)  # neighbour slots of each id
    total = c_ab.sum()
    relevance = np.full(vocab_size, np.nan)
    if total == 0:
        return relevance
    p_cond = c_ab / c_a[a]
    pmi = np.log(c_ab * total / (c_a[a] * c_a[b]))
    kl = np.bincount(a, weights=p_cond * pmi, minlength=vocab_size)
    distinct = np.bincount(a, minlength=vocab_size)
    with np.errstate(divide="ignore", invalid="ignore"):
        corrected = np.maximum(kl - (distinct - 1) / (2 * c_a), 0.0)
    occurrences = np.bincount(ids, minlength=vocab_size)[:vocab_size]
    known = (occurrences >= min_count) & (c_a > 0)
    relevance[known] = corrected[known]
    return relevance


def informative_weights(
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
        raise ValueError(f"unknown informative_by {by!r}; choose one of {INFORMATIVE_BY}")
    scored = ~np.isnan(raw) & (counts > 0)
    mean = float((raw[scored] * counts[scored]).sum() / max(counts[scored].sum(), 1e-12))
    return np.where(np.isnan(raw), mean if mean > 0 else 1.0, raw)
