"""Pseudo-log-likelihood scoring speed: dmx's scorer (:mod:`dmx.downstream.pll`) against a
batched transformers scorer on the same weights, exported (:mod:`dmx.downstream.export`).

Both score the same masked copies of the same sentences (PLL-word-l2r or PLL), grouped by
length and batched to the same token budget, under ``torch.inference_mode``; the
transformers scorer is the plain one people write: every copy through
``XLMRobertaXLForMaskedLM``, full logits at every position, the scored one read off. Both
give the same accuracy (checked here), so the figures compare speed alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from tokenizers import Tokenizer

from dmx.data.minimal_pairs import Paradigm
from dmx.data.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID
from dmx.downstream.pll import Sentence, copies_mask, pll_scores
from dmx.downstream.zeroshot import tokenize
from dmx.model import MaskedLM

DMX_LABEL = "dmx (sparse last block)"
HF_LABEL = "transformers (full logits)"


@dataclass(frozen=True)
class PllTiming:
    label: str
    pairs: int
    seconds: float
    acc: float

    @property
    def pairs_per_s(self) -> float:
        return self.pairs / self.seconds


def bench_pll(
    encoder: MaskedLM,
    tokenizer: Tokenizer,
    paradigms: Sequence[Paradigm],
    scoring: str,
    *,
    bf16: bool = False,
    vs_hf: bool = True,
    max_tokens: int = 4096,
) -> list[PllTiming]:
    """dmx's pairs/s on every pair of ``paradigms`` and, with ``vs_hf``, transformers'."""
    texts = [s for p in paradigms for pair in p.pairs for s in (pair.good, pair.bad)]
    sentences = tokenize(tokenizer, texts, encoder.shape.max_seq_len - 2)
    n_pairs = len(texts) // 2
    ids = {"cls_id": CLS_ID, "sep_id": SEP_ID, "mask_id": MASK_ID}
    # Warm-up on a few sentences: first calls allocate and pick kernels.
    pll_scores(encoder, sentences[:64], scoring, bf16=bf16, max_tokens=max_tokens, **ids)
    began = time.perf_counter()
    scores = pll_scores(encoder, sentences, scoring, bf16=bf16, max_tokens=max_tokens, **ids)
    out = [PllTiming(DMX_LABEL, n_pairs, time.perf_counter() - began, _acc(scores))]
    if vs_hf:
        hf = _exported(encoder)
        hf_scores(hf, sentences[:64], scoring, bf16, max_tokens)
        began = time.perf_counter()
        theirs = hf_scores(hf, sentences, scoring, bf16, max_tokens)
        out.append(PllTiming(HF_LABEL, n_pairs, time.perf_counter() - began, _acc(theirs)))
    return out


def _acc(scores: Sequence[float]) -> float:
    pairs = list(zip(scores[::2], scores[1::2], strict=True))
    return sum(good > bad for good, bad in pairs) / len(pairs)


def _exported(encoder: MaskedLM) -> torch.nn.Module:
    from transformers import XLMRobertaXLForMaskedLM

    from dmx.downstream.export import hf_config, hf_state_dict

    model = XLMRobertaXLForMaskedLM(hf_config(encoder))
    model.load_state_dict(hf_state_dict(encoder))
    return model.eval()


def hf_scores(
    model: torch.nn.Module,
    sentences: Sequence[Sentence],
    scoring: str,
    bf16: bool,
    max_tokens: int,
) -> list[float]:
    """Each sentence's PLL by the exported model: the same copies, padded batches in order
    of length, full logits at every position."""
    rows: list[tuple[int, list[int], int, int]] = []  # sentence, masked ids, position, target
    for k, sentence in enumerate(sentences):
        if not sentence.ids:
            continue
        hide = copies_mask(torch.tensor(sentence.words), scoring)
        for i in range(len(sentence.ids)):
            masked = [MASK_ID if h else t for t, h in zip(sentence.ids, hide[i], strict=True)]
            rows.append((k, [CLS_ID, *masked, SEP_ID], i + 1, sentence.ids[i]))
    rows.sort(key=lambda r: len(r[1]))
    totals = [0.0] * len(sentences)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    with torch.inference_mode(), autocast:
        for batch in _batches(rows, max_tokens):
            width = len(batch[-1][1])  # sorted by length: the last row is the longest
            ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
            for j, (_, row, _, _) in enumerate(batch):
                ids[j, : len(row)] = torch.tensor(row)
            logits = model(input_ids=ids, attention_mask=ids != PAD_ID).logits.float()
            every = torch.arange(len(batch))
            picked = logits[every, [r[2] for r in batch]]
            logp = torch.log_softmax(picked, -1)[every, [r[3] for r in batch]]
            for (k, _, _, _), value in zip(batch, logp.tolist(), strict=True):
                totals[k] += value
    return totals


def _batches(rows: list[Any], max_tokens: int) -> Iterator[list[Any]]:
    """Consecutive rows while rows x the longest row's length stays within ``max_tokens``."""
    batch: list[Any] = []
    for row in rows:
        if batch and (len(batch) + 1) * len(row[1]) > max_tokens:
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch
