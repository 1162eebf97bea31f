"""What a masking strategy reads from the training split besides the ids: the PMI unit
starts (``unit=pmi``), fixed per-id weights (``weighting=informative``), or the adaptive
table's starting point (``weighting=adaptive``).

One function builds them from a ``mask`` config, for a run (:class:`MLMDataModule`) and for
``dmx bench --masking`` alike, so a benchmark times exactly what training uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dmx.data.corpus import Corpus
from dmx.data.informative import informative_weights, token_counts
from dmx.data.pmi import PMISettings, load_or_build_units
from dmx.masking.adaptive import AdaptiveRates
from dmx.masking.weights import expected_rate, normalise

log = logging.getLogger(__name__)


@dataclass
class CorpusStatistics:
    units: np.ndarray | None = None  # the training stream's PMI unit starts
    weights: torch.Tensor | None = None  # informative: a fixed weight per token id
    adaptive: AdaptiveRates | None = None  # adaptive: per-id weights that follow the losses


def corpus_statistics(corpus: Corpus, mask: Any) -> CorpusStatistics:
    """What the strategy of ``mask`` (:class:`dmx.config.MaskConfig`) needs from the
    training split; nothing for plain token, whole-word and span masking."""
    stream, vocab = corpus.train.stream, corpus.vocab_size
    out = CorpusStatistics()
    if mask.unit == "pmi":
        out.units = load_or_build_units(
            corpus.folder,
            stream.ids,
            stream.starts,
            PMISettings.from_config(mask),
            corpus.tokenizer.decode,
        )
    if mask.weighting == "uniform":
        return out
    counts = token_counts(stream.ids, vocab)
    freq = torch.from_numpy(counts)
    if mask.weighting == "adaptive":
        out.adaptive = AdaptiveRates.from_config(mask, freq)
        return out
    raw = informative_weights(
        stream.ids,
        stream.offsets,
        vocab,
        mask.informative_by,
        mask.informative_window,
        counts=counts,
    )
    out.weights = normalise(torch.from_numpy(raw), freq, mask.weight_min, mask.weight_max)
    log.info(
        "informative masking (%s): per-id rates from %.3f to %.3f, expected rate %.4f",
        mask.informative_by,
        mask.prob * float(out.weights[freq > 0].min()),
        min(1.0, mask.prob * float(out.weights[freq > 0].max())),
        expected_rate(out.weights, freq, mask.prob),
    )
    return out
