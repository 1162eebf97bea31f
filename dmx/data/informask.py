"""InforMask's per-token-id masking rates (Sadeq, Xu and McAuley, EMNLP 2022).

InforMask masks the informative tokens of a sentence more often. The paper does it in three
steps; dmx follows them, once per corpus, so training only looks a rate up:

1. *Informative relevance*: an occurrence's summed PMI with the tokens around it (the
   paper sums over the other words of its sentence);
2. *sample-and-score*: draw several random masks of the masking budget for a text, score
   each by the summed relevance of the tokens it masks, keep the best;
3. *token-specific rates*: run 2 over the corpus once and give each token id the share of
   its occurrences that were masked; pretraining then draws an independent coin per token
   at its id's rate and turns every selected token into [MASK]. This is all the released
   code does at training time (``pretrain/dataset.py`` with ``vocab/id_mask_prob.json``);
   the rates' computation was not released.

Where dmx departs, and why:

* Relevance sums PMI over the tokens within ``window`` positions in the same document, not
  over a sentence: dmx has no sentence boundaries, and its units are BPE tokens, not words.
  PMI comes from the same window's pair counts (dmx.data.corpus_weights).
* The masks are scored per training sequence (the rows dmx trains on), with a budget of
  ``round(prob x ordinary tokens)``; the draws come from a fixed seed, so a corpus always
  gets the same table, like the paper's one-off preprocessing.
* The rates are counted on at most the first ``MAX_TOKENS`` tokens; ids that never occur
  there get rate 0, as ids missing from the released table do.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dmx.common.progress import no_steps
from dmx.data.corpus_weights import MAX_TOKENS, document_of, neighbour_pairs
from dmx.data.tokenizer import N_SPECIAL

# The rates are a property of the corpus, not of a run: one fixed seed for the draws.
SEED = 0
# Sequences scored per batch of sample-and-score (bounds the (rows, samples, length) draws).
ROWS_PER_BATCH = 512


def relevance(ids: np.ndarray, offsets: np.ndarray, vocab_size: int, window: int) -> np.ndarray:
    """Each position's informative relevance: its summed PMI with the ordinary tokens within
    ``window`` of it in its document (0 for special tokens)."""
    ids = np.asarray(ids, dtype=np.int64)
    doc = document_of(offsets, len(ids))
    counted = neighbour_pairs(ids, doc, vocab_size, window)
    out = np.zeros(len(ids))
    ordinary = ids >= N_SPECIAL
    for d in range(1, window + 1):
        ok = np.flatnonzero(ordinary[:-d] & ordinary[d:] & (doc[:-d] == doc[d:]))
        pmi = counted.pmi(ids[ok], ids[ok + d])
        # Each position appears once per side at each distance: bincount adds them up.
        out += np.bincount(ok, weights=pmi, minlength=len(ids))
        out += np.bincount(ok + d, weights=pmi, minlength=len(ids))
    return out


def sample_and_score(
    ids: np.ndarray, scores: np.ndarray, prob: float, samples: int, rng: np.random.Generator
) -> np.ndarray:
    """For each row of ``ids`` (rows, length), the best of ``samples`` random masks of
    ``round(prob x ordinary tokens)`` tokens by the summed ``scores`` of what they mask."""
    ordinary = ids >= N_SPECIAL
    budget = np.rint(prob * ordinary.sum(axis=1)).astype(np.int64)
    u = rng.random((ids.shape[0], samples, ids.shape[1]))
    u[~np.broadcast_to(ordinary[:, None, :], u.shape)] = 2.0  # never among the smallest
    rank = np.argsort(np.argsort(u, axis=2, kind="stable"), axis=2, kind="stable")
    candidates = rank < budget[:, None, None]
    total = (candidates * scores[:, None, :]).sum(axis=2)
    best = np.argmax(total, axis=1)  # the first of equal scores
    return candidates[np.arange(ids.shape[0]), best]


def informask_rates(
    ids: np.ndarray,
    offsets: np.ndarray,
    spans: list[tuple[int, int]],
    vocab_size: int,
    prob: float,
    window: int = 5,
    samples: int = 10,
    step: Callable[..., None] = no_steps,
) -> np.ndarray:
    """Each id's masking rate: the share of its occurrences in the training rows ``spans``
    (start, end in the stream) that sample-and-score masked. ``step(name, total=)`` is
    told each stage as it begins (a progress display)."""
    spans = [(a, b) for a, b in spans if b <= MAX_TOKENS]
    step("neighbour PMI", total=1 + -(-len(spans) // ROWS_PER_BATCH))
    end = max((b for _, b in spans), default=0)
    stream = np.asarray(ids[:end], dtype=np.int64)
    scores = relevance(stream, offsets, vocab_size, window)
    masked = np.zeros(vocab_size)
    seen = np.zeros(vocab_size)
    rng = np.random.default_rng(SEED)
    for first in range(0, len(spans), ROWS_PER_BATCH):
        batch = spans[first : first + ROWS_PER_BATCH]
        step(f"scoring rows {first + 1}-{first + len(batch)}")
        length = max(b - a for a, b in batch)
        rows = np.zeros((len(batch), length), dtype=np.int64)  # padded with [PAD], id 0
        row_scores = np.zeros((len(batch), length))
        for r, (a, b) in enumerate(batch):
            rows[r, : b - a], row_scores[r, : b - a] = stream[a:b], scores[a:b]
        chosen = sample_and_score(rows, row_scores, prob, samples, rng)
        ordinary = rows >= N_SPECIAL
        seen += np.bincount(rows[ordinary], minlength=vocab_size)[:vocab_size]
        masked += np.bincount(rows[chosen], minlength=vocab_size)[:vocab_size]
    return np.divide(masked, seen, out=np.zeros(vocab_size), where=seen > 0)
