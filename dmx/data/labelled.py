"""A labelled task's sentences as the classifier reads them: tokenized with the pretraining
run's tokenizer, batched, and served to the Trainer.

A sentence is ``[CLS] text [SEP]`` and a pair ``[CLS] a [SEP] b [SEP]`` with its segments,
so the classifier reads the first position the way the encoder saw it in pretraining.
Batches are cut to their longest example. The tasks themselves come from
:mod:`dmx.data.task_readers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, Dataset

from dmx.data.tasks import LabelledTask
from dmx.data.tokenizer import CLS_ID, PAD_ID, SEP_ID


def encode(texts: Sequence[str], tokenizer: Tokenizer, seq_len: int) -> torch.Tensor:
    """``[CLS] text [SEP]`` per text, cut to ``seq_len`` (the text loses its end, [SEP] is
    kept) and padded with [PAD]: a (len(texts), seq_len) int64 tensor."""
    out = torch.full((len(texts), seq_len), PAD_ID, dtype=torch.int64)
    for i, encoding in enumerate(tokenizer.encode_batch(list(texts), add_special_tokens=False)):
        ids = [CLS_ID, *encoding.ids[: seq_len - 2], SEP_ID]
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return out


def encode_pairs(
    texts: Sequence[str], pairs: Sequence[str], tokenizer: Tokenizer, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] a [SEP] b [SEP]`` per pair, with its segments (0 up to the first [SEP], 1
    after), padded with [PAD] to ``max_len``: two (len(texts), max_len) int64 tensors.

    Too long a pair is cut longest first, one token at a time from the end of the longer
    sentence (the second on a tie), as BERT's and HuggingFace's ``longest_first`` do, so a
    short premise keeps all its words while a long one gives up its tail.
    """
    ids = torch.full((len(texts), max_len), PAD_ID, dtype=torch.int64)
    types = torch.zeros((len(texts), max_len), dtype=torch.int64)
    a_all = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    b_all = tokenizer.encode_batch(list(pairs), add_special_tokens=False)
    for i, (a_enc, b_enc) in enumerate(zip(a_all, b_all, strict=True)):
        a, b = truncate_longest_first(a_enc.ids, b_enc.ids, max_len - 3)
        row = [CLS_ID, *a, SEP_ID, *b, SEP_ID]
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
        types[i, len(a) + 2 : len(row)] = 1
    return ids, types


def truncate_longest_first(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """``a`` and ``b`` cut to ``budget`` tokens together, from the end of the longer one
    (``b`` on a tie)."""
    n_a, n_b = len(a), len(b)
    while n_a + n_b > budget:
        if n_a > n_b:
            n_a -= 1
        else:
            n_b -= 1
    return a[:n_a], b[:n_b]


class LabelledSequences(Dataset):
    def __init__(
        self,
        input_ids: torch.Tensor,
        labels: Sequence[int] | Sequence[float],
        token_types: torch.Tensor | None = None,
    ) -> None:
        self.input_ids, self.token_types = input_ids, token_types
        floats = any(isinstance(label, float) for label in labels)
        self.labels = torch.as_tensor(list(labels), dtype=torch.float32 if floats else torch.int64)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"input_ids": self.input_ids[i], "label": self.labels[i]}
        if self.token_types is not None:
            item["token_types"] = self.token_types[i]
        return item


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack, then cut the batch to its longest example: short sentences padded to the
    pretraining length would spend most of the attention on [PAD]. Attention patterns are
    pure functions of (query, key) positions, so a shorter batch sees the top-left corner
    of the same pattern."""
    input_ids = torch.stack([item["input_ids"] for item in items])
    padding = input_ids != PAD_ID
    length = max(1, int(padding.sum(dim=1).max()))
    batch = {
        "input_ids": input_ids[:, :length],
        "attention_mask": padding[:, :length],
        "label": torch.stack([item["label"] for item in items]),
    }
    if "token_types" in items[0]:
        batch["token_types"] = torch.stack([item["token_types"] for item in items])[:, :length]
    return batch


def sequences(
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    labels: Sequence[int] | Sequence[float],
    tokenizer: Tokenizer,
    max_len: int,
) -> LabelledSequences:
    """A split's examples, encoded as single sentences or as pairs with their segments."""
    if pairs is None:
        return LabelledSequences(encode(texts, tokenizer, max_len), labels)
    ids, types = encode_pairs(texts, pairs, tokenizer, max_len)
    return LabelledSequences(ids, labels, types)


class LabelledDataModule(L.LightningDataModule):
    """A task's train split (shuffled by a generator seeded from ``seed``) and dev split."""

    def __init__(
        self,
        task: LabelledTask,
        tokenizer: Tokenizer,
        seq_len: int,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.task, self.batch_size, self.seed = task, batch_size, seed
        self.num_workers = num_workers
        self.train_data = sequences(
            task.train_texts, task.train_pairs, task.train_labels, tokenizer, seq_len
        )
        dev = sequences(task.dev_texts, task.dev_pairs, task.dev_labels, tokenizer, seq_len)
        # dev first: its score is the task's; MNLI's mismatched split follows
        self.dev_data = [dev] + [
            sequences(ex.texts, ex.pairs, ex.labels, tokenizer, seq_len) for _, ex in task.more_dev
        ]

    @property
    def dev_names(self) -> tuple[str, ...]:
        """The dev splits, in the order of the validation loaders."""
        return ("dev", *(name for name, _ in self.task.more_dev))

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return self._loader(self.train_data, shuffle=True, generator=generator)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(data, shuffle=False, generator=None) for data in self.dev_data]
        return loaders[0] if len(loaders) == 1 else loaders

    def _loader(self, data: Dataset, shuffle: bool, generator: Any) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )


__all__ = [
    "LabelledDataModule",
    "collate",
    "encode",
    "encode_pairs",
    "sequences",
    "truncate_longest_first",
]
