"""Batches of token ids, masked after they reach the device.

The data loaders yield only ``input_ids`` and each sample's ``index``; the mask is applied
in :meth:`MLMDataModule.on_after_batch_transfer`, on the batch's device (the GPU when there
is one), from (seed, key, index) alone. So the mask a sample gets cannot depend on the
number of workers, the batch order or the batch's other samples.

The shuffling order is keyed the same way, by (seed, epoch): every strategy at a given
seed sees the data in the same order, and a resumed run sees the order it would have.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from dmx.common import shares
from dmx.common.errors import UserError
from dmx.config import DataConfig, MaskConfig
from dmx.data.corpus import Corpus, load_corpus
from dmx.data.sequences import Sequences
from dmx.data.statistics import corpus_statistics
from dmx.data.tokenizer import MASK_ID, N_SPECIAL, PAD_ID
from dmx.masking import EVAL_KEY, TokenMasker, rate_at
from dmx.masking.adaptive import AdaptiveRates
from dmx.masking.diagnostics import MaskStats
from dmx.masking.keyed import base_hash

log = logging.getLogger(__name__)


class IndexedSequences(Dataset):
    """A split's rows, each returned with its row index (the mask's key) and the word
    starts beside it (whole-word and span masking need them), and the PMI unit starts when
    ``units`` (the split's unit-start stream) is given."""

    def __init__(self, rows: Sequences, units: np.ndarray | None = None) -> None:
        self.rows, self.units = rows, units

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids, word_starts = self.rows[i]
        item = {
            "input_ids": ids,
            "word_starts": word_starts,
            "index": torch.tensor(i, dtype=torch.int64),
        }
        if self.units is not None:
            item["unit_starts"] = self.rows.starts_of(i, self.units)
        return item


class EpochKeyedSampler(Sampler[int]):
    """A permutation that is a pure function of (seed, epoch); Lightning calls set_epoch.

    Under data parallelism every process holds one (``rank`` of ``world``) and yields its
    share of each global batch of ``batch_size``: rank r gets the r-th slice of batch b, so
    the processes together see exactly the batches one process would, in the same order,
    and (masks being keyed by row index) with the same masks. A final global batch too
    small to give every process a row is dropped when ``drop_tiny`` (training, where every
    process must take the same number of steps); validation keeps it.
    """

    def __init__(
        self,
        n: int,
        seed: int | None,
        batch_size: int | None = None,
        rank: int = 0,
        world: int = 1,
        drop_tiny: bool = True,
    ) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.batch_size = batch_size or n or 1
        self.rank, self.world, self.drop_tiny = rank, world, drop_tiny
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """Start epoch ``epoch`` after its first ``batches_done`` batches, once: a run resumed
        from a checkpoint taken mid-epoch sees the rest of that epoch, in the same order.
        The length stays the epoch's, as Lightning counts the skipped batches as done."""
        self._resume = (epoch, batches_done)

    def _order(self) -> list[int]:
        if self.seed is None:  # validation: in order
            return list(range(self.n))
        generator = torch.Generator().manual_seed(base_hash(self.seed, 99, self.epoch) >> 1)
        return torch.randperm(self.n, generator=generator).tolist()

    def _share(self) -> list[int]:
        order = self._order()
        if self.world == 1:
            return order
        share = []
        for start in range(0, self.n, self.batch_size):
            batch = order[start : start + self.batch_size]
            if len(batch) < self.world and self.drop_tiny:
                break
            m = len(batch)
            share += batch[m * self.rank // self.world : m * (self.rank + 1) // self.world]
        return share

    def __len__(self) -> int:
        return len(self._share()) if self.world > 1 else self.n

    def __iter__(self) -> Iterator[int]:
        share = self._share()
        if self._resume is not None and self._resume[0] == self.epoch:
            share = share[self._resume[1] * (self.batch_size // self.world) :]
            self._resume = None
        return iter(share)


class MLMDataModule(L.LightningDataModule):
    """The configured corpus, shuffled by seed and masked by the configured strategy."""

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
        self.corpus: Corpus | None = None
        self.stats = MaskStats()
        self._total_steps: int | None = None
        self._resume: tuple[int, int] | None = None  # (epoch, batches done) from a checkpoint
        self._train_sampler: EpochKeyedSampler | None = None
        # Masks that depend on the corpus or the model (dmx.masking.weights): the PMI unit
        # starts of the training stream, fixed per-id weights (corpus, informask), or the
        # adaptive table (loss, amlm), which is training state and travels in state_dict.
        self.units: np.ndarray | None = None
        self.weights: torch.Tensor | None = None
        self.adaptive: AdaptiveRates | None = None
        self._adaptive_state: dict[str, Any] | None = None  # restored before setup
        self._own: shares.Transform | None = None  # this process's share of saved sums
        self._statistics_done = False

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is None:
            self.corpus = load_corpus(self.cfg, self.cache_dir)
        vocab = self.corpus.vocab_size
        if not self._statistics_done:  # computed once, whatever the stages set up
            statistics = corpus_statistics(self.corpus, self.mask_cfg)
            self.units, self.weights = statistics.units, statistics.weights
            self.adaptive = statistics.adaptive
            if self.adaptive is not None and self._adaptive_state is not None:
                self.adaptive.load_state_dict(self._adaptive_state, self._own)
            self._statistics_done = True
        tokens = {"vocab_size": vocab, "mask_token_id": MASK_ID, "n_special": N_SPECIAL}
        self.train_masker = TokenMasker.from_config(self.mask_cfg, seed=self.seed, **tokens)
        # One evaluation mask for every run and strategy: its own seed, a reserved key.
        self.eval_masker = TokenMasker.for_evaluation(self.cfg, **tokens)

    @property
    def vocab_size(self) -> int:
        assert self.corpus is not None, "call setup() first"
        return self.corpus.vocab_size

    def _ranks(self) -> tuple[int, int]:
        """(rank, world size): data.batch_size is the global batch, split across processes,
        so adding devices does not change the experiment."""
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        if self.cfg.batch_size % world:
            raise UserError(
                f"data.batch_size={self.cfg.batch_size} is the global batch and must divide "
                f"evenly across {world} processes; make it a multiple of {world}"
            )
        return rank, world

    def train_dataloader(self) -> DataLoader:
        assert self.corpus is not None
        data = IndexedSequences(self.corpus.train, self.units)
        rank, world = self._ranks()
        sampler = EpochKeyedSampler(len(data), self.seed, self.cfg.batch_size, rank, world)
        if self._resume is not None:
            sampler.resume_at(*self._resume)
        self._train_sampler = sampler
        return self._loader(data, sampler, world)

    def state_dict(self) -> dict[str, Any]:
        """Where training is within its epoch, and the mask statistics so far: saved in
        every checkpoint, so a resumed run continues the data and the diagnostics exactly."""
        trainer = self.trainer
        progress = trainer.fit_loop.epoch_loop.batch_progress.current if trainer else None
        # Every process saves (a checkpoint is collective): each one's counts are gathered
        # into it, and each takes its own back on resume (dmx.common.shares).
        gather = shares.gather(trainer)
        adaptive = self.adaptive
        return {
            "epoch": trainer.current_epoch if trainer else 0,
            # At on_train_batch_end, the batches of this epoch whose step is done.
            "batches_done": progress.processed if progress else 0,
            "stats": self.stats.state_dict(gather),
            "adaptive": adaptive.state_dict(gather) if adaptive is not None else None,
            "world": trainer.world_size if trainer else 1,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume = (state["epoch"], state["batches_done"])
        if self._train_sampler is not None:  # the loader may exist before the restore
            self._train_sampler.resume_at(*self._resume)
        self._own = shares.own(self.trainer, state.get("world", 1))
        self.stats.load_state_dict(state["stats"], self._own)
        adaptive = state.get("adaptive")
        if adaptive is not None:
            self._adaptive_state = adaptive
            if self.adaptive is not None:
                self.adaptive.load_state_dict(adaptive, self._own)

    def observe_losses(
        self, ids: torch.Tensor, losses: torch.Tensor, hits: torch.Tensor
    ) -> dict[str, float] | None:
        """One training step's selected tokens, their losses and hits, for adaptive masking:
        after every ``mask.adapt_every`` steps the table moves (summed across processes
        first), and its summary is returned for logging."""
        if self.adaptive is None:
            return None
        self.adaptive.observe(ids, losses, hits)
        if not self.adaptive.due():
            return None
        trainer = self.trainer
        reduce = None
        if trainer is not None and trainer.world_size > 1:
            reduce = lambda t: trainer.strategy.reduce(t, reduce_op="sum")  # noqa: E731
        step = trainer.global_step + 1 if trainer is not None else self.adaptive.updates
        return self.adaptive.update(step, reduce)

    def diagnostics(self) -> dict[str, Any]:
        """What the training masks did (dmx.masking.diagnostics), over every process's rows,
        and for adaptive masking where the per-id rates ended. Every process calls it."""
        trainer = self.trainer
        reduce = None
        if trainer is not None and trainer.world_size > 1:  # every process is here

            def reduce(t: torch.Tensor) -> torch.Tensor:
                device = trainer.strategy.root_device
                return trainer.strategy.reduce(t.to(device), reduce_op="sum").cpu()

        out: dict[str, Any] = dict(self.stats.summary(reduce))
        if self.adaptive is not None and self.adaptive.updates:
            out.update(self.adaptive.summary())
        return out

    def val_dataloader(self) -> DataLoader:
        assert self.corpus is not None
        data = IndexedSequences(self.corpus.val)
        rank, world = self._ranks()
        sampler = EpochKeyedSampler(
            len(data), None, self.cfg.batch_size, rank, world, drop_tiny=False
        )
        return self._loader(data, sampler, world)

    def _loader(self, data: Dataset, sampler: Sampler, world: int) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.cfg.batch_size // world,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def rate(self, progress: float) -> float:
        """The training mask rate at ``progress`` (0 at the first step, 1 at the last)."""
        mask = self.mask_cfg
        return rate_at(mask.schedule, mask.prob, mask.schedule_start, mask.schedule_end, progress)

    def mask_batch(
        self, batch: dict[str, torch.Tensor], *, epoch: int | None, progress: float = 0.0
    ) -> dict[str, Any]:
        """Mask for training epoch ``epoch`` at ``progress`` through training, or with the
        fixed evaluation mask when ``epoch`` is None."""
        if epoch is None:
            masked = self.eval_masker(batch["input_ids"], batch["index"], EVAL_KEY)
        else:
            started = time.perf_counter()
            key, rate = self.train_masker.key(epoch), self.rate(progress)
            if self.weights is not None and self.weights.device != batch["input_ids"].device:
                self.weights = self.weights.to(batch["input_ids"].device)  # once, not per batch
            weights = self.adaptive.weights if self.adaptive is not None else self.weights
            masked = self.train_masker(
                batch["input_ids"],
                batch["index"],
                key,
                rate=rate,
                word_starts=batch.get("word_starts"),
                unit_starts=batch.get("unit_starts"),
                weights=weights,
            )
            self.stats.update(masked, rate, time.perf_counter() - started)
            assert self.corpus is not None
            self.stats.seen(batch["index"], epoch, key, len(self.corpus.train))
        return {
            "input_ids": masked.input_ids,
            "labels": masked.labels,
            "selected": masked.selected,
            # The tokens a mask could select: the realised rate's denominator, logged per step.
            "n_eligible": masked.eligible.sum(),
            "attention_mask": batch["input_ids"] != PAD_ID,
            "index": batch["index"],
        }

    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> Any:
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return self.mask_batch(batch, epoch=None)
        if self._total_steps is None:
            self._total_steps = max(1, int(trainer.estimated_stepping_batches))
        progress = trainer.global_step / max(1, self._total_steps - 1)
        return self.mask_batch(batch, epoch=trainer.current_epoch, progress=progress)
