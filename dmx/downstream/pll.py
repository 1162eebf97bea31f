"""Pseudo-log-likelihood of sentences under dmx's own encoder, fast.

PLL (Salazar et al. 2020) masks each token of a sentence in turn and sums the
log-probabilities the model gives the true token; PLL-word-l2r (Kauf and Ivanova 2023) also
masks, when scoring a token, the tokens to its right within the same word, so a word split
into several tokens is not scored as if its later pieces were given away by the earlier ones.

A sentence of n tokens needs n masked copies. Three things make that cheap here:

- copies are grouped by length (``[CLS]`` sentence ``[SEP]``) and batched within a group, so
  no row is ever padded and attention never needs a mask tensor (SDPA's fastest kernel);
- the last block and the MLM head run at the one scored position of each copy only
  (:meth:`~dmx.model.MaskedLM.logits_at`), not at every position;
- everything runs under ``torch.inference_mode``, in bf16 autocast when asked.

Imports torch and the model only (and the list of scorings): the caller tokenizes, this
file scores ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from dmx.common.choices import SCORINGS
from dmx.model import MaskedLM

PLL_WORD_L2R, PLL = SCORINGS  # every allowed value is listed once, in dmx.common.choices


@dataclass(frozen=True)
class Sentence:
    """A sentence's token ids (no special tokens) and, per token, the index of its word."""

    ids: tuple[int, ...]
    words: tuple[int, ...]


def copies_mask(words: torch.Tensor, scoring: str) -> torch.Tensor:
    """Which tokens each masked copy hides: (n, n) bool, row i for the copy scoring token
    i. PLL hides token i alone; PLL-word-l2r also the later tokens of i's word."""
    n = words.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=words.device)
    if scoring == PLL:
        return eye
    if scoring != PLL_WORD_L2R:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}; got {scoring!r}")
    later = torch.ones(n, n, dtype=torch.bool, device=words.device).triu(1)
    same_word = words[:, None] == words[None, :]
    return eye | (later & same_word)


def pll_scores(
    model: MaskedLM,
    sentences: Sequence[Sentence],
    scoring: str,
    *,
    cls_id: int,
    sep_id: int,
    mask_id: int,
    device: torch.device | str = "cpu",
    bf16: bool = False,
    max_tokens: int = 4096,
) -> list[float]:
    """Each sentence's PLL (natural log), in order. ``max_tokens`` bounds a batch's
    rows x length, so memory stays flat whatever the sentences' lengths."""
    device = torch.device(device)
    totals = torch.zeros(len(sentences), dtype=torch.float64)
    was_training = model.training
    model.eval()
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    )
    try:
        with torch.inference_mode(), autocast:
            for index, ids, targets, positions in _batches(
                sentences, scoring, cls_id, sep_id, mask_id, device, max_tokens
            ):
                logits = model.logits_at(ids, positions).float()
                logp = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
                totals.index_add_(0, index, logp.double().cpu())
    finally:
        model.train(was_training)
    return totals.tolist()


def _batches(
    sentences: Sequence[Sentence],
    scoring: str,
    cls_id: int,
    sep_id: int,
    mask_id: int,
    device: torch.device,
    max_tokens: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(sentence index, masked ids, target ids, scored positions) per batch: every
    masked copy of every sentence, sentences of one length together, copies in order."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for k, sentence in enumerate(sentences):
        if sentence.ids:
            by_length[len(sentence.ids)].append(k)
    for n in sorted(by_length):
        members = by_length[n]
        length = n + 2
        per_batch = max(1, max_tokens // (length * n))  # sentences per batch: n rows each
        for start in range(0, len(members), per_batch):
            chosen = members[start : start + per_batch]
            ids = torch.tensor([sentences[k].ids for k in chosen], dtype=torch.long)
            words = torch.tensor([sentences[k].words for k in chosen], dtype=torch.long)
            hide = torch.stack([copies_mask(w, scoring) for w in words])  # (m, n, n)
            rows = ids[:, None, :].expand(-1, n, -1).clone()  # (m, n copies, n)
            rows[hide] = mask_id
            rows = rows.reshape(-1, n)
            framed = torch.empty(len(rows), length, dtype=torch.long)
            framed[:, 0] = cls_id
            framed[:, 1:-1] = rows
            framed[:, -1] = sep_id
            index = torch.tensor(chosen, dtype=torch.long).repeat_interleave(n)
            positions = torch.arange(1, n + 1).repeat(len(chosen))
            yield index, framed.to(device), ids.reshape(-1).to(device), positions.to(device)
