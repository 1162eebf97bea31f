"""How tokens are masked for pretraining: the unit, the count, the rate and its schedule, the
weighting, and how often a sequence's mask is redrawn."""

from __future__ import annotations

from dataclasses import dataclass

from dmx.common.choices import (
    CORPUS_WEIGHT_BY,
    MASK_COUNTS,
    MASK_SCHEDULES,
    MASK_UNITS,
    MASK_WEIGHTINGS,
    RENAMED_WEIGHTINGS,
)
from dmx.config.checks import check, check_choice, check_split


@dataclass
class MaskConfig:
    """Two independent axes: what is selected (``unit``, ``count``, the rate) and how often it
    is redrawn (``copies``). There is no name to set: the strategy's label is derived from
    these (dmx.masking.TokenMasker.strategy), so ``mask=static mask.copies=null`` is labelled
    dynamic, because it is."""

    # token (BERT), whole_word (a word's tokens all or none), span (SpanBERT: spans of words),
    # pmi (PMI-Masking: collocated word n-grams masked whole, other words alone).
    unit: str = "token"
    # How many distinct masks each sequence ever gets: 1 is pure static masking, 10 is BERT's
    # dupe_factor, null is dynamic (a fresh mask every epoch, as RoBERTa).
    copies: int | None = 1
    prob: float = 0.15
    # bernoulli: a coin per unit (HuggingFace's collator); fixed: exactly round(prob x tokens)
    # per sequence (BERT's preprocessing; spans round up, as SpanBERT).
    count: str = "bernoulli"
    mask_token_frac: float = 0.8
    random_token_frac: float = 0.1
    # The rate over training: constant (prob), or linear, cosine or step from schedule_start
    # to schedule_end (Ankner et al.: linear 0.30 -> 0.15).
    schedule: str = "constant"
    schedule_start: float = 0.30
    schedule_end: float = 0.15
    # Span lengths in words: geometric(span_p) truncated to [1, span_max] (SpanBERT: 0.2, 10).
    span_p: float = 0.2
    span_max: int = 10
    # PMI units (unit=pmi), from the training split: word n-grams of 2 to pmi_ngram_max words
    # seen at least pmi_min_count times, the top pmi_vocab_size by AI21's PMI score
    # (dmx.data.pmi); cached beside the corpus' token streams.
    pmi_ngram_max: int = 5
    pmi_min_count: int = 10
    pmi_vocab_size: int = 1000
    # Which tokens a rate prefers (single tokens only; dmx.masking.weights):
    # - uniform: every token alike;
    # - corpus: a fixed weight per token id from corpus statistics (corpus_weight_by), kept in
    #   [weight_min, weight_max] and normalised so the expected rate stays the rate;
    # - informask: InforMask's per-id rates (Sadeq et al., 2022), from sample-and-score masking
    #   over the training split (dmx.data.informask), used as they are;
    # - loss: a weight per id that follows the model's losses (dmx.masking.adaptive);
    # - amlm: AMLM's rule (Edman and Fraser, 2025): per-id weights from the model's accuracy,
    #   normalised within each sequence.
    # Token v is selected with probability rate x weight[v].
    weighting: str = "uniform"
    # corpus: neighbour_pmi (expected PMI with the tokens within corpus_window) or
    # inverse_frequency (1 / sqrt(count)); see dmx.data.corpus_weights for why PMI is the
    # default. informask scores tokens by PMI with the tokens within corpus_window too.
    corpus_weight_by: str = "neighbour_pmi"
    corpus_window: int = 5
    # informask: random masks drawn per sequence, the best by total relevance kept.
    informask_samples: int = 10
    # corpus and loss: weights stay in [weight_min, weight_max]; keep weight_max x prob <= 1
    # for an exact rate.
    weight_min: float = 0.1
    weight_max: float = 4.0
    # loss and amlm: the table moves every adapt_every steps, adapt_smoothing of the way to
    # its target. loss: the target is (the id's mean loss / the mean loss) ^ adapt_power.
    # amlm: the target is prob x (1 - the id's accuracy), floored at amlm_floor.
    adapt_every: int = 20
    adapt_smoothing: float = 0.3
    adapt_power: float = 1.0
    amlm_floor: float = 0.005

    def __post_init__(self) -> None:
        check_choice("mask.unit", self.unit, MASK_UNITS)
        renamed = RENAMED_WEIGHTINGS.get(self.weighting)
        check(
            renamed is None,
            f"mask.weighting={self.weighting} is now mask.weighting={renamed} "
            f"(mask={renamed}_weighted): the new name says what it does",
        )
        check_choice("mask.weighting", self.weighting, MASK_WEIGHTINGS)
        check_choice("mask.corpus_weight_by", self.corpus_weight_by, CORPUS_WEIGHT_BY)
        check(
            self.weighting == "uniform" or self.unit == "token",
            f"mask.weighting={self.weighting} weighs single tokens; use it with mask.unit=token "
            f"(got mask.unit={self.unit})",
        )
        check(
            2 <= self.pmi_ngram_max <= 5,
            f"mask.pmi_ngram_max must be 2 to 5, got {self.pmi_ngram_max}",
        )
        check(self.pmi_min_count >= 1, f"mask.pmi_min_count must be >= 1, got {self.pmi_min_count}")
        check(
            self.pmi_vocab_size >= 1, f"mask.pmi_vocab_size must be >= 1, got {self.pmi_vocab_size}"
        )
        check(self.corpus_window >= 1, f"mask.corpus_window must be >= 1, got {self.corpus_window}")
        check(
            self.informask_samples >= 1,
            f"mask.informask_samples must be >= 1, got {self.informask_samples}",
        )
        check(
            0.0 <= self.weight_min <= 1.0 <= self.weight_max,
            f"mask.weight_min <= 1 <= mask.weight_max must hold, got {self.weight_min} and "
            f"{self.weight_max}",
        )
        check(self.adapt_every >= 1, f"mask.adapt_every must be >= 1, got {self.adapt_every}")
        check(
            0.0 < self.adapt_smoothing <= 1.0,
            f"mask.adapt_smoothing must be in (0, 1], got {self.adapt_smoothing}",
        )
        check(self.adapt_power >= 0.0, f"mask.adapt_power must be >= 0, got {self.adapt_power}")
        check_choice("mask.count", self.count, MASK_COUNTS)
        check_choice("mask.schedule", self.schedule, MASK_SCHEDULES)
        check(
            self.copies is None or self.copies >= 1,
            f"mask.copies must be >= 1 (or null for dynamic), got {self.copies}",
        )
        for key in ("prob", "schedule_start", "schedule_end"):
            value = getattr(self, key)
            check(0.0 < value < 1.0, f"mask.{key} must be in (0, 1), got {value}")
        check(
            0.0 <= self.amlm_floor < self.prob,
            f"mask.amlm_floor must be in [0, mask.prob), got {self.amlm_floor}",
        )
        check(0.0 < self.span_p <= 1.0, f"mask.span_p must be in (0, 1], got {self.span_p}")
        check(self.span_max >= 1, f"mask.span_max must be >= 1, got {self.span_max}")
        check_split("mask.", self.mask_token_frac, self.random_token_frac)
