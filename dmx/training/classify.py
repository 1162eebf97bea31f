"""Sentence classification on top of the pretrained encoder, as a LightningModule of its own.

Fine-tuning is a different task from pretraining (a batch of labelled sentences, one label
each, scored by accuracy and F1), so it lives beside :class:`~dmx.training.mlm.MLMModule`
rather than as a branch inside it. What the two share is applied the same way: the
attention pattern of the ``attention`` group (keyed by the step in training, by
``EVAL_STEP`` in evaluation, the learned gate's penalty included) and the optimiser
(AdamW with BERT's decay exemptions, linear warm-up then linear decay, :mod:`dmx.training.optim`).
So a pattern is compared under the same rules whether the encoder is pretrained or not.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torchmetrics.aggregation import CatMetric, MeanMetric, SumMetric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from dmx.config import AttentionConfig, FinetuneConfig, OptimConfig
from dmx.data.glue import GlueTask
from dmx.masking.attention_masks import EVAL_STEP, AttentionPattern, combine, gate_penalty
from dmx.model import MaskedLM
from dmx.training.optim import build_optimizer, lr_lambda
from dmx.training.scores import metric as score

log = logging.getLogger("dmx")

# The dev metrics, by the names train.py writes them under (finetune_<name>).
DEV_METRICS = ("acc", "f1", "precision", "recall")


def pool(hidden: torch.Tensor, padding: torch.Tensor, how: str) -> torch.Tensor:
    """A sentence's vector from its hidden states (batch, length, d_model).

    ``cls``: the first position's state, which [CLS] occupies (BERT's choice: pretraining
    let every token feed into it). ``mean``: the mean over real tokens ([CLS] and [SEP]
    included, [PAD] not), which does not rely on one position having gathered everything,
    and so still works under patterns where [CLS] sees little (causal, window).
    """
    if how == "cls":
        return hidden[:, 0]
    if how == "mean":
        weights = padding.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
    raise ValueError(f"unknown pooling {how!r}")


def finetune_optim(cfg: FinetuneConfig, lr: float) -> OptimConfig:
    """The fine-tuning optimiser: the cell's lr, its own decay and warm-up, decaying linearly
    to 0 at the last step as BERT's fine-tuning does; the betas stay the pretraining ones."""
    return OptimConfig(
        lr=lr, weight_decay=cfg.weight_decay, warmup_frac=cfg.warmup_frac, final_lr_frac=0.0
    )


class ClassifierModule(L.LightningModule):
    """Pooled hidden state -> dropout -> Linear(d_model, n_classes), cross-entropy.

    The encoder is the pretraining run's own :class:`MaskedLM` object, trained further in
    place; its MLM head is not used here, and is frozen so that neither the optimiser nor
    distributed training waits on parameters that get no gradient.
    """

    def __init__(
        self,
        encoder: MaskedLM,
        n_classes: int,
        cfg: FinetuneConfig,
        attention: AttentionConfig | None = None,
        seed: int = 0,
        *,
        glue: GlueTask | None = None,
        dev_names: tuple[str, ...] = ("dev",),
        lr: float = 5.0e-4,
    ) -> None:
        super().__init__()
        self.encoder, self.cfg, self.lr = encoder, cfg, lr
        self.attention_cfg = attention or AttentionConfig()
        self.pattern = AttentionPattern.from_config(self.attention_cfg, seed)
        if self.attention_cfg.pattern == "causal" and cfg.pooling == "cls":
            log.warning(
                "attention=causal with finetune.pooling=cls: [CLS] comes first and so sees "
                "only itself; the classifier reads nothing of the sentence. Use "
                "finetune.pooling=mean"
            )
        encoder.head_transform.requires_grad_(False)
        encoder.head_bias.requires_grad_(False)
        self.dropout = nn.Dropout(cfg.dropout)
        # A GLUE task is scored by GLUE's metrics on every dev split; STS-B is a regression
        # (one output, squared error), every other task a classification.
        self.glue, self.dev_names = glue, dev_names
        self.regression = glue is not None and glue.is_regression
        self.head = nn.Linear(encoder.shape.d_model, 1 if self.regression else n_classes)
        nn.init.normal_(self.head.weight, mean=0.0, std=0.02)  # as the encoder's own Linears
        nn.init.zeros_(self.head.bias)
        self.n_classes = n_classes
        # Over the whole dev split: accuracy over examples (micro); F1, precision and recall
        # per class, then averaged (macro), so a rare class counts as much as a common one.
        self.dev_metrics = nn.ModuleDict(
            {
                "acc": MulticlassAccuracy(n_classes, average="micro"),
                "f1": MulticlassF1Score(n_classes, average="macro"),
                "precision": MulticlassPrecision(n_classes, average="macro"),
                "recall": MulticlassRecall(n_classes, average="macro"),
            }
            if glue is None
            else {}  # a GLUE task is scored by GLUE's own metrics, below
        )
        # GLUE's metrics are computed over a whole split's predictions (correlations do not
        # average over batches): every prediction and label of each dev split is kept.
        self.dev_predictions = nn.ModuleList(CatMetric() for _ in dev_names)
        self.dev_gold = nn.ModuleList(CatMetric() for _ in dev_names)
        self.dev_loss_sum, self.dev_count = SumMetric(), SumMetric()
        self.train_loss = MeanMetric()
        # Every validation's scores (DEV_METRICS or GLUE's, and the loss) with its epoch and
        # step: the protocol takes the best.
        self.history: list[dict[str, float]] = []

    def forward(
        self,
        input_ids: torch.Tensor,
        padding: torch.Tensor,
        step: int = EVAL_STEP,
        token_types: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (batch, n_classes), or scores (batch, 1) for a regression, under the
        pattern of ``step``, and the mean learned key weight (learned_gate only)."""
        allowed = self.pattern.allowed(input_ids.shape[1], input_ids.device, step)
        mask = combine(allowed, padding)
        hidden, gate_mean = self.encoder.encode(input_ids, padding, mask, token_types)
        pooled = pool(hidden, padding, self.cfg.pooling)
        return self.head(self.dropout(pooled)), gate_mean

    def loss(self, outputs: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
        """Squared error of the score for a regression, cross-entropy otherwise."""
        if self.regression:
            return F.mse_loss(outputs.float().squeeze(-1), labels.float(), reduction=reduction)
        return F.cross_entropy(outputs.float(), labels, reduction=reduction)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits, gate_mean = self(
            batch["input_ids"], batch["attention_mask"], self.global_step, batch.get("token_types")
        )
        loss = self.loss(logits, batch["label"], "mean")
        if gate_mean is not None:
            loss = loss + gate_penalty(
                gate_mean, self.attention_cfg.density, self.attention_cfg.gate_penalty
            )
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"fine-tuning loss is {loss.item()} at step {self.global_step}"
            )
        self.train_loss.update(loss.detach(), weight=batch["label"].numel())
        self.log("finetune/loss", loss.detach(), prog_bar=True)
        return loss

    def on_train_epoch_start(self) -> None:
        self.train_loss.reset()

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        outputs, _ = self(
            batch["input_ids"], batch["attention_mask"], EVAL_STEP, batch.get("token_types")
        )
        labels = batch["label"]
        if dataloader_idx == 0:  # the dev loss is the task's own dev split's
            self.dev_loss_sum.update(self.loss(outputs, labels, "sum"))
            self.dev_count.update(labels.numel())
        predictions = outputs.float().squeeze(-1) if self.regression else outputs.argmax(dim=-1)
        if self.glue is not None:
            self.dev_predictions[dataloader_idx].update(predictions)
            self.dev_gold[dataloader_idx].update(labels)
        else:
            for metric in self.dev_metrics.values():
                metric.update(predictions, labels)

    def _glue_scores(self) -> dict[str, float]:
        """GLUE's metrics of every dev split: ``acc`` for dev, ``mm_acc`` for MNLI's
        mismatched split (dev_mm)."""
        assert self.glue is not None
        scores = {}
        for name, predicted, gold in zip(
            self.dev_names, self.dev_predictions, self.dev_gold, strict=True
        ):
            prefix = "" if name == "dev" else f"{name.removeprefix('dev_')}_"
            p, g = predicted.compute(), gold.compute()
            n_classes = max(2, self.head.out_features)
            for metric in self.glue.metrics:
                scores[prefix + metric] = score(metric, p, g, n_classes)
        return scores

    def on_validation_epoch_end(self) -> None:
        if self.glue is not None:
            scores = self._glue_scores()
        else:
            scores = {name: float(metric.compute()) for name, metric in self.dev_metrics.items()}
        logged: dict[str, Any] = {f"dev/{name}": value for name, value in scores.items()}
        logged["dev/loss"] = self.dev_loss_sum.compute() / self.dev_count.compute().clamp_min(1)
        if self.train_loss.update_called:
            logged["finetune/epoch_loss"] = self.train_loss.compute()
        self.log_dict(logged, prog_bar=True)
        # Inside fit, the epoch under way; in the closing validate() after trainer.max_steps
        # stopped an epoch early, fit has already counted that epoch.
        fitting = self.trainer.state.fn == TrainerFn.FITTING
        epoch = self.current_epoch + 1 if fitting else max(self.current_epoch, 1)
        self.history.append(
            {"epoch": epoch, "step": self.global_step, **scores, "loss": float(logged["dev/loss"])}
        )
        for metric in (
            *self.dev_metrics.values(),
            *self.dev_predictions,
            *self.dev_gold,
            self.dev_loss_sum,
            self.dev_count,
        ):
            metric.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        optim = finetune_optim(self.cfg, self.lr)
        optimizer = build_optimizer(self, optim)
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(optim, total))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


__all__ = ["DEV_METRICS", "ClassifierModule", "finetune_optim", "pool"]
