"""Pseudo-log-likelihood on dmx's encoder: the batched, sparse-head scorer equals the
textbook computation (one masked copy at a time, every position's logits), on dmx's own
model and on the same weights exported to transformers, for PLL and PLL-word-l2r."""

from __future__ import annotations

import pytest
import torch

from dmx.data.tokenizer import CLS_ID, MASK_ID, SEP_ID
from dmx.downstream.pll import PLL, PLL_WORD_L2R, Sentence, copies_mask, pll_scores
from dmx.model import EncoderShape, MaskedLM

# Words of one, two and three tokens, sentences of different lengths (several per length,
# so a batch holds more than one sentence), and one empty sentence.
SENTENCES = [
    Sentence((7, 8, 9, 10), (0, 1, 1, 2)),
    Sentence((11, 12, 13, 14), (0, 0, 0, 1)),
    Sentence((15, 16, 17), (0, 1, 2)),
    Sentence((20, 21, 22, 23, 24, 25), (0, 1, 1, 2, 3, 3)),
    Sentence((30,), (0,)),
    Sentence((), ()),
]


@pytest.fixture(scope="module")
def encoder() -> MaskedLM:
    torch.manual_seed(0)
    shape = EncoderShape(
        vocab_size=48, n_layers=2, d_model=32, n_heads=4, d_ff=64, max_seq_len=16, dropout=0.1
    )
    model = MaskedLM(shape)
    # Weights far from init, so the scores differ from sentence to sentence.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def _copies(sentence: Sentence, scoring: str) -> list[tuple[list[int], int]]:
    """Each masked copy ([CLS] ... [SEP]) and the position it scores, by the definition."""
    out = []
    for i in range(len(sentence.ids)):
        ids = [CLS_ID, *sentence.ids, SEP_ID]
        for j in range(len(sentence.ids)):
            later_same_word = j > i and sentence.words[j] == sentence.words[i]
            if j == i or (scoring == PLL_WORD_L2R and later_same_word):
                ids[j + 1] = MASK_ID
        out.append((ids, i + 1))
    return out


def _textbook_dmx(model: MaskedLM, sentence: Sentence, scoring: str) -> float:
    total = 0.0
    with torch.no_grad():
        for ids, position in _copies(sentence, scoring):
            x = torch.tensor([ids])
            hidden, _ = model.encode(x)
            logits = model.mlm_logits(hidden, torch.ones_like(x, dtype=torch.bool))
            total += torch.log_softmax(logits[position], -1)[ids_target(sentence, position)].item()
    return total


def ids_target(sentence: Sentence, position: int) -> int:
    return sentence.ids[position - 1]


def _textbook_hf(hf: object, sentence: Sentence, scoring: str) -> float:
    total = 0.0
    with torch.no_grad():
        for ids, position in _copies(sentence, scoring):
            logits = hf(input_ids=torch.tensor([ids])).logits[0, position]  # type: ignore[operator]
            total += torch.log_softmax(logits, -1)[ids_target(sentence, position)].item()
    return total


@pytest.mark.parametrize("scoring", [PLL, PLL_WORD_L2R])
def test_batched_scores_equal_the_textbook_ones_on_dmx_and_transformers(
    encoder: MaskedLM, scoring: str
) -> None:
    from transformers import XLMRobertaXLForMaskedLM

    from dmx.downstream.export import hf_config, hf_state_dict

    hf = XLMRobertaXLForMaskedLM(hf_config(encoder))
    hf.load_state_dict(hf_state_dict(encoder))
    hf.eval()
    scores = pll_scores(
        encoder, SENTENCES, scoring, cls_id=CLS_ID, sep_id=SEP_ID, mask_id=MASK_ID, max_tokens=40
    )
    dmx = [_textbook_dmx(encoder, s, scoring) for s in SENTENCES]
    theirs = [_textbook_hf(hf, s, scoring) for s in SENTENCES]
    assert scores == pytest.approx(dmx, abs=1e-4)
    assert scores == pytest.approx(theirs, abs=1e-4)
    assert scores[-1] == 0.0  # nothing to score
    assert len({round(s, 4) for s in scores[:-1]}) == len(scores) - 1
    assert encoder.training is False  # left as it was found


def test_word_l2r_differs_only_where_a_word_has_several_tokens(encoder: MaskedLM) -> None:
    kwargs = {"cls_id": CLS_ID, "sep_id": SEP_ID, "mask_id": MASK_ID}
    plain = pll_scores(encoder, SENTENCES, PLL, **kwargs)
    l2r = pll_scores(encoder, SENTENCES, PLL_WORD_L2R, **kwargs)
    multi = [len(set(s.words)) < len(s.words) for s in SENTENCES]
    assert [a != b for a, b in zip(plain, l2r, strict=True)] == multi


def test_batch_size_and_order_change_no_score(encoder: MaskedLM) -> None:
    kwargs = {"cls_id": CLS_ID, "sep_id": SEP_ID, "mask_id": MASK_ID}
    one = pll_scores(encoder, SENTENCES, PLL_WORD_L2R, max_tokens=1, **kwargs)
    many = pll_scores(encoder, SENTENCES[::-1], PLL_WORD_L2R, max_tokens=10_000, **kwargs)
    assert one == pytest.approx(many[::-1], abs=1e-5)


def test_the_copies_hide_the_token_and_in_l2r_the_rest_of_its_word() -> None:
    words = torch.tensor([0, 1, 1, 1, 2])
    assert copies_mask(words, PLL).equal(torch.eye(5, dtype=torch.bool))
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [0, 1, 1, 1, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 0, 1, 0],
            [0, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert copies_mask(words, PLL_WORD_L2R).equal(expected)
    with pytest.raises(ValueError, match="scoring must be one of pll_word_l2r, pll"):
        copies_mask(words, "mlm")


@pytest.mark.parametrize(("gate", "layers"), [(False, 3), (False, 1), (True, 3)])
def test_logits_at_one_position_equal_the_full_encoders(gate: bool, layers: int) -> None:
    """The first block's shared projections and the last block at the scored position only
    compute what the whole encoder does there (the learned gate's takes the full path)."""
    torch.manual_seed(1)
    shape = EncoderShape(
        vocab_size=40, n_layers=layers, d_model=32, n_heads=4, d_ff=64, max_seq_len=12, gate=gate
    )
    model = MaskedLM(shape).eval()
    ids = torch.randint(5, 40, (6, 9))
    ids[1:4] = ids[0]  # rows that share tokens at the same positions, as masked copies do
    ids[2, 3] = ids[3, 5] = MASK_ID
    positions = torch.tensor([0, 3, 8, 4, 4, 1])
    selected = torch.zeros_like(ids, dtype=torch.bool)
    selected[torch.arange(6), positions] = True
    with torch.no_grad():
        hidden, _ = model.encode(ids)
        full = model.mlm_logits(hidden, selected)
        torch.testing.assert_close(model.logits_at(ids, positions), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scoring", [PLL, PLL_WORD_L2R])
def test_the_benchs_transformers_scorer_gives_dmxs_scores(encoder: MaskedLM, scoring: str) -> None:
    """dmx bench --pll compares speed alone: its plain transformers scorer (padded batches,
    full logits) computes the same scores as dmx's."""
    from dmx.bench.pll import _exported, hf_scores

    ours = pll_scores(encoder, SENTENCES, scoring, cls_id=CLS_ID, sep_id=SEP_ID, mask_id=MASK_ID)
    theirs = hf_scores(_exported(encoder), SENTENCES, scoring, bf16=False, max_tokens=30)
    assert theirs == pytest.approx(ours, abs=1e-4)


def test_dmx_bench_pll_scores_both_ways_alike_and_ends_with_the_ratio() -> None:
    import re

    from typer.testing import CliRunner

    from dmx.cli import app

    result = CliRunner().invoke(app, ["bench", "--pll", "--model", "tiny", "--pairs", "4"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("PLL-word-l2r, 24 pairs (embedded), encoder 2 x 128")
    accs = [re.search(r"acc (\S+)%$", line).group(1) for line in lines[1:3]]  # type: ignore[union-attr]
    assert lines[1].startswith("dmx (sparse last block)")
    assert lines[2].startswith("transformers (full logits)") and accs[0] == accs[1]
    assert re.fullmatch(r"pll_ratio_vs_hf=\d+\.\d\d", lines[3])
