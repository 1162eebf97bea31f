"""Properties every token-masking strategy must keep, for each unit x count, static and dynamic.

A comparison between strategies is only meaningful if each one does what its name says: the
configured rate is the realised rate, spans and whole words are the units they claim to be,
a mask is a pure function of (seed, key, sample) and never of the batch, and the figures the
runs report (MaskStats) are the ones the masks produced. These tests hold every strategy to
that, with values and tolerances stated, not just "something was masked".
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmx.common.choices import MASK_COUNTS as COUNTS
from dmx.common.choices import MASK_UNITS as UNITS
from dmx.config import DataConfig, MaskConfig
from dmx.data.datamodule import MLMDataModule
from dmx.masking import IGNORE_INDEX, MaskedBatch, TokenMasker, rate_at
from dmx.masking.diagnostics import MaskStats
from dmx.masking.keyed import keyed_uniform
from dmx.masking.select import by_spans, geometric_lengths, mean_geometric_length

VOCAB, N_SPECIAL = 1000, 5
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(N_SPECIAL)
TOKENS_PER_WORD = 1.4
STRATEGIES = [(unit, count) for unit in UNITS for count in COUNTS]
RATES = (0.15, 0.3, 0.4)


def make_masker(
    unit: str = "token",
    count: str = "bernoulli",
    *,
    copies: int | None = 1,
    seed: int = 0,
    prob: float = 0.15,
    mask_token_frac: float = 0.8,
    random_token_frac: float = 0.1,
) -> TokenMasker:
    return TokenMasker(
        seed=seed,
        copies=copies,
        prob=prob,
        mask_token_frac=mask_token_frac,
        random_token_frac=random_token_frac,
        mask_token_id=MASK_ID,
        n_special=N_SPECIAL,
        vocab_size=VOCAB,
        unit=unit,
        count=count,
    )


def packed_like(n: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and word starts shaped like the packed corpus: [CLS] first, a few [SEP], a padded
    tail of random length (so rows differ in how many tokens are eligible), about 1.4 tokens
    per word, and every special token a word of its own, as ``pack`` guarantees."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(N_SPECIAL, VOCAB, (n, length), generator=g)
    starts = torch.rand(n, length, generator=g) < 1 / TOKENS_PER_WORD
    ids[torch.rand(n, length, generator=g) < 0.02] = SEP_ID
    ids[:, 0] = CLS_ID
    n_pad = torch.randint(0, length // 4, (n,), generator=g)
    ids[torch.arange(length)[None, :] >= (length - n_pad)[:, None]] = PAD_ID
    special = ids < N_SPECIAL
    after_special = torch.nn.functional.pad(special[:, :-1], (1, 0), value=True)
    return ids, starts | special | after_special


# One shared sample of 2,000 sequences of length 128, built once: every rate test reads it.
IDS, STARTS = packed_like(2_000, 128)
INDEX = torch.arange(IDS.shape[0])
SMALL_IDS, SMALL_STARTS = packed_like(48, 96, seed=1)


def run_starts(selected: torch.Tensor) -> torch.Tensor:
    """True at the first token of every maximal run of selected tokens."""
    before = torch.nn.functional.pad(selected[:, :-1], (1, 0), value=False)
    return selected & ~before


def run_ends(selected: torch.Tensor) -> torch.Tensor:
    """True at the last token of every maximal run of selected tokens."""
    after = torch.nn.functional.pad(selected[:, 1:], (0, 1), value=False)
    return selected & ~after


def word_ends(starts: torch.Tensor) -> torch.Tensor:
    """True at the last token of every word: the next token starts a word, or there is none."""
    return torch.nn.functional.pad(starts[:, 1:], (0, 1), value=True)


def word_lengths(starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token's word number (batch, length), and each word's length (batch, length)."""
    word_id = torch.cumsum(starts.to(torch.int64), dim=1) - 1
    lengths = torch.zeros_like(word_id).scatter_add_(1, word_id, torch.ones_like(word_id))
    return word_id, lengths


def mask_all(
    unit: str, count: str, rate: float, ids: torch.Tensor = IDS, starts: torch.Tensor = STARTS
) -> MaskedBatch:
    if ids is IDS and starts is STARTS:
        return mask_sample(unit, count, rate)
    return make_masker(unit, count)(
        ids, torch.arange(ids.shape[0]), key=0, rate=rate, word_starts=starts
    )


@functools.cache
def mask_sample(unit: str, count: str, rate: float) -> MaskedBatch:
    """The shared sample masked once per setting (several tests read the same masks; none
    modifies them)."""
    return make_masker(unit, count)(IDS, INDEX, key=0, rate=rate, word_starts=STARTS)


@functools.cache
def large_sample() -> tuple[torch.Tensor, torch.Tensor]:
    """4,000 rows, for the statistics of spans, whose corruption is drawn per span."""
    return packed_like(4_000, 128, seed=5)


# ---------------------------------------------------------------------------------------------
# Realised rate = configured rate
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_token_bernoulli_rate_is_within_half_a_point(rate: float) -> None:
    """A coin per token: over ~220k eligible tokens the sd of the rate is < 0.1 point."""
    out = mask_all("token", "bernoulli", rate)
    realised = out.selected.sum().item() / out.eligible.sum().item()
    assert realised == pytest.approx(rate, abs=0.005)


@pytest.mark.parametrize("rate", RATES)
def test_token_fixed_selects_exactly_round_p_n_in_every_row(rate: float) -> None:
    """BERT's preprocessing: every sequence has the same rate, round(p * eligible tokens)."""
    out = mask_all("token", "fixed", rate)
    budget = torch.round(out.eligible.sum(dim=1).double() * rate).long()
    assert torch.equal(out.selected.sum(dim=1), budget)


@pytest.mark.parametrize("rate", RATES)
def test_whole_word_bernoulli_rate_is_within_one_point(rate: float) -> None:
    """A coin per word; words of ~1.4 tokens widen the spread, hence one point."""
    out = mask_all("whole_word", "bernoulli", rate)
    realised = out.selected.sum().item() / out.eligible.sum().item()
    assert realised == pytest.approx(rate, abs=0.01)


@pytest.mark.parametrize("rate", RATES)
def test_whole_word_fixed_falls_short_of_round_p_n_by_less_than_the_longest_word(
    rate: float,
) -> None:
    """Whole words are taken until the next one does not fit: never over the budget, and
    short of it by less than that word, so by less than the row's longest word."""
    out = mask_all("whole_word", "fixed", rate)
    budget = torch.round(out.eligible.sum(dim=1).double() * rate).long()
    _, lengths = word_lengths(STARTS)
    longest = lengths.max(dim=1).values
    shortfall = budget - out.selected.sum(dim=1)
    assert shortfall.min().item() >= 0
    assert torch.all(shortfall < longest)
    # The shortfall is real (words do not always fit) but small: well under a word on average.
    assert shortfall.float().mean().item() < TOKENS_PER_WORD


@pytest.mark.slow
@pytest.mark.parametrize("rate", RATES)
def test_span_fixed_selects_exactly_ceil_p_n_in_every_row(rate: float) -> None:
    """SpanBERT rounds the budget up, and the last span is cut to meet it exactly."""
    out = mask_all("span", "fixed", rate)
    n = out.eligible.sum(dim=1)
    budget = torch.tensor([math.ceil(round(k * rate, 9)) for k in n.tolist()])
    assert torch.equal(out.selected.sum(dim=1), budget)


@pytest.mark.slow
@pytest.mark.parametrize("rate", RATES)
def test_span_bernoulli_rate_is_within_one_point_on_average(rate: float) -> None:
    """A Binomial(n, p) budget per row, filled with spans: the mean rate is p."""
    out = mask_all("span", "bernoulli", rate)
    realised = out.selected.sum().item() / out.eligible.sum().item()
    assert realised == pytest.approx(rate, abs=0.01)
    # Rows vary as a Binomial(n, p) / n does (it is not a fixed count in disguise): the sd
    # across rows is sqrt(mean p(1-p)/n), estimated from 2,000 rows to within a few percent.
    n = out.eligible.sum(dim=1).double()
    per_row = out.selected.sum(dim=1).double() / n
    expected_sd = (rate * (1 - rate) / n).mean().sqrt().item()
    assert per_row.std().item() == pytest.approx(expected_sd, rel=0.1)


# ---------------------------------------------------------------------------------------------
# Rate schedules and nesting
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("constant", (0.15, 0.15, 0.15)),
        ("linear", (0.30, 0.225, 0.15)),
        ("cosine", (0.30, 0.225, 0.15)),
        ("step", (0.30, 0.15, 0.15)),
    ],
)
def test_rate_at_start_middle_and_end(schedule: str, expected: tuple[float, ...]) -> None:
    """Ankner et al.'s 0.30 -> 0.15 in each shape; ``prob`` only for constant."""
    got = tuple(rate_at(schedule, 0.15, 0.30, 0.15, t) for t in (0.0, 0.5, 1.0))
    assert got == pytest.approx(expected, abs=1e-12)


def test_rate_schedules_between_the_marks() -> None:
    """Linear is a straight line, cosine lags it early (stays high longer), step jumps at
    the halfway point, and progress outside [0, 1] is clamped."""
    assert rate_at("linear", 0.15, 0.30, 0.15, 0.25) == pytest.approx(0.2625)
    cosine = 0.15 + 0.15 * 0.5 * (1 + math.cos(math.pi * 0.25))
    assert rate_at("cosine", 0.15, 0.30, 0.15, 0.25) == pytest.approx(cosine)
    assert cosine > 0.2625
    assert rate_at("step", 0.15, 0.30, 0.15, 0.4999) == 0.30
    assert rate_at("linear", 0.15, 0.30, 0.15, -1.0) == 0.30
    assert rate_at("linear", 0.15, 0.30, 0.15, 2.0) == 0.15
    with pytest.raises(ValueError, match="unknown schedule"):
        rate_at("exponential", 0.15, 0.30, 0.15, 0.5)


# PMI units under a fixed budget are the one exception, on purpose: a unit too big for what
# is left is skipped and smaller ones after it are taken (AI21's collator), so a bigger
# budget can take that unit instead of the smaller ones (tests/test_adaptive.py).
NESTING = [s for s in STRATEGIES if s != ("pmi", "fixed")]


@settings(max_examples=40, deadline=None)
@given(
    strategy=st.sampled_from(NESTING),
    rates=st.tuples(st.floats(0.01, 0.6), st.floats(0.01, 0.6))
    .map(sorted)
    .filter(lambda r: r[0] < r[1]),
    key=st.integers(0, 10**6),
)
def test_selection_nests_as_the_rate_rises(
    strategy: tuple[str, str], rates: list[float], key: int
) -> None:
    """A schedule moves one threshold over the same draws: what is selected at rate r stays
    selected at every higher rate (same key, same ids), so a decreasing schedule only ever
    unmasks tokens and a static mask stays static."""
    unit, count = strategy
    low, high = rates
    m = make_masker(unit, count)
    index = torch.arange(SMALL_IDS.shape[0])
    at_low = m(SMALL_IDS, index, key, rate=low, word_starts=SMALL_STARTS).selected
    at_high = m(SMALL_IDS, index, key, rate=high, word_starts=SMALL_STARTS).selected
    assert not (at_low & ~at_high).any()


# ---------------------------------------------------------------------------------------------
# Span lengths, span boundaries, and the corruption choice per span
# ---------------------------------------------------------------------------------------------


def test_spanbert_mean_span_length_is_3_8_words() -> None:
    """geometric(0.2) truncated to [1, 10] and renormalised has mean 3.797 (SpanBERT's 3.8);
    inverting its distribution on 100k keyed uniforms reproduces the mean and every length's
    probability."""
    p, max_len = 0.2, 10
    weights = [p * (1 - p) ** k for k in range(max_len)]
    pmf = torch.tensor(weights, dtype=torch.float64) / sum(weights)
    assert mean_geometric_length(p, max_len) == pytest.approx(3.79710, abs=1e-5)
    assert make_masker("span").mean_span_words == mean_geometric_length(p, max_len)

    u = keyed_uniform(0, 0, 0, torch.arange(100), 1_000).flatten()
    lengths = geometric_lengths(u, p, max_len)
    assert lengths.min().item() == 1 and lengths.max().item() == max_len
    assert lengths.double().mean().item() == pytest.approx(3.797, abs=0.05)
    share = torch.bincount(lengths, minlength=max_len + 1)[1:].double() / lengths.numel()
    assert torch.allclose(share, pmf, atol=0.005)
    # The extremes of [0, 1) land on the extremes of [1, max_len].
    edges = geometric_lengths(torch.tensor([0.0, 1.0 - 2**-24]), p, max_len)
    assert edges.tolist() == [1, max_len]


@pytest.mark.slow
@pytest.mark.parametrize("count", COUNTS)
def test_masked_spans_average_3_8_words_when_every_token_is_a_word(count: str) -> None:
    """Maximal selected runs, measured on the masker's output, average SpanBERT's 3.8.

    Two effects bias the run length: the last span of a row is cut at the budget (shorter
    runs) and spans that touch merge (longer runs). At 5% of 2,048-token rows (~27 spans a
    row) they nearly cancel: over 20 seeds the mean is 3.78 with an sd of 0.035 between
    seeds, so +-0.12 (3.5 sd) around 3.797 holds for any seed, while lengths drawn without
    the truncation at 10 (mean 5) or a fixed length would fall far outside.
    """
    n, length = 200, 2_048
    ids = torch.randint(N_SPECIAL, VOCAB, (n, length), generator=torch.Generator().manual_seed(3))
    starts = torch.ones(n, length, dtype=torch.bool)
    out = mask_all("span", count, 0.05, ids, starts)
    mean_run = out.selected.sum().item() / run_starts(out.selected).sum().item()
    assert mean_run == pytest.approx(mean_geometric_length(0.2, 10), abs=0.12)


@pytest.mark.slow
def test_masked_spans_are_counted_in_words_not_tokens() -> None:
    """With ~1.4 tokens per word a span still covers ~3.8 *words*, so more tokens.

    Words per run: the budget is in tokens, so the cut of each row's last span removes more
    words than with one-token words; over 20 seeds the mean is 3.73 (sd 0.04), inside
    +-0.2 of 3.797. Tokens per run: a span starts at the word under a uniformly drawn
    token, which is length-biased (E[len^2] / E[len] = 1.8 tokens for these geometric
    words), and its other words average 1.4 tokens: tokens = 1.4 * words + 0.4 (over 20
    seeds off by -0.04, sd 0.025, so +-0.15).
    """
    n, length = 200, 2_048
    g = torch.Generator().manual_seed(4)
    ids = torch.randint(N_SPECIAL, VOCAB, (n, length), generator=g)
    starts = torch.rand(n, length, generator=g) < 1 / TOKENS_PER_WORD
    starts[:, 0] = True
    out = mask_all("span", "fixed", 0.05, ids, starts)
    runs = run_starts(out.selected).sum().item()
    words_per_run = (out.selected & starts).sum().item() / runs
    tokens_per_run = out.selected.sum().item() / runs
    assert words_per_run == pytest.approx(3.797, abs=0.2)
    assert tokens_per_run == pytest.approx(1.4 * words_per_run + 0.4, abs=0.15)


@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("rate", RATES)
def test_spans_start_at_word_starts_and_only_the_cut_span_ends_mid_word(
    count: str, rate: float
) -> None:
    """Span anchors snap back to their word's start and spans cover whole words; only the
    last span of a row, cut at the budget, may stop inside a word."""
    out = mask_all("span", count, rate)
    starts = run_starts(out.selected)
    assert not (starts & ~STARTS).any()
    mid_word_ends = (run_ends(out.selected) & ~word_ends(STARTS)).sum(dim=1)
    assert mid_word_ends.max().item() <= 1
    # The cut does happen (rows whose budget ends inside a word): the check is not vacuous.
    assert mid_word_ends.sum().item() > 100


@pytest.mark.parametrize("count", COUNTS)
def test_corruption_is_chosen_once_per_span(count: str) -> None:
    """SpanBERT's 80/10/10 is drawn once per span: within a run of selected tokens every
    token became [MASK], or none did (and likewise for random replacements)."""
    out = mask_all("span", count, 0.3, *large_sample())
    both = out.selected[:, 1:] & out.selected[:, :-1]  # neighbours inside one run
    for decision in (out.to_mask, out.to_random, out.input_ids == MASK_ID):
        assert torch.equal(decision[:, 1:][both], decision[:, :-1][both])
    # Runs of both kinds occur, and runs are long enough for the check to mean something.
    assert both.sum().item() > 50_000
    assert out.to_mask.any() and (out.selected & ~out.to_mask).any()


@pytest.mark.parametrize("unit", ["token", "whole_word"])
def test_token_and_whole_word_units_choose_the_corruption_per_token(unit: str) -> None:
    """BERT (whole-word masking included) draws 80/10/10 per token, so two neighbouring
    selected tokens agree on [MASK] with probability 0.8^2 + 0.2^2 = 0.68, not 1."""
    out = mask_all(unit, "bernoulli", 0.4)
    both = out.selected[:, 1:] & out.selected[:, :-1]
    agree = (out.to_mask[:, 1:] == out.to_mask[:, :-1])[both].float().mean().item()
    assert agree == pytest.approx(0.68, abs=0.02)


# ---------------------------------------------------------------------------------------------
# Units: whole words, special tokens
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", COUNTS)
@pytest.mark.parametrize("rate", RATES)
def test_whole_words_are_selected_all_or_nothing(count: str, rate: float) -> None:
    """Every word has all its tokens selected or none of them."""
    out = mask_all("whole_word", count, rate)
    word_id, lengths = word_lengths(STARTS)
    chosen = torch.zeros_like(word_id).scatter_add_(1, word_id, out.selected.to(torch.int64))
    assert torch.all((chosen == 0) | (chosen == lengths))
    # Multi-token words are selected, so the property is tested, not vacuous.
    assert ((chosen == lengths) & (lengths > 1)).sum().item() > 1_000


@pytest.mark.parametrize(("unit", "count"), STRATEGIES)
def test_special_and_padding_tokens_are_never_selected(unit: str, count: str) -> None:
    """Ids below N_SPECIAL ([PAD], [UNK], [CLS], [SEP], [MASK]) are never selected, never
    changed and carry no label, even at a 60% rate with a third of the ids special and a
    padded tail that word starts run into."""
    g = torch.Generator().manual_seed(6)
    ids = torch.randint(N_SPECIAL, VOCAB, (500, 64), generator=g)
    specials = torch.randint(0, N_SPECIAL, ids.shape, generator=g)
    ids = torch.where(torch.rand(ids.shape, generator=g) < 0.3, specials, ids)
    ids[:, 48:] = PAD_ID
    starts = torch.rand(ids.shape, generator=g) < 0.7
    starts[:, 0] = True
    out = mask_all(unit, count, 0.6, ids, starts)
    special = ids < N_SPECIAL
    assert torch.equal(out.eligible, ~special)
    assert not out.selected[special].any()
    assert torch.equal(out.input_ids[special], ids[special])
    assert torch.all(out.labels[special] == IGNORE_INDEX)
    assert out.selected.sum().item() > 0.3 * out.eligible.sum().item()


# ---------------------------------------------------------------------------------------------
# Keys: static and dynamic masking
# ---------------------------------------------------------------------------------------------


def selection(m: TokenMasker, key: int) -> torch.Tensor:
    index = torch.arange(SMALL_IDS.shape[0])
    out = m(SMALL_IDS, index, key, word_starts=SMALL_STARTS)
    return torch.stack([out.selected.long(), out.input_ids])


@pytest.mark.parametrize(("unit", "count"), STRATEGIES)
def test_same_key_same_mask_other_key_or_seed_another(unit: str, count: str) -> None:
    """The mask is a pure function of (seed, key, sample): recomputing it gives it again."""
    m = make_masker(unit, count)
    assert torch.equal(selection(m, 3), selection(m, 3))
    assert not torch.equal(selection(m, 3), selection(m, 4))
    assert not torch.equal(selection(m, 3), selection(make_masker(unit, count, seed=1), 3))


@pytest.mark.parametrize(("unit", "count"), STRATEGIES)
def test_static_masks_repeat_with_period_k_and_dynamic_never(unit: str, count: str) -> None:
    """copies=K: epochs e and e' share a mask exactly when e = e' mod K; dynamic: never."""
    static = make_masker(unit, count, copies=3)
    masks = [selection(static, static.key(e)) for e in range(7)]
    for a in range(7):
        for b in range(7):
            assert torch.equal(masks[a], masks[b]) == (a % 3 == b % 3), (a, b)
    dynamic = make_masker(unit, count, copies=None)
    masks = [selection(dynamic, dynamic.key(e)) for e in range(6)]
    for a in range(6):
        for b in range(a + 1, 6):
            assert not torch.equal(masks[a], masks[b]), (a, b)


@pytest.mark.parametrize("copies", [1, 2, 3, 10, None])
def test_distinct_masks_is_min_k_epochs_for_static_and_epochs_for_dynamic(
    copies: int | None,
) -> None:
    m = make_masker(copies=copies)
    for epochs in range(0, 13):
        expected = epochs if copies is None else min(copies, epochs)
        assert m.distinct_masks(epochs) == expected
        assert len({m.key(e) for e in range(epochs)}) == expected


# ---------------------------------------------------------------------------------------------
# A sample's mask does not depend on its batch
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "count"), STRATEGIES)
def test_mask_of_a_sample_ignores_order_batching_and_neighbours(unit: str, count: str) -> None:
    """Permuted, split into other batches, or beside other samples (with other budgets, so
    span masking draws a different number of candidates): the same mask for every sample."""
    ids, starts = packed_like(120, 64, seed=7)
    index = torch.arange(120) + 1_000  # sample indices need not start at 0
    m = make_masker(unit, count, copies=None, prob=0.3)

    def mask(rows: torch.Tensor) -> torch.Tensor:
        out = m(ids[rows], index[rows], 5, word_starts=starts[rows])
        return torch.stack([out.selected.long(), out.input_ids, out.labels], dim=1)

    whole = mask(torch.arange(120))
    perm = torch.randperm(120, generator=torch.Generator().manual_seed(8))
    assert torch.equal(mask(perm), whole[perm])
    for chunk in perm.split(13):
        assert torch.equal(mask(chunk), whole[chunk])
    for i in (0, 57, 119):  # alone in a batch
        assert torch.equal(mask(torch.tensor([i])), whole[i : i + 1])


@pytest.mark.parametrize("count", COUNTS)
def test_span_mask_of_a_row_of_mostly_special_tokens_ignores_its_neighbours(count: str) -> None:
    """Rows must never interact, even when a row has almost nothing to mask (its anchors
    keep landing on its two masked tokens), so it needs many candidates."""
    m = make_masker("span", count, copies=None, prob=0.5)
    sparse = torch.full((1, 64), UNK_ID)
    sparse[0, :2] = torch.tensor([10, 11])  # two ordinary tokens among 62 [UNK]
    dense = torch.arange(N_SPECIAL, N_SPECIAL + 64)[None]
    both = torch.cat([sparse, dense])
    for key in range(20):
        alone = m(sparse, torch.tensor([0]), key).selected
        beside = m(both, torch.tensor([0, 1]), key).selected[:1]
        assert torch.equal(alone, beside), key


def test_span_anchors_land_inside_the_text_never_on_special_tokens() -> None:
    """SpanBERT anchors spans on the text: a span anchored on [CLS] or [SEP] would cover
    one word fewer. One-word spans (p = 1), one candidate each: whatever its uniform, the
    anchor is an ordinary token, and the k-th of them for u in [k/n, (k+1)/n)."""
    ids = torch.tensor([[CLS_ID, 10, 11, SEP_ID, 12, SEP_ID, 0, 0]])  # 3 ordinary tokens
    eligible = ids >= N_SPECIAL
    starts = torch.ones_like(eligible)
    for u, position in [(0.0, 1), (0.34, 2), (0.67, 4), (0.999, 4)]:
        selected = by_spans(
            starts, eligible, torch.tensor([5]), torch.tensor([[u]]), torch.zeros(1, 1), 1.0, 1
        )
        assert selected.nonzero()[:, 1].tolist() == [position], u
    # Through the masker, at the budget in every row: no span ever covers nothing.
    m = make_masker("span", "fixed", copies=None, prob=0.3)
    row = torch.tensor([[CLS_ID, *range(N_SPECIAL, N_SPECIAL + 30), SEP_ID]])
    for key in range(50):
        assert int(m(row, torch.tensor([0]), key).selected.sum()) == 9  # ceil(0.3 x 30)


def masks_by_index(module: MLMDataModule, epoch: int) -> dict[int, torch.Tensor]:
    out = {}
    for batch in module.train_dataloader():
        masked = module.mask_batch(batch, epoch=epoch)
        for i, idx in enumerate(batch["index"].tolist()):
            out[idx] = torch.stack([masked["input_ids"][i], masked["labels"][i]])
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("unit", "count"), [("whole_word", "fixed"), ("span", "bernoulli")])
def test_datamodule_word_masks_are_identical_with_0_and_2_workers_and_any_batch_size(
    tmp_path: Path, unit: str, count: str
) -> None:
    """Through the real loader (word starts travel with the ids), whole-word and span masks
    come out the same whatever the workers and the batch size."""
    mask = MaskConfig(unit=unit, copies=None, count=count, prob=0.3)
    results = []
    for workers, batch_size in ((0, 8), (2, 8), (0, 5)):
        data = DataConfig(n_docs=40, val_docs=8, vocab_size=200, seq_len=32, batch_size=batch_size)
        module = MLMDataModule(data, mask, 0, num_workers=workers, cache_dir=tmp_path)
        module.setup()
        module.train_dataloader().sampler.set_epoch(2)
        results.append(masks_by_index(module, epoch=2))
    reference = results[0]
    selected = sum(int((r[1] != IGNORE_INDEX).sum()) for r in reference.values())
    assert selected > 0.2 * sum(int((r[0] >= N_SPECIAL).sum()) for r in reference.values())
    for other in results[1:]:
        assert other.keys() == reference.keys()
        assert all(torch.equal(other[i], reference[i]) for i in reference)


# ---------------------------------------------------------------------------------------------
# What selected tokens become
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "count"),
    # Span masking over the whole test corpus takes seconds; the other units, a fraction.
    [pytest.param(u, c, marks=pytest.mark.slow) if u == "span" else (u, c) for u, c in STRATEGIES],
)
def test_corruption_split_is_80_10_10_and_matches_the_ids(unit: str, count: str) -> None:
    """Of the selected tokens ~80% become [MASK], ~10% a random ordinary token and ~10%
    stay; to_mask and to_random say exactly what input_ids shows. Spans decide per span,
    so they need more rows for the same precision: ~28k spans at 30% of 4,000 rows give an
    sd of ~0.4 point."""
    ids, starts = large_sample() if unit == "span" else (IDS, STARTS)
    out = mask_all(unit, count, 0.3 if unit == "span" else 0.15, ids, starts)
    sel = out.selected
    n_sel = sel.sum().item()
    assert out.to_mask.sum().item() / n_sel == pytest.approx(0.8, abs=0.015)
    assert out.to_random.sum().item() / n_sel == pytest.approx(0.1, abs=0.015)
    kept = sel & ~out.to_mask & ~out.to_random
    assert kept.sum().item() / n_sel == pytest.approx(0.1, abs=0.015)

    assert not (out.to_mask & out.to_random).any()
    assert not ((out.to_mask | out.to_random) & ~sel).any()
    assert torch.equal(out.to_mask, out.input_ids == MASK_ID)
    randoms = out.input_ids[out.to_random]
    assert randoms.min().item() >= N_SPECIAL and randoms.max().item() < VOCAB
    assert torch.equal(
        out.input_ids[~(out.to_mask | out.to_random)], ids[~(out.to_mask | out.to_random)]
    )
    assert torch.equal(out.labels[sel], ids[sel])
    assert torch.all(out.labels[~sel] == IGNORE_INDEX)


@pytest.mark.parametrize(("unit", "count"), STRATEGIES)
def test_mask_token_frac_1_turns_every_selected_token_into_mask(unit: str, count: str) -> None:
    m = make_masker(unit, count, mask_token_frac=1.0, random_token_frac=0.0)
    out = m(SMALL_IDS, torch.arange(SMALL_IDS.shape[0]), 0, word_starts=SMALL_STARTS)
    assert out.selected.sum().item() > 0
    assert torch.all(out.input_ids[out.selected] == MASK_ID)
    assert torch.equal(out.input_ids[~out.selected], SMALL_IDS[~out.selected])
    assert not out.to_random.any()


def test_strategy_label_names_unit_and_timing() -> None:
    """The label is derived from the settings, so it cannot disagree with the masker."""
    assert make_masker("token", copies=1).strategy == "static(K=1)"
    assert make_masker("token", copies=None).strategy == "dynamic"
    assert make_masker("span", "fixed", copies=None).strategy == "span dynamic"
    assert make_masker("whole_word", copies=3).strategy == "whole_word static(K=3)"
    with pytest.raises(ValueError, match="unknown unit"):
        make_masker("sentence")
    with pytest.raises(ValueError, match="unknown count"):
        make_masker(count="poisson")


# ---------------------------------------------------------------------------------------------
# MaskStats: what the runs report
# ---------------------------------------------------------------------------------------------


def hand_batch(
    eligible: list[int], selected: list[int], to_mask: list[int], to_random: list[int]
) -> MaskedBatch:
    """A MaskedBatch of one row whose flags are given position by position."""

    def flags(values: list[int]) -> torch.Tensor:
        return torch.tensor([values], dtype=torch.bool)

    ids = torch.arange(N_SPECIAL, N_SPECIAL + len(eligible))[None]
    return MaskedBatch(
        input_ids=ids,
        labels=ids,
        selected=flags(selected),
        to_mask=flags(to_mask),
        to_random=flags(to_random),
        eligible=flags(eligible),
    )


def test_mask_stats_summary_reports_exact_rate_and_split() -> None:
    """Totals over batches, not means of batch rates: 5 of 16 eligible, 3/1/1 split."""
    stats = MaskStats()
    assert stats.summary() == {}
    stats.update(
        hand_batch(
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        target_rate=0.3,
        seconds=0.25,
    )
    stats.update(
        hand_batch([1, 1, 1, 1, 1, 1], [0, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0] * 6),
        target_rate=0.2,
        seconds=0.5,
    )
    summary = stats.summary()
    assert summary == pytest.approx(
        {
            "mask_rate": 5 / 16,
            "mask_rate_target": 0.25,
            "mask_frac_mask": 3 / 5,
            "mask_frac_random": 1 / 5,
            "mask_frac_kept": 1 / 5,
            "mask_time_s": 0.75,
        }
    )


def test_mask_stats_of_a_real_masker_agree_with_its_output() -> None:
    out = mask_all("span", "fixed", 0.3)
    stats = MaskStats()
    stats.update(out, target_rate=0.3, seconds=0.0)
    summary = stats.summary()
    n_sel = out.selected.sum().item()
    assert summary["mask_rate"] == pytest.approx(n_sel / out.eligible.sum().item())
    assert summary["mask_rate"] == pytest.approx(0.3, abs=0.01)
    assert summary["mask_frac_mask"] == pytest.approx(out.to_mask.sum().item() / n_sel)
    assert summary["mask_frac_random"] == pytest.approx(out.to_random.sum().item() / n_sel)


@pytest.mark.parametrize(("copies", "after_3", "after_3_5"), [(2, 2.0, 2.0), (None, 3.0, 3.5)])
def test_mask_diversity_counts_distinct_masks_per_sequence(
    copies: int | None, after_3: float, after_3_5: float
) -> None:
    """Static K=2 gives two masks in three epochs (keys 0, 1, 0); dynamic gives three, and
    half a fourth epoch gives half the sequences a fourth mask (mean +0.5)."""
    m = make_masker(copies=copies)
    n = 40
    stats = MaskStats()
    for epoch in range(3):
        for batch in torch.randperm(n, generator=torch.Generator().manual_seed(epoch)).split(7):
            stats.seen(batch, epoch, m.key(epoch), n)
    stats.update(hand_batch([1], [1], [1], [0]), target_rate=0.15, seconds=0.0)
    assert stats.summary()["mask_diversity"] == after_3
    assert m.distinct_masks(3) == after_3
    for batch in torch.arange(0, n, 2).split(6):  # a partial epoch over half the sequences
        stats.seen(batch, 3, m.key(3), n)
    assert stats.summary()["mask_diversity"] == after_3_5
    assert stats.distinct is not None
    fourth = 1 if copies is None else 0  # key(3) is new only for dynamic masking
    expected = [int(after_3) + (fourth if i % 2 == 0 else 0) for i in range(n)]
    assert stats.distinct.tolist() == expected


def test_a_special_token_inside_a_word_neither_blocks_it_nor_spends_budget() -> None:
    """Fixed-count whole words: ten one-token words, then the word [20, [UNK], 21] at rate
    0.5. The budget is round(0.5 x 12) = 6; the words are taken in keyed order until the next
    does not fit, so 6 tokens, or 5 when the two-token word comes sixth. The [UNK] costs
    nothing and never stops its word from being chosen."""
    m = make_masker("whole_word", "fixed", copies=None, prob=0.5)
    ids = torch.tensor([[*range(N_SPECIAL + 10, N_SPECIAL + 20), 20, UNK_ID, 21]])
    starts = torch.tensor([[1] * 10 + [1, 0, 0]], dtype=torch.bool)
    chosen = 0
    for key in range(30):
        out = m(ids, torch.tensor([0]), key, word_starts=starts)
        assert int(out.selected.sum()) in (5, 6), key
        assert not out.selected[0, 11]
        assert bool(out.selected[0, 10]) == bool(out.selected[0, 12])
        chosen += int(out.selected[0, 10])
    assert 5 <= chosen <= 25  # chosen about half the time, as any other word
