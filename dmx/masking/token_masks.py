"""Token masking, keyed: which positions are selected, and what each becomes.

Two independent axes define a strategy:

* the *unit* that is selected: single tokens (BERT), whole words (every token of a word
  or none), spans of whole words (SpanBERT), or PMI units (PMI-Masking: collocated word
  n-grams masked whole, every other word alone; dmx.data.pmi finds them), counted by a
  coin per unit (``bernoulli``) or up to a fixed budget per sequence (``fixed``); single
  tokens may also be *weighted* per token id (dmx.masking.weights: fixed weights from
  corpus statistics or InforMask's rates, moving ones from the model's losses or AMLM's
  accuracy rule; AMLM's are normalised within each sequence);
* how often the mask is *redrawn*: ``copies=K`` fixed masks per sequence (key = epoch mod K,
  BERT's dupe_factor with no storage) or ``copies=None``, a fresh mask every epoch
  (key = epoch, RoBERTa's dynamic masking).

Of the selected positions, ``mask_token_frac`` become [MASK], ``random_token_frac`` a random
ordinary token, and the rest stay (80/10/10 in BERT); for spans the choice is made once per
span or PMI unit. The loss is taken on the selected positions only.

Every draw comes from :func:`dmx.masking.keyed.keyed_uniform`, so the mask of sample ``i``
is a pure function of (seed, key, i, its ids, word and unit starts, the rate, the weights).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from dmx.common.choices import MASK_COUNTS, MASK_UNITS, MASK_WEIGHTINGS
from dmx.common.fields import from_fields
from dmx.masking.keyed import keyed_uniform
from dmx.masking.select import (
    by_budget,
    by_budget_skipping,
    by_coin,
    by_spans,
    candidate_limit,
    fixed_budget,
    mean_geometric_length,
    run_first,
    word_first,
)

IGNORE_INDEX = -100  # the label of positions that carry no loss (torch's cross_entropy default)

# Separate streams, so that each decision about a token is an independent draw.
_SELECT, _CORRUPT, _RANDOM_TOKEN, _SPAN_ANCHOR, _SPAN_LENGTH, _BUDGET_ROUNDING = range(6)

# How a weighting reads in a strategy's label ("corpus-weighted dynamic").
WEIGHTING_LABELS = {
    "uniform": "",
    "corpus": "corpus-weighted ",
    "informask": "informask ",
    "loss": "loss-weighted ",
    "amlm": "amlm ",
}

# A key no training epoch ever uses: the fixed evaluation mask.
EVAL_KEY = -1


@dataclass(frozen=True)
class MaskedBatch:
    input_ids: torch.Tensor  # corrupted ids, what the model reads
    labels: torch.Tensor  # original ids at selected positions, IGNORE_INDEX elsewhere
    selected: torch.Tensor  # bool, the positions that carry loss
    to_mask: torch.Tensor  # bool, selected positions that became [MASK]
    to_random: torch.Tensor  # bool, selected positions that became a random token
    eligible: torch.Tensor  # bool, positions that could be selected (ordinary tokens)
    # bool, positions inside a unit of two or more words (PMI units); None for other units
    multiword: torch.Tensor | None = None


@dataclass(frozen=True)
class TokenMasker:
    """Masks a batch; holds only settings, never state.

    Special tokens must occupy ids ``[0, n_special)``: they are never selected, and random
    replacements are drawn from ``[n_special, vocab_size)``.
    """

    seed: int
    copies: int | None
    prob: float
    mask_token_frac: float
    random_token_frac: float
    mask_token_id: int
    n_special: int
    vocab_size: int
    unit: str = "token"
    count: str = "bernoulli"
    span_p: float = 0.2
    span_max: int = 10
    # uniform, or how per-id weights (passed with each batch) were made: for the label, and
    # amlm's weights are normalised within each row.
    weighting: str = "uniform"

    def __post_init__(self) -> None:
        for name, value, choices in (
            ("unit", self.unit, MASK_UNITS),
            ("count", self.count, MASK_COUNTS),
            ("weighting", self.weighting, MASK_WEIGHTINGS),
        ):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
        if self.weighting != "uniform" and self.unit != "token":
            raise ValueError(f"{self.weighting} weights select single tokens (unit=token)")

    @classmethod
    def from_config(
        cls, mask: Any, *, seed: int, vocab_size: int, mask_token_id: int, n_special: int
    ) -> TokenMasker:
        """The training masker a ``mask`` config (:class:`dmx.config.MaskConfig`) asks for:
        every setting the masker shares with it, by name."""
        return from_fields(
            cls,
            mask,
            seed=seed,
            vocab_size=vocab_size,
            mask_token_id=mask_token_id,
            n_special=n_special,
        )

    @classmethod
    def for_evaluation(
        cls, data: Any, *, vocab_size: int, mask_token_id: int, n_special: int
    ) -> TokenMasker:
        """The one fixed evaluation mask of a ``data`` config (:class:`dmx.config.DataConfig`):
        its own seed and rate, BERT's token unit, the same for every run and strategy."""
        return cls(
            seed=data.eval_mask_seed,
            copies=1,
            prob=data.eval_mask_prob,
            mask_token_frac=data.eval_mask_token_frac,
            random_token_frac=data.eval_random_token_frac,
            mask_token_id=mask_token_id,
            n_special=n_special,
            vocab_size=vocab_size,
        )

    @property
    def strategy(self) -> str:
        """The label runs, reports and W&B groups carry: derived from how units are chosen
        and keys drawn, so it cannot disagree with what the masker does."""
        timing = "dynamic" if self.copies is None else f"static(K={self.copies})"
        unit = "" if self.unit == "token" else f"{self.unit} "
        weighting = WEIGHTING_LABELS.get(self.weighting, self.weighting)
        return f"{unit}{weighting}{timing}"

    def key(self, epoch: int) -> int:
        """The mask key of an epoch: the whole static-to-dynamic continuum in one line."""
        return epoch if self.copies is None else epoch % self.copies

    def distinct_masks(self, epochs: int) -> int:
        """How many different masks a sequence seen in ``epochs`` epochs has been given."""
        keys = {self.key(e) for e in range(epochs)} if self.copies is not None else range(epochs)
        return len(keys)

    @property
    def mean_span_words(self) -> float:
        return mean_geometric_length(self.span_p, self.span_max)

    def __call__(
        self,
        input_ids: torch.Tensor,
        index: torch.Tensor,
        key: int,
        *,
        rate: float | None = None,
        word_starts: torch.Tensor | None = None,
        unit_starts: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> MaskedBatch:
        """Mask ``input_ids`` (batch, length) of the samples ``index`` (batch,) under ``key``,
        at ``rate`` (default ``prob``). ``word_starts`` (1 where a word begins) is needed by
        whole-word and span masking; without it every token is a word of its own.
        ``unit_starts`` (1 where a PMI unit begins) is read by PMI masking; without it every
        word is a unit. ``weights``
        (vocab,), a token id's relative selection weight (mean 1 over the training tokens):
        token ``v`` is selected with probability ``rate x weights[v]``, capped at 1."""
        rate = self.prob if rate is None else rate
        length = input_ids.shape[1]
        eligible = input_ids >= self.n_special
        u_select = keyed_uniform(self.seed, _SELECT, key, index, length)
        starts = torch.ones_like(eligible) if word_starts is None else word_starts.bool()
        multiword = None
        if self.unit == "span":
            selected = self._spans(input_ids, index, key, rate, starts, eligible, u_select)
            decide_at = run_first(selected)  # one corruption choice per (merged) span
        elif self.unit == "pmi":
            # Without a vocabulary's unit starts every word is a unit of its own.
            unit_starts = starts if unit_starts is None else unit_starts.bool()
            first = word_first(unit_starts)
            u_unit = u_select.gather(1, first)
            if self.count == "bernoulli":
                selected = by_coin(u_unit, eligible, rate)
            else:
                # Rounded up or down at random (keyed), so the expected rate is exactly
                # ``rate``: round() alone gives 9 of 63 tokens (14.3%) at 15%.
                scaled = eligible.sum(dim=1).to(torch.float64) * rate
                u_round = keyed_uniform(self.seed, _BUDGET_ROUNDING, key, index, 1)[:, 0]
                budget = (torch.floor(scaled) + (u_round < scaled - torch.floor(scaled))).long()
                selected = by_budget_skipping(u_unit, first, eligible, budget)
            # A unit of two or more words holds a word start after its first position.
            later_words = (starts & ~unit_starts).to(torch.int64)
            words_after = torch.zeros_like(later_words).scatter_add_(1, first, later_words)
            multiword = words_after.gather(1, first) > 0
            decide_at = first  # one corruption choice per unit, as PMI-Masking
        else:
            first = word_first(starts) if self.unit == "whole_word" else None
            u_unit = u_select if first is None else u_select.gather(1, first)
            if weights is not None:
                if first is not None:
                    raise ValueError("per-token weights select single tokens (unit=token)")
                selected = self._weighted(u_unit, input_ids, eligible, rate, weights)
            else:
                if first is None:
                    first = torch.arange(length, device=input_ids.device).expand_as(input_ids)
                selected = self._units(u_unit, first, eligible, rate)
            decide_at = None  # one corruption choice per token, as BERT
        masked = self._corrupt(input_ids, index, key, selected, eligible, decide_at)
        return masked if multiword is None else replace(masked, multiword=multiword)

    def _units(
        self, u_unit: torch.Tensor, first: torch.Tensor, eligible: torch.Tensor, rate: float
    ) -> torch.Tensor:
        """Tokens, words or PMI units (each named by its ``first`` position, sharing its
        uniform ``u_unit``), by a coin each or up to the row's fixed budget."""
        if self.count == "bernoulli":
            return by_coin(u_unit, eligible, rate)
        return by_budget(u_unit, first, eligible, fixed_budget(eligible, rate))

    def _weighted(
        self,
        u: torch.Tensor,
        input_ids: torch.Tensor,
        eligible: torch.Tensor,
        rate: float,
        weights: torch.Tensor,
    ) -> torch.Tensor:
        """Single tokens, token ``v`` at ``rate x weights[v]``: a coin each, or (``fixed``)
        a weighted draw without replacement up to the budget (Efraimidis and Spirakis:
        ordering by ``1 - (1 - u)^(1 / w)`` takes each next token with probability
        proportional to its weight among those left). AMLM's weights are first rescaled
        to a mean of 1 over each row's ordinary tokens, as its paper does per sequence."""
        w = weights.to(u.device)[input_ids]
        if self.weighting == "amlm":
            w = torch.where(eligible, w, 0.0)
            n = eligible.sum(dim=1, keepdim=True)
            w = w * n / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
        if self.count == "bernoulli":
            return (u < (rate * w).clamp(max=1.0)) & eligible
        order_key = -torch.expm1(torch.log1p(-u) / w.clamp_min(1e-12))
        positions = torch.arange(u.shape[1], device=u.device).expand_as(input_ids)
        return by_budget(order_key, positions, eligible, fixed_budget(eligible, rate))

    def _spans(
        self,
        input_ids: torch.Tensor,
        index: torch.Tensor,
        key: int,
        rate: float,
        starts: torch.Tensor,
        eligible: torch.Tensor,
        u_select: torch.Tensor,
    ) -> torch.Tensor:
        if self.count == "fixed":
            budget = fixed_budget(eligible, rate, rounding="ceil")  # SpanBERT's ceil
        else:  # a budget that is itself a sum of keyed coins: Binomial(n, rate) per row
            budget = by_coin(u_select, eligible, rate).sum(dim=1)
        n_candidates = int(candidate_limit(budget).max().item()) if budget.numel() else 0
        u_anchor = keyed_uniform(self.seed, _SPAN_ANCHOR, key, index, n_candidates)
        u_length = keyed_uniform(self.seed, _SPAN_LENGTH, key, index, n_candidates)
        return by_spans(starts, eligible, budget, u_anchor, u_length, self.span_p, self.span_max)

    def _corrupt(
        self,
        input_ids: torch.Tensor,
        index: torch.Tensor,
        key: int,
        selected: torch.Tensor,
        eligible: torch.Tensor,
        decide_at: torch.Tensor | None,
    ) -> MaskedBatch:
        length = input_ids.shape[1]
        u_corrupt = keyed_uniform(self.seed, _CORRUPT, key, index, length)
        if decide_at is not None:
            u_corrupt = u_corrupt.gather(1, decide_at)
        to_mask = selected & (u_corrupt < self.mask_token_frac)
        to_random = (
            selected
            & (u_corrupt >= self.mask_token_frac)
            & (u_corrupt < self.mask_token_frac + self.random_token_frac)
        )
        u_token = keyed_uniform(self.seed, _RANDOM_TOKEN, key, index, length)
        n_ordinary = self.vocab_size - self.n_special
        random_ids = self.n_special + (u_token * n_ordinary).to(torch.int64).clamp_max(
            n_ordinary - 1
        )
        corrupted = torch.where(to_mask, torch.full_like(input_ids, self.mask_token_id), input_ids)
        corrupted = torch.where(to_random, random_ids.to(input_ids.dtype), corrupted)
        labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        return MaskedBatch(
            input_ids=corrupted,
            labels=labels,
            selected=selected,
            to_mask=to_mask,
            to_random=to_random,
            eligible=eligible,
        )
