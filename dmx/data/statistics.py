"""What a masking strategy reads from the training split besides the ids: the PMI unit
starts (``unit=pmi``), fixed per-id weights (``weighting=corpus`` or ``informask``), or the
starting point of a table that moves during training (``weighting=loss`` or ``amlm``).

One function builds them from a ``mask`` config, for a run (:class:`MLMDataModule`) and for
``dmx bench --masking`` alike, so a benchmark times exactly what training uses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dmx.common.progress import Stages
from dmx.data.corpus import Corpus
from dmx.data.corpus_weights import MAX_TOKENS, corpus_weights, token_counts
from dmx.data.informask import informask_rates
from dmx.data.pmi import PMISettings, load_or_build_units
from dmx.masking.adaptive import AdaptiveRates
from dmx.masking.weights import expected_rate, normalise

log = logging.getLogger(__name__)


@dataclass
class CorpusStatistics:
    units: np.ndarray | None = None  # the training stream's PMI unit starts
    weights: torch.Tensor | None = None  # corpus, informask: a fixed weight per token id
    adaptive: AdaptiveRates | None = None  # loss, amlm: per-id weights that move in training


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
    counts = token_counts(stream.ids, vocab)  # one bincount, quick
    freq = torch.from_numpy(counts)
    if mask.weighting in ("loss", "amlm"):
        out.adaptive = AdaptiveRates.from_config(mask, freq)
        return out
    # InforMask tells its number of steps (its batches of rows) once it has the rows.
    with Stages(f"{mask.weighting} weights", total=1) as stages:
        if mask.weighting == "informask":
            spans = _rows_up_to(corpus, MAX_TOKENS)
            rates = informask_rates(
                stream.ids,
                stream.offsets,
                spans,
                vocab,
                mask.prob,
                mask.corpus_window,
                mask.informask_samples,
                step=stages.step,
            )
            # The masker selects token v at rate x weight[v]: at mask.prob, InforMask's rate.
            out.weights = torch.from_numpy(rates / mask.prob).to(torch.float32)
        else:
            stages.step(mask.corpus_weight_by.replace("_", " "))
            raw = corpus_weights(
                stream.ids,
                stream.offsets,
                vocab,
                mask.corpus_weight_by,
                mask.corpus_window,
                counts=counts,
            )
            out.weights = normalise(torch.from_numpy(raw), freq, mask.weight_min, mask.weight_max)
    seen = freq > 0
    log.info(
        "%s masking: per-id rates from %.3f to %.3f, expected rate %.4f",
        mask.weighting,
        mask.prob * float(out.weights[seen].min()),
        min(1.0, mask.prob * float(out.weights[seen].max())),
        expected_rate(out.weights, freq, mask.prob),
    )
    return out


def _rows_up_to(corpus: Corpus, tokens: int) -> list[tuple[int, int]]:
    """The training rows' spans in the stream, as far as its first ``tokens`` tokens."""
    spans = []
    for i in range(len(corpus.train)):
        span = corpus.train.span(i)
        if span[1] > tokens:
            break
        spans.append(span)
    return spans
