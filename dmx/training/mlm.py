"""Masked-language-model pretraining as a LightningModule.

The batch arrives already masked (the DataModule masks it on the device, from its key),
so this module knows nothing of token-masking strategies. It applies the attention
pattern of the step (a pure function of (seed, step), see :mod:`dmx.masking.attention_masks`),
sums the loss over the selected tokens, and keeps token-weighted totals for validation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torchmetrics.aggregation import MeanMetric, SumMetric

from dmx.common import shares
from dmx.config import AttentionConfig, OptimConfig
from dmx.masking.attention_masks import EVAL_STEP, AttentionPattern, combine, density, gate_penalty
from dmx.model import MaskedLM, MLMOutput
from dmx.training.optim import build_optimizer, lr_lambda

# The persistent metrics' states, each a sum (SumMetric's total; MeanMetric's weighted sum
# and weight), so the states of several processes add up to the run's.
RUNNING_SUMS = (
    "train_loss_sum.sum_value",
    "train_count.sum_value",
    "attention_density.mean_value",
    "attention_density.weight",
)


class MLMModule(L.LightningModule):
    def __init__(
        self,
        model: MaskedLM,
        optim: OptimConfig,
        attention: AttentionConfig | None = None,
        seed: int = 0,
        observe_losses: Callable[
            [torch.Tensor, torch.Tensor, torch.Tensor], dict[str, float] | None
        ]
        | None = None,
    ) -> None:
        """``observe_losses(ids, losses, hits)`` receives every training step's selected
        token ids, their cross-entropies and whether the top prediction was right (adaptive
        masking: MLMDataModule.observe_losses), and returns a summary to log when it changed
        the masks."""
        super().__init__()
        self.model, self.optim = model, optim
        self.observe_losses = observe_losses
        self.attention_cfg = attention or AttentionConfig()
        self.pattern = AttentionPattern.from_config(self.attention_cfg, seed)
        # Token-weighted sums, so a loss is the mean over every selected token of a split
        # (not a mean of batch means) and stays exact when gathered across processes.
        self.val_loss_sum, self.val_correct, self.val_count = SumMetric(), SumMetric(), SumMetric()
        self.train_loss_sum, self.train_count = SumMetric(), SumMetric()
        # The realised attention density of the training steps (learned_gate: mean weight).
        self.attention_density = MeanMetric()
        # In every checkpoint, so a run resumed mid-epoch ends with the same sums.
        for metric in (self.train_loss_sum, self.train_count, self.attention_density):
            metric.persistent(True)
        self.tokens_seen = 0

    def forward_batch(self, batch: dict[str, torch.Tensor], step: int) -> MLMOutput:
        """The model on a masked batch under the attention pattern of ``step``; the bench
        times exactly this."""
        padding = batch["attention_mask"]
        allowed = self.pattern.allowed(padding.shape[1], padding.device, step)
        mask = combine(allowed, padding)
        per_token = self.training and self.observe_losses is not None
        out = self.model(
            batch["input_ids"], batch["labels"], batch["selected"], padding, mask, per_token
        )
        if self.training and not self.pattern.learned and allowed is not None:
            self.attention_density.update(density(mask, padding))
        return out

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.forward_batch(batch, self.global_step)
        tokens = batch["attention_mask"].sum()
        eligible = batch.get("n_eligible", tokens)
        count, world = out.count, self.trainer.world_size if self._trainer else 1
        if world > 1:
            # The loss of the global batch, as one process computes it: each process divides
            # its summed loss by the global count of selected tokens, and DDP's gradient
            # average (a mean over processes) is undone by the factor ``world``.
            count, tokens, eligible = self.trainer.strategy.reduce(
                torch.stack([out.count, tokens, eligible.to(out.count.dtype)]), reduce_op="sum"
            )
        loss = out.loss_sum / count.clamp_min(1) * world
        if out.gate_mean is not None:
            self.attention_density.update(out.gate_mean.detach())
            loss = loss + gate_penalty(
                out.gate_mean, self.attention_cfg.density, self.attention_cfg.gate_penalty
            )
            self.log("train/gate_mean", out.gate_mean.detach())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.global_step}")
        if self.observe_losses is not None and out.token_losses is not None:
            ids = batch["labels"][batch["selected"]]
            moved = self.observe_losses(ids, out.token_losses, out.token_hits)
            if moved and self.logger is not None:
                # Straight to the logger: an update every mask.adapt_every steps would be
                # dropped by self.log's log_every_n_steps whenever the two do not divide.
                metrics = {f"mask/{k}": float(v) for k, v in moved.items()}
                self.logger.log_metrics(metrics, step=self.global_step)
        self.train_loss_sum.update(out.loss_sum.detach())  # summed across processes later
        self.train_count.update(out.count)
        self.tokens_seen += int(tokens)
        # Each process holds its share of the global loss: their sum is the loss.
        synced = {"sync_dist": True, "reduce_fx": "sum"} if world > 1 else {}
        self.log("train/loss", loss.detach() / world, prog_bar=True, **synced)
        if self._trainer is not None and self.trainer.optimizers:
            # Already the same in every process (the counts were summed above). Tokens seen
            # is the history's x axis in W&B.
            self.log_dict(
                {
                    "train/lr": self.trainer.optimizers[0].param_groups[0]["lr"],
                    "train/tokens_seen": float(self.tokens_seen),
                    "train/mask_rate": count / eligible.clamp_min(1),
                }
            )
        return loss

    def on_train_epoch_start(self) -> None:
        # Not called for the epoch a run resumes in mid-way: its sums came with the checkpoint.
        self.train_loss_sum.reset()
        self.train_count.reset()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # A pattern redrawn every step is scored under one reserved draw, the same for every
        # validation, as the token mask is.
        out = self.forward_batch(batch, EVAL_STEP)
        self.val_loss_sum.update(out.loss_sum)
        self.val_correct.update(out.correct)
        self.val_count.update(out.count)

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
        self.log("val/tokens_seen", float(self.tokens_seen))  # W&B's x axis for val/*
        for metric in (self.val_loss_sum, self.val_correct, self.val_count):
            metric.reset()

    def realised_attention_density(self) -> float | None:
        """Mean allowed share of (query, key) pairs over training; None for ``full``."""
        if not self.attention_density.update_called:
            return None
        return float(self.attention_density.compute())

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["dmx_tokens_seen"] = self.tokens_seen
        # Under data parallelism each process holds its share of the running sums: all of
        # them go into the checkpoint (every process saves, so every process is here).
        gather = shares.gather(self._trainer)
        if gather is not None:
            state = checkpoint["state_dict"]
            checkpoint["dmx_running_sums"] = {key: gather(state[key]) for key in RUNNING_SUMS}
            checkpoint["dmx_world"] = self.trainer.world_size

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.tokens_seen = int(checkpoint.get("dmx_tokens_seen", 0))
        # Each process takes its own share back (this hook runs before the weights and the
        # metric states are loaded from the checkpoint's state_dict).
        saved = checkpoint.get("dmx_running_sums")
        state = checkpoint["state_dict"]
        if saved is not None:
            state.update(saved)
        own = shares.own(self._trainer, checkpoint.get("dmx_world", 1))
        for key in RUNNING_SUMS:
            if key in state:
                state[key] = own(state[key])

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.model, self.optim)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(self.optim, total))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
