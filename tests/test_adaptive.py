"""Masks that adapt to the data (PMI units, corpus weights, InforMask's rates) and to the
model (loss-weighted rates, AMLM): their defining properties, their rates, and their runs
end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import train_run

from dmx.common.errors import UserError
from dmx.common.run_folder import ADAPTIVE_FILE
from dmx.config import DataConfig, MaskConfig
from dmx.data.corpus_weights import corpus_weights, neighbour_relevance
from dmx.data.datamodule import IndexedSequences, MLMDataModule
from dmx.data.informask import informask_rates, relevance, sample_and_score
from dmx.data.pmi import (
    PMISettings,
    collocations,
    load_or_build_units,
    multiword_share,
    segment,
)
from dmx.data.tokenizer import N_SPECIAL, SEP_ID
from dmx.masking import TokenMasker
from dmx.masking.adaptive import AdaptiveRates
from dmx.masking.select import by_budget_skipping, word_first
from dmx.masking.weights import expected_rate, normalise, weighted_mean

# --- PMI units --------------------------------------------------------------------------


def _stream(words: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and word starts of a list of words (each a list of token ids)."""
    ids = [t for w in words for t in w]
    starts = [int(i == 0) for w in words for i in range(len(w))]
    return np.asarray(ids, dtype=np.int64), np.asarray(starts, dtype=np.uint8)


def _planted_corpus(seed: int = 0, n_words: int = 6000) -> list[list[int]]:
    """Random one-token words from ids 20..119, with the collocation (7, 8) (a two-token
    word 7 followed by the word 9) planted 150 times, and [SEP] every 50 words."""
    rng = np.random.default_rng(seed)
    words: list[list[int]] = []
    while len(words) < n_words:
        if rng.random() < 0.03:
            words += [[7, 8], [9]]
        else:
            words.append([int(rng.integers(20, 120))])
        if len(words) % 50 == 0:
            words.append([SEP_ID])
    return words


def test_pmi_ranks_a_planted_collocation_first_and_segments_it_whole() -> None:
    ids, starts = _stream(_planted_corpus())
    vocab, kept = collocations(ids, starts, PMISettings(ngram_max=3, min_count=10, vocab_size=4))
    best = max(kept, key=lambda c: c.score)
    assert best.n == 2
    assert ids[best.first : best.first + best.n_tokens].tolist() == [7, 8, 9]
    units = segment(ids, starts, vocab)
    # Every occurrence of the planted pair is one unit: only its first token begins one.
    at = [i for i in range(len(ids) - 2) if ids[i : i + 3].tolist() == [7, 8, 9]]
    assert len(at) > 100
    assert all(units[i] == 1 and units[i + 1] == 0 and units[i + 2] == 0 for i in at)
    # Units are unions of whole words: a unit start is always a word start.
    assert not np.any(units.astype(bool) & ~starts.astype(bool))


def test_pmi_n_is_the_minimum_over_segmentations() -> None:
    """A trigram whose first two words always occur together: the best split of it keeps
    them together, so PMI_3 is the PMI of (w1 w2) with w3, computed here by hand."""
    words = [[30], [31], [32]] * 20 + [[30], [31], [40]] * 20 + [[50], [32]] * 20
    ids, starts = _stream(words)
    _, kept = collocations(ids, starts, PMISettings(ngram_max=3, min_count=5, vocab_size=100))
    tri = [c for c in kept if c.n == 3 and ids[c.first : c.first + 3].tolist() == [30, 31, 32]]
    assert len(tri) == 1
    n_words = len(words)

    def p(count: int, n: int) -> float:
        return count / (n_words - n + 1)

    # Segmentations of (30 31 32): [30][31][32], [30 31][32], [30][31 32].
    full = math.log(p(20, 3))
    splits = [
        math.log(p(40, 1)) + math.log(p(40, 1)) + math.log(p(40, 1)),
        math.log(p(40, 2)) + math.log(p(40, 1)),
        math.log(p(40, 1)) + math.log(p(20, 2)),
    ]
    assert tri[0].pmi == pytest.approx(full - max(splits), rel=1e-9)
    assert tri[0].score == pytest.approx(2 * full - max(splits), rel=1e-9)


def test_pmi_ngrams_never_cross_a_special_token() -> None:
    words = [[40], [41], [SEP_ID]] * 50  # "40 41" collocates; "41 [SEP]" and "[SEP] 40" too
    ids, starts = _stream(words)
    vocab, kept = collocations(ids, starts, PMISettings(ngram_max=3, min_count=5, vocab_size=50))
    assert kept and all(SEP_ID not in ids[c.first : c.first + c.n_tokens] for c in kept)
    units = segment(ids, starts, vocab)
    assert units[ids == SEP_ID].all()  # [SEP] stays a unit of its own


def test_pmi_segmentation_takes_longest_matches_first_without_overlap() -> None:
    ids, starts = _stream([[60], [61], [62], [63], [64]])
    # A vocabulary from a stream where (60 61 62) and its parts are frequent.
    train_ids, train_starts = _stream(([[60], [61], [62]] + [[70]] * 3) * 30)
    vocab, _ = collocations(train_ids, train_starts, PMISettings(3, 5, 100))
    assert 3 in vocab and len(vocab[3]) >= 1
    units = segment(ids, starts, vocab)
    assert units.tolist() == [1, 0, 0, 1, 1]  # (60 61 62) whole, not (60 61) + (62)


def test_pmi_units_are_masked_whole_with_one_corruption_choice_each() -> None:
    rows = 64
    rng = np.random.default_rng(1)
    unit_starts = torch.from_numpy(rng.random((rows, 48)) < 0.4)
    unit_starts[:, :2] = True
    ids = torch.from_numpy(rng.integers(N_SPECIAL, 500, (rows, 48)))
    ids[:, 0] = 2  # [CLS]
    word_starts = unit_starts | torch.from_numpy(rng.random((rows, 48)) < 0.5)
    for count in ("fixed", "bernoulli"):
        masker = TokenMasker(
            seed=3, copies=None, prob=0.15, mask_token_frac=0.8, random_token_frac=0.1,
            mask_token_id=4, n_special=N_SPECIAL, vocab_size=500, unit="pmi", count=count,
        )  # fmt: skip
        out = masker(ids, torch.arange(rows), 0, word_starts=word_starts, unit_starts=unit_starts)
        first = word_first(unit_starts)
        eligible = out.eligible
        # All or none of a unit's eligible tokens; the same corruption for all of them.
        for name in ("selected", "to_mask", "to_random"):
            flags = getattr(out, name)
            at_first = flags.gather(1, first)
            assert torch.equal(flags & eligible, at_first & eligible), (count, name)
        assert out.multiword is not None
        more_words = (word_starts & ~unit_starts).to(torch.int64)
        n_after = torch.zeros_like(more_words).scatter_add_(1, first, more_words)
        assert torch.equal(out.multiword, n_after.gather(1, first) > 0)


def test_a_unit_too_big_for_what_is_left_is_skipped_not_the_end() -> None:
    # Units (by first position): 0:[0,1,2,3] 4:[4] 5:[5,6] 7:[7]; budget 3.
    first = torch.tensor([[0, 0, 0, 0, 4, 5, 5, 7]])
    eligible = torch.ones(1, 8, dtype=torch.bool)
    u = torch.tensor([[0.1, 0.1, 0.1, 0.1, 0.3, 0.2, 0.2, 0.4]])  # order: 0, 5, 4, 7
    taken = by_budget_skipping(u, first, eligible, torch.tensor([3]))
    # Unit 0 (4 tokens) does not fit and is skipped; 5 (2) fits, then 4 (1): 3 tokens.
    assert taken.tolist() == [[False, False, False, False, True, True, True, False]]


@pytest.mark.slow
def test_pmi_fixed_budget_keeps_the_expected_rate() -> None:
    data = MLMDataModule(DataConfig(), MaskConfig(unit="pmi", count="fixed", copies=None), 0)
    data.setup()
    assert data.units is not None
    rows = IndexedSequences(data.corpus.train, data.units)  # type: ignore[union-attr]
    batch = torch.utils.data.default_collate([rows[i] for i in range(len(rows))])
    selected = eligible = 0
    for key in range(4):
        out = data.train_masker(
            batch["input_ids"],
            batch["index"],
            key,
            word_starts=batch["word_starts"],
            unit_starts=batch["unit_starts"],
        )
        selected += int(out.selected.sum())
        eligible += int(out.eligible.sum())
        share = float((out.selected & out.multiword).sum() / out.selected.sum())
        assert 0.2 < share < 0.6  # multi-word units hold a real share of the masked tokens
    assert selected / eligible == pytest.approx(0.15, abs=0.003)


def test_pmi_units_are_cached_by_corpus_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, starts = _stream(_planted_corpus())
    settings = PMISettings(3, 10, 4)
    first = np.asarray(load_or_build_units(tmp_path, ids, starts, settings))
    folder = tmp_path / f"pmi-{settings.key()}"
    assert (folder / "meta.json").exists()
    assert (folder / "vocabulary.tsv").read_text().startswith("n\tcount\tpmi\tscore\ttext\n")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["multiword_token_share"] == pytest.approx(multiword_share(starts, first), abs=1e-4)

    def boom(*args: object) -> None:
        raise AssertionError("the cached units were built again")

    monkeypatch.setattr("dmx.data.pmi.collocations", boom)
    again = load_or_build_units(tmp_path, ids, starts, settings)
    assert np.array_equal(np.asarray(again), first)
    # Other settings are another cache entry.
    assert PMISettings(3, 10, 5).key() != settings.key()


# --- corpus weights and weighted selection -------------------------------------------------


def _planted(n: int, the_every: int) -> tuple[np.ndarray, np.ndarray]:
    """A stream of random ids 20-199 with id 10 ("the") every ``the_every`` tokens, next to
    anything, and id 11 (a content word) at 1% of the positions, always followed by 12."""
    rng = np.random.default_rng(0)
    ids = rng.integers(20, 200, n)
    ids[::the_every] = 10
    topic = np.flatnonzero(rng.random(len(ids)) < 0.01)
    ids[topic] = 11
    ids[np.minimum(topic + 1, len(ids) - 1)] = 12
    return ids, np.asarray([0, len(ids)])


def test_neighbour_pmi_ranks_a_token_with_fixed_neighbours_above_one_next_to_anything() -> None:
    ids, offsets = _planted(20000, the_every=10)
    relevance = neighbour_relevance(ids, offsets, 256, window=2)
    assert relevance[11] > 3 * relevance[10]
    weights = corpus_weights(ids, offsets, 256, "inverse_frequency")
    assert weights[11] > weights[10]  # rarer
    assert not np.isnan(corpus_weights(ids, offsets, 256)).any()


def test_weights_are_normalised_to_the_rate_within_bounds() -> None:
    freq = torch.tensor([0, 0, 100, 50, 10, 1, 1], dtype=torch.float64)
    raw = torch.tensor([5.0, 5.0, 0.01, 1.0, 20.0, 3.0, 0.5])
    w = normalise(raw, freq, 0.1, 4.0)
    assert float(weighted_mean(w, freq)) == pytest.approx(1.0, abs=1e-6)
    assert float(w.min()) >= 0.1 - 1e-7 and float(w.max()) <= 4.0 + 1e-6
    assert expected_rate(w, freq, 0.15) == pytest.approx(0.15, abs=1e-6)


def _weighted_masker(count: str) -> TokenMasker:
    return TokenMasker(
        seed=0, copies=None, prob=0.15, mask_token_frac=0.8, random_token_frac=0.1,
        mask_token_id=4, n_special=N_SPECIAL, vocab_size=64, count=count, weighting="corpus",
    )  # fmt: skip


@pytest.mark.parametrize("count", ["bernoulli", "fixed"])
def test_weighted_selection_prefers_heavy_ids_at_the_same_rate(count: str) -> None:
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(N_SPECIAL, 64, (4000, 40)))
    freq = torch.bincount(ids.flatten(), minlength=64).to(torch.float64)
    freq[:N_SPECIAL] = 0
    raw = torch.ones(64)
    raw[N_SPECIAL : N_SPECIAL + 10] = 3.0  # ten heavy ids
    w = normalise(raw, freq, 0.1, 4.0)
    out = _weighted_masker(count)(ids, torch.arange(len(ids)), 0, weights=w)
    rate = float(out.selected.sum() / out.eligible.sum())
    assert rate == pytest.approx(0.15, abs=0.003)
    heavy = (ids >= N_SPECIAL) & (ids < N_SPECIAL + 10)
    heavy_rate = float((out.selected & heavy).sum() / heavy.sum())
    light_rate = float((out.selected & ~heavy).sum() / (~heavy).sum())
    if count == "bernoulli":  # exactly rate x weight, in expectation
        assert heavy_rate == pytest.approx(0.15 * float(w[N_SPECIAL]), rel=0.05)
        assert light_rate == pytest.approx(0.15 * float(w[-1]), rel=0.05)
    assert heavy_rate > 2.0 * light_rate


def test_weighted_masks_are_keyed() -> None:
    """A row's mask depends on its own ids, index and key, never on its batch."""
    rng = np.random.default_rng(2)
    ids = torch.from_numpy(rng.integers(N_SPECIAL, 64, (32, 40)))
    w = normalise(torch.rand(64) + 0.5, torch.ones(64), 0.1, 4.0)
    for count in ("bernoulli", "fixed"):
        masker = _weighted_masker(count)
        whole = masker(ids, torch.arange(32), 5, weights=w)
        part = masker(ids[8:12], torch.arange(8, 12), 5, weights=w)
        assert torch.equal(whole.selected[8:12], part.selected)
        assert torch.equal(whole.input_ids[8:12], part.input_ids)


# --- InforMask ---------------------------------------------------------------------------


def test_relevance_is_each_tokens_summed_pmi_with_its_window() -> None:
    rng = np.random.default_rng(1)
    ids = rng.integers(N_SPECIAL, N_SPECIAL + 6, 60)
    ids[30] = SEP_ID  # a special token: no relevance, no pairs through it
    offsets = np.asarray([0, 31, 60])  # two documents: no pairs across them
    window = 2
    scores = relevance(ids, offsets, 64, window)
    # The same by hand: pair counts in both directions, PMI = log(c_ab x total / (c_a c_b)).
    doc = np.searchsorted(offsets, np.arange(60), side="right")
    ok = lambda i, j: ids[i] >= N_SPECIAL and ids[j] >= N_SPECIAL and doc[i] == doc[j]  # noqa: E731
    pairs = [(i, j) for i in range(60) for j in range(60) if 0 < abs(i - j) <= window and ok(i, j)]
    c_ab: dict[tuple[int, int], int] = {}
    for i, j in pairs:
        c_ab[ids[i], ids[j]] = c_ab.get((ids[i], ids[j]), 0) + 1
    c_a = {a: sum(c for (x, _), c in c_ab.items() if x == a) for a, _ in c_ab}
    total = sum(c_ab.values())
    expected = np.zeros(60)
    for i, j in pairs:
        a, b = ids[i], ids[j]
        expected[i] += math.log(c_ab[a, b] * total / (c_a[a] * c_a[b]))
    assert scores == pytest.approx(expected)
    assert scores[30] == 0.0


def test_sample_and_score_keeps_the_best_of_its_draws_at_the_budget() -> None:
    ids = np.full((200, 20), N_SPECIAL, dtype=np.int64)
    ids[:, 0] = 2  # [CLS]: never masked
    scores = np.zeros((200, 20))
    scores[:, 5] = 10.0  # one position worth masking
    one = sample_and_score(ids, scores, 0.2, 1, np.random.default_rng(0))
    many = sample_and_score(ids, scores, 0.2, 10, np.random.default_rng(0))
    for chosen in (one, many):
        assert (chosen.sum(axis=1) == round(0.2 * 19)).all()  # the budget, exactly
        assert not chosen[:, 0].any()
    # One draw holds position 5 in 4 of 19 cases; the best of 10 nearly always does.
    assert 0.1 < one[:, 5].mean() < 0.35 and many[:, 5].mean() > 0.85


def test_informask_rates_favour_informative_ids_and_average_the_rate() -> None:
    ids, offsets = _planted(40000, the_every=4)
    spans = [(i, min(i + 63, len(ids))) for i in range(0, len(ids), 63)]
    rates = informask_rates(ids, offsets, spans, 256, 0.15, window=5, samples=10)
    ordinary = float(np.median(rates[20:200]))  # ids next to random neighbours
    assert min(rates[11], rates[12]) > 1.4 * ordinary and rates[10] < 0.75 * ordinary
    assert rates[200:].max() == 0.0 and rates[:N_SPECIAL].max() == 0.0  # never seen
    counts = np.bincount(ids, minlength=256)
    # Every row masks round(15%) of its tokens (9 of 63), so that is the rates' mean.
    budget = sum(np.rint(0.15 * (b - a)) for a, b in spans)
    assert float((rates * counts).sum()) == pytest.approx(budget)
    again = informask_rates(ids, offsets, spans, 256, 0.15, window=5, samples=10)
    assert np.array_equal(rates, again)  # a corpus statistic: the same table every run


# --- adaptive -----------------------------------------------------------------------------


def _rates(every: int = 2, smoothing: float = 0.5) -> AdaptiveRates:
    freq = torch.tensor([0, 0, 40, 30, 20, 10], dtype=torch.float64)
    return AdaptiveRates(freq, 0.15, every, smoothing, 1.0, 0.1, 4.0)


def test_adaptive_rates_rise_for_ids_with_high_loss_and_keep_the_mean() -> None:
    rates = _rates()
    ids = torch.tensor([2, 2, 3, 3, 4, 5])
    losses = torch.tensor([0.5, 0.5, 1.0, 1.0, 4.0, 6.0])
    before = rates.rates().clone()
    rates.observe(ids, losses, losses < 2)
    assert not rates.due()
    rates.observe(ids, losses, losses < 2)
    assert rates.due()
    summary = rates.update(step=2)
    after = rates.rates()
    assert after[5] > after[4] > before[4] and after[2] < after[3] < before[3]
    freq = rates.freq
    assert float(weighted_mean(after.double(), freq)) == pytest.approx(0.15, abs=1e-6)
    assert summary["adaptive_rate_mean"] == pytest.approx(0.15, abs=1e-6)
    assert summary["adaptive_rate_std"] > 0
    assert rates.steps_in_window == 0 and float(rates.count.sum()) == 0.0
    assert rates.history[-1]["step"] == 2 and len(rates.history[-1]["bands"]) == 4


def test_adaptive_smoothing_moves_part_of_the_way_and_unseen_ids_keep_their_weight() -> None:
    slow, fast = _rates(every=1, smoothing=0.1), _rates(every=1, smoothing=1.0)
    for r in (slow, fast):
        r.observe(torch.tensor([2, 3]), torch.tensor([1.0, 3.0]), torch.tensor([1.0, 3.0]) < 2)
        r.update(step=1)
    assert fast.weights[3] > slow.weights[3] > 1.0
    # Id 4 and 5 were not seen: they only move by the renormalisation, together.
    assert slow.weights[4] == pytest.approx(float(slow.weights[5]))


def test_adaptive_update_sums_the_window_across_processes() -> None:
    rates = _rates(every=1)
    rates.observe(torch.tensor([2]), torch.tensor([1.0]), torch.tensor([1.0]) < 2)
    seen: list[torch.Tensor] = []

    def reduce(t: torch.Tensor) -> torch.Tensor:
        seen.append(t.clone())
        other = torch.zeros_like(t)
        other[0, 5], other[2, 5] = 9.0, 1.0  # another process saw id 5 with a high loss
        return t + other

    rates.update(step=1, reduce=reduce)
    assert len(seen) == 1
    assert rates.weights[5] > rates.weights[2]


def test_adaptive_state_round_trips() -> None:
    rates = _rates(every=3)
    rates.observe(torch.tensor([2, 5]), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]) < 2)
    rates.observe(torch.tensor([2, 5]), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]) < 2)
    rates.observe(torch.tensor([2, 5]), torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]) < 2)
    rates.update(step=3)
    rates.observe(torch.tensor([3]), torch.tensor([5.0]), torch.tensor([5.0]) < 2)
    restored = _rates(every=3)
    restored.load_state_dict(rates.state_dict())
    for name in ("weights", "loss_sum", "correct", "count"):
        assert torch.equal(getattr(restored, name), getattr(rates, name))
    assert restored.steps_in_window == 1 and restored.history == rates.history


def _amlm(every: int = 1, smoothing: float = 0.8, floor: float = 0.005) -> AdaptiveRates:
    freq = torch.tensor([0, 0, 40, 30, 20, 10], dtype=torch.float64)
    return AdaptiveRates(freq, 0.15, every, smoothing, 1.0, 0.1, 4.0, rule="amlm", floor=floor)


def test_amlm_follows_its_released_update_rule() -> None:
    rates = _amlm()
    ids = torch.tensor([2, 2, 2, 2, 3, 3, 4])
    hits = torch.tensor([True, True, True, False, False, False, True])
    rates.observe(ids, torch.zeros(7), hits)
    rates.update(step=1)
    # train_mask.py's update_mask_weights, on the same counts (ids 0, 1 and 5 not seen):
    correct = torch.tensor([0, 0, 3, 0, 1, 0], dtype=torch.float64)
    seen = torch.tensor([0, 0, 4, 2, 1, 0], dtype=torch.float64)
    acc = (correct + 0.5) / (seen + 1)
    w = (0.2 * torch.full((6,), 0.15, dtype=torch.float64) + 0.8 * (0.15 - acc * 0.15)).clamp(0.005)
    w = 0.15 * 6 * w / w.sum()
    assert (0.15 * rates.weights.double()).tolist() == pytest.approx(w.tolist(), rel=1e-6)
    assert rates.weights[3] > rates.weights[5] > rates.weights[2]  # wrong > unseen > right
    assert float(rates.count.sum()) == 0.0 and float(rates.correct.sum()) == 0.0


def test_amlm_floors_learned_ids() -> None:
    rates = _amlm(smoothing=1.0, floor=0.01)
    rates.observe(torch.tensor([2] * 50), torch.zeros(50), torch.ones(50, dtype=torch.bool))
    rates.update(step=1)
    # acc = 50.5 / 51: the target 0.15 x (1 - acc) is below the floor, so it is the floor,
    # before the vocabulary mean is rescaled to 0.15.
    others = (1 - 0.5) * 0.15
    assert float(rates.weights[2] / rates.weights[0]) == pytest.approx(0.01 / others, rel=1e-5)


def test_amlm_weights_are_normalised_within_each_sequence() -> None:
    masker = TokenMasker(
        seed=0, copies=None, prob=0.15, mask_token_frac=0.8, random_token_frac=0.1,
        mask_token_id=4, n_special=N_SPECIAL, vocab_size=64, weighting="amlm",
    )  # fmt: skip
    weights = torch.ones(64)
    weights[N_SPECIAL] = 3.0
    rows = 20000
    ids = torch.full((rows, 10), N_SPECIAL + 1)
    ids[:, 0] = N_SPECIAL  # one heavy token in each row of ten
    out = masker(ids, torch.arange(rows), 0, weights=weights)
    # rate x n x w / sum(w): 0.15 x 10 x 3 / 12 for the heavy one, x 1 / 12 for the others.
    assert float(out.selected[:, 0].float().mean()) == pytest.approx(0.375, abs=0.015)
    assert float(out.selected[:, 1:].float().mean()) == pytest.approx(0.125, abs=0.005)
    # The same weights scaled: the same masks (only their ratios within a row matter).
    assert torch.equal(
        masker(ids, torch.arange(rows), 0, weights=weights * 7).selected, out.selected
    )
    assert float(out.selected.sum(1).float().mean()) == pytest.approx(1.5, abs=0.03)


# --- runs ---------------------------------------------------------------------------------


# Each preset and the label its runs carry.
LABELS = {
    "pmi": "pmi",
    "corpus_weighted": "corpus-weighted",
    "informask": "informask",
    "loss_weighted": "loss-weighted",
    "amlm": "amlm",
}


@pytest.mark.slow
@pytest.mark.parametrize("copies", ["null", "2"])
@pytest.mark.parametrize("mask", list(LABELS))
def test_each_strategy_trains_static_and_dynamic(tmp_path: Path, mask: str, copies: str) -> None:
    run = tmp_path / "run"
    moving = mask in ("loss_weighted", "amlm")
    extra = ["mask.adapt_every=4"] if moving else []
    if mask == "pmi":
        extra = ["mask.pmi_min_count=3"]
    metrics = train_run(run, f"mask={mask}", f"mask.copies={copies}", *extra)
    assert metrics["status"] == "done"
    timing = "dynamic" if copies == "null" else "static(K=2)"
    assert metrics["mask_strategy"] == f"{LABELS[mask]} {timing}"
    assert metrics["mask_rate"] == pytest.approx(0.15, abs=0.02)
    if mask == "pmi":
        assert 0.0 < metrics["mask_multiword_share"] < 1.0
    else:
        assert "mask_multiword_share" not in metrics
    # InforMask turns every selected token into [MASK]; the others keep 80/10/10.
    assert metrics["mask_frac_mask"] == pytest.approx(1.0 if mask == "informask" else 0.8, abs=0.05)
    if moving:
        assert metrics["adaptive_updates"] >= 2
        if mask == "loss_weighted":  # AMLM keeps the mean per sequence, not over the corpus
            assert metrics["adaptive_rate_mean"] == pytest.approx(0.15, abs=1e-4)
        assert metrics["adaptive_rate_p95"] > metrics["adaptive_rate_p05"]
        record = json.loads((run / ADAPTIVE_FILE).read_text())
        assert len(record["history"]) == metrics["adaptive_updates"]
        assert record["prob"] == 0.15 and len(record["bands"]) == 4
        assert record["rule"] == ("loss" if mask == "loss_weighted" else "amlm")
    else:
        assert not (run / ADAPTIVE_FILE).exists()


def _text_corpus(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    nouns = ["river", "stone", "garden", "letter", "window", "market", "forest", "engine"]
    verbs = ["found", "kept", "painted", "sold", "opened", "carried"]
    lines = []
    for _ in range(160):
        sentence = []
        for _ in range(6):
            sentence += ["the", str(rng.choice(nouns)), str(rng.choice(verbs))]
            if rng.random() < 0.3:
                sentence += ["hong", "kong"]
        lines.append(" ".join(sentence) + ".")
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join(lines) + "\n")
    return ["data=text", f"data.path={path}", "data.val_frac=0.1", "data.vocab_size=300"]


@pytest.mark.slow
@pytest.mark.parametrize("copies", ["null", "2"])
@pytest.mark.parametrize("mask", ["pmi", "corpus_weighted", "loss_weighted"])
def test_each_strategy_trains_on_a_users_text_corpus(
    tmp_path: Path, mask: str, copies: str
) -> None:
    extra = {"pmi": ["mask.pmi_min_count=5"], "loss_weighted": ["mask.adapt_every=4"]}
    metrics = train_run(
        tmp_path / "run",
        *_text_corpus(tmp_path),
        f"mask={mask}",
        f"mask.copies={copies}",
        *extra.get(mask, []),
    )
    assert metrics["status"] == "done"
    assert metrics["mask_diversity"] == (2.0 if copies == "2" else metrics["epochs"])
    assert metrics["mask_rate"] == pytest.approx(0.15, abs=0.03)
    if mask == "pmi":  # "hong kong" is a unit, and it is masked
        assert metrics["mask_multiword_share"] > 0.05


def test_a_weighting_for_another_unit_is_refused_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="mask.weighting=amlm weighs single tokens"):
        train_run(tmp_path / "run", "mask=span", "mask.weighting=amlm")


@pytest.mark.slow
def test_every_adaptive_update_reaches_wandb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logged at every update, even when mask.adapt_every does not divide Lightning's
    log_every_n_steps (10)."""
    from lightning.pytorch.loggers import WandbLogger

    logged: list[tuple[int | None, dict[str, float]]] = []
    original = WandbLogger.log_metrics

    def record(self: WandbLogger, metrics: dict[str, float], step: int | None = None) -> None:
        logged.append((step, dict(metrics)))
        original(self, metrics, step)

    monkeypatch.setattr(WandbLogger, "log_metrics", record)
    # conftest tears W&B's process-wide settings down after the test
    metrics = train_run(
        tmp_path / "run",
        "logger=wandb",
        "logger.mode=offline",
        "mask=loss_weighted",
        "mask.adapt_every=7",
    )
    updates = [(step, m) for step, m in logged if "mask/adaptive_rate_std" in m]
    assert len(updates) == metrics["adaptive_updates"] == metrics["steps"] // 7
    assert [step for step, _ in updates] == [7 * k - 1 for k in range(1, len(updates) + 1)]
    assert updates[-1][1]["mask/adaptive_rate_std"] == pytest.approx(metrics["adaptive_rate_std"])
