"""Batches of token ids, masked after they reach the device.

The data loaders yield only ``input_ids`` and each sample's ``index``; the mask is applied
in :meth:`MLMDataModule.on_after_batch_transfer`, on the batch's device (the GPU when there
is one), from (seed, key, index) alone. So the mask a sample gets cannot depend on the
number of workers, the batch order or the batch's other samples.

The shuffling order is keyed the same way, by (seed, epoch): every strategy at a given
seed sees the data in the same order, and a resumed run sees the order it would have.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from dmx.config import DataConfig, MaskConfig
from dmx.data.embedded import TokenizedCorpus, load_or_build
from dmx.data.tokenizer import MASK_ID, N_SPECIAL, PAD_ID
from dmx.masking import EVAL_KEY, TokenMasker
from dmx.masking.keyed import base_hash


class IndexedSequences(Dataset):
    """Rows of a token array, each returned with its row index (the mask's key)."""

    def __init__(self, ids: Any) -> None:
        self.ids = torch.as_tensor(ids, dtype=torch.int64)

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "index": torch.tensor(i, dtype=torch.int64)}


class EpochKeyedSampler(Sampler[int]):
    """A permutation that is a pure function of (seed, epoch); Lightning calls set_epoch."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(base_hash(self.seed, 99, self.epoch) >> 1)
        return iter(torch.randperm(self.n, generator=generator).tolist())


class MLMDataModule(L.LightningDataModule):
    """The embedded corpus, shuffled by seed and masked by the configured strategy."""

    def __init__(
        self,
        data: DataConfig,
        mask: MaskConfig,
        seed: int,
        num_workers: int = 0,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.cfg, self.mask_cfg, self.seed = data, mask, seed
        self.num_workers, self.cache_dir = num_workers, cache_dir
        self.corpus: TokenizedCorpus | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is None:
            self.corpus = load_or_build(self.cfg, self.cache_dir)
        vocab = self.corpus.vocab_size
        self.train_masker = TokenMasker(
            seed=self.seed,
            copies=self.mask_cfg.copies,
            prob=self.mask_cfg.prob,
            mask_token_frac=self.mask_cfg.mask_token_frac,
            random_token_frac=self.mask_cfg.random_token_frac,
            mask_token_id=MASK_ID,
            n_special=N_SPECIAL,
            vocab_size=vocab,
        )
        # One evaluation mask for every run and strategy: its own seed, a reserved key.
        self.eval_masker = TokenMasker(
            seed=self.cfg.eval_mask_seed,
            copies=1,
            prob=self.cfg.eval_mask_prob,
            mask_token_frac=self.cfg.eval_mask_token_frac,
            random_token_frac=self.cfg.eval_random_token_frac,
            mask_token_id=MASK_ID,
            n_special=N_SPECIAL,
            vocab_size=vocab,
        )

    @property
    def vocab_size(self) -> int:
        assert self.corpus is not None, "call setup() first"
        return self.corpus.vocab_size

    def train_dataloader(self) -> DataLoader:
        assert self.corpus is not None
        data = IndexedSequences(self.corpus.train)
        return self._loader(data, sampler=EpochKeyedSampler(len(data), self.seed))

    def val_dataloader(self) -> DataLoader:
        assert self.corpus is not None
        return self._loader(IndexedSequences(self.corpus.val), sampler=None)

    def _loader(self, data: Dataset, sampler: Sampler | None) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def mask_batch(self, batch: dict[str, torch.Tensor], *, epoch: int | None) -> dict[str, Any]:
        """Mask for training epoch ``epoch``, or with the fixed evaluation mask when None."""
        masker, key = (
            (self.eval_masker, EVAL_KEY)
            if epoch is None
            else (self.train_masker, self.train_masker.key(epoch))
        )
        masked = masker(batch["input_ids"], batch["index"], key)
        return {
            "input_ids": masked.input_ids,
            "labels": masked.labels,
            "selected": masked.selected,
            "attention_mask": batch["input_ids"] != PAD_ID,
            "index": batch["index"],
        }

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> Any:
        training = self.trainer is not None and self.trainer.training
        return self.mask_batch(batch, epoch=self.trainer.current_epoch if training else None)
