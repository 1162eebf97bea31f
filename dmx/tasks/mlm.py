"""Masked-language-model pretraining as a LightningModule.

The batch arrives already masked (the DataModule masks it on the device, from its key),
so this module knows nothing of strategies: it sums the loss over the selected tokens and
keeps token-weighted totals for validation.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torchmetrics.aggregation import SumMetric

from dmx.config import OptimConfig
from dmx.model import MaskedLM
from dmx.optim import build_optimizer, lr_lambda


class MLMModule(L.LightningModule):
    def __init__(self, model: MaskedLM, optim: OptimConfig) -> None:
        super().__init__()
        self.model, self.optim = model, optim
        # Token-weighted sums, so a loss is the mean over every selected token of a split
        # (not a mean of batch means) and stays exact when gathered across processes.
        self.val_loss_sum, self.val_correct, self.val_count = SumMetric(), SumMetric(), SumMetric()
        self.train_loss_sum, self.train_count = SumMetric(), SumMetric()
        self.tokens_seen = 0

    def _loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return self.model(
            batch["input_ids"], batch["labels"], batch["selected"], batch["attention_mask"]
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss_sum, _, count = self._loss(batch)
        loss = loss_sum / count.clamp_min(1)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.global_step}")
        self.train_loss_sum.update(loss_sum.detach())
        self.train_count.update(count)
        self.tokens_seen += int(batch["attention_mask"].sum())
        self.log("train/loss", loss.detach(), prog_bar=True)
        return loss

    def on_train_epoch_start(self) -> None:
        self.train_loss_sum.reset()
        self.train_count.reset()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss_sum, correct, count = self._loss(batch)
        self.val_loss_sum.update(loss_sum)
        self.val_correct.update(correct)
        self.val_count.update(count)

    def on_validation_epoch_end(self) -> None:
        count = self.val_count.compute().clamp_min(1)
        loss = self.val_loss_sum.compute() / count
        metrics = {
            "val/loss": loss,
            "val/acc": self.val_correct.compute() / count,
            "val/ppl": torch.exp(loss.clamp_max(50)),
        }
        if self.train_count.update_called:
            metrics["train/epoch_loss"] = self.train_loss_sum.compute() / self.train_count.compute()
        self.log_dict(metrics, prog_bar=True)
        for metric in (self.val_loss_sum, self.val_correct, self.val_count):
            metric.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.optim)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(self.optim, total))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
