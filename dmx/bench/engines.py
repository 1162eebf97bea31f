"""The engines ``dmx bench`` times, one optimiser step at a time, phase by phase: dmx's bare
step (its DataModule, masker, module and optimiser, without Lightning), HuggingFace's
BertForMaskedLM with its collator, and a clock for the real Lightning loop."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from dmx.bench.results import PHASES
from dmx.common.errors import UserError
from dmx.common.hardware import synchronize
from dmx.config import Config
from dmx.data.datamodule import MLMDataModule
from dmx.masking.attention_masks import combine
from dmx.model import EncoderShape, MaskedLM
from dmx.training.optim import build_optimizer, lr_lambda

IGNORE = -100  # the label cross-entropy skips: HuggingFace's convention


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _epochs(loader: torch.utils.data.DataLoader) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """Batches without end, epoch by epoch, as Lightning feeds them (set_epoch first)."""
    epoch = 0
    while True:
        sampler = loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        for batch in loader:
            yield epoch, batch
        epoch += 1


class Step:
    """One optimiser step at a time, timed by phase; subclasses feed and run a model."""

    def __init__(self, model: torch.nn.Module, config: Config, device: torch.device, total: int):
        self.model, self.device, self.precision = model.to(device), device, "fp32"
        self.grad_clip = config.trainer.grad_clip
        self.optimizer = build_optimizer(self.model, config.optim)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(config.optim, total)
        )
        self.model.train()

    def batch(self) -> Any:
        raise NotImplementedError

    def loss(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self) -> dict[str, float]:
        times = [time.perf_counter()]

        def mark() -> None:
            synchronize(self.device)
            times.append(time.perf_counter())

        batch = self.batch()
        mark()
        with _autocast(self.device, self.precision):
            loss = self.loss(batch)
        mark()
        loss.backward()
        mark()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        mark()
        return {name: b - a for name, (a, b) in zip(PHASES, itertools.pairwise(times), strict=True)}


class DmxStep(Step):
    """dmx's step without Lightning: the DataModule's loader and masker, the module's
    forward and loss, the same optimiser."""

    def __init__(
        self, module: Any, data: MLMDataModule, config: Config, device: torch.device, total: int
    ):
        super().__init__(module, config, device, total)
        self.module, self.data, self.total = module, data, total
        self.batches = _epochs(data.train_dataloader())
        self.step = 0

    def batch(self) -> dict[str, torch.Tensor]:
        epoch, batch = next(self.batches)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        progress = self.step / max(1, self.total - 1)
        self.step += 1
        return self.data.mask_batch(batch, epoch=epoch, progress=progress)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.module.forward_batch(batch, self.step)
        return out.loss_sum / out.count.clamp_min(1)


class DmxFullHeadStep(DmxStep):
    """dmx's step with its head scoring every position, as BertForMaskedLM's does, and the
    loss over the masked ones: HuggingFace's FLOPs per token, so its speed against
    HuggingFace's is the implementation's alone, without the sparse head's gain."""

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        model, padding = self.module.model, batch["attention_mask"]
        allowed = self.module.pattern.allowed(padding.shape[1], padding.device, self.step)
        hidden, _ = model.encode(batch["input_ids"], padding, combine(allowed, padding))
        logits = F.linear(model.head_transform(hidden), model.tok.weight, model.head_bias)
        targets = torch.where(batch["selected"], batch["labels"], IGNORE)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)


class HFStep(Step):
    """HuggingFace's BertForMaskedLM fed by its own collator, from the same token rows."""

    def __init__(
        self,
        model: torch.nn.Module,
        collator: Callable,
        rows: list[list[dict]],
        config: Config,
        device: torch.device,
        total: int,
    ):
        super().__init__(model, config, device, total)
        self.collator, self.rows, self.i = collator, rows, 0

    def batch(self) -> dict[str, torch.Tensor]:
        chunk = self.rows[self.i % len(self.rows)]
        self.i += 1
        return {k: v.to(self.device, non_blocking=True) for k, v in self.collator(chunk).items()}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch).loss


class StepClock(L.Callback):
    """Batch-end times of the Lightning loop: the span from the warm-up's end to the last
    batch's end covers everything the loop does per step, data loading included."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, *args: Any) -> None:
        synchronize(args[1].device)
        self.ends.append(time.perf_counter())


def hf_model(config: Config, vocab_size: int, attention: str = "sdpa") -> torch.nn.Module:
    """BertForMaskedLM at dmx's shape with ``attention`` (sdpa or eager), initialised from
    one seed, so the two attention implementations start from the same weights."""
    try:
        from transformers import BertConfig, BertForMaskedLM
    except ImportError:
        raise UserError("dmx bench --vs-hf needs transformers: pip install -e '.[bench]'") from None
    model_cfg = config.model
    hf_config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=model_cfg.d_model,
        num_hidden_layers=model_cfg.n_layers,
        num_attention_heads=model_cfg.n_heads,
        intermediate_size=model_cfg.d_ff,
        max_position_embeddings=model_cfg.max_seq_len,
        # The same regularisation as dmx's model, so both do the same work per step.
        hidden_dropout_prob=model_cfg.dropout,
        attention_probs_dropout_prob=model_cfg.attn_dropout,
        attn_implementation=attention,
    )
    torch.manual_seed(0)
    return BertForMaskedLM(hf_config)


def hf_flops_per_token(config: Config, vocab_size: int, seq_len: int) -> float:
    """BertForMaskedLM's training FLOPs per token: dmx's count, with the vocabulary
    projection at every position (its head scores all of them)."""
    shape = EncoderShape.from_config(config.model, vocab_size)
    return MaskedLM(shape).flops_per_token(seq_len, 1.0)
