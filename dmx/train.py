"""The LightningModule, the run-folder callback, and the Hydra entry that builds a run.

``main`` is a real ``@hydra.main`` entry (the ``dmx-train`` script; ``dmx train`` and
``dmx sweep`` hand it their arguments), so multirun, launchers and Lightning's process
re-launch all keep working. ``train`` does the work from a checked :class:`Config` and a
run folder, and is what tests call.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import resource
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf
from torchmetrics.aggregation import SumMetric

from dmx.config import Config, OptimConfig, to_config
from dmx.data.datamodule import MLMDataModule
from dmx.errors import UserError
from dmx.model import EncoderShape, MaskedLM
from dmx.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_RUNNING,
    atomic_write_text,
    write_history,
    write_json,
)

log = logging.getLogger("dmx")


class _DropAdverts(logging.Filter):
    """Lightning advertises its cloud products on every start; that is noise in a run log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())
warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*")  # inside Lightning, not ours


class MLMModule(L.LightningModule):
    """Masked-language-model pretraining; the batch arrives already masked by the DataModule."""

    def __init__(self, model: MaskedLM, optim: OptimConfig) -> None:
        super().__init__()
        self.model, self.optim = model, optim
        # Token-weighted sums, so a loss is the mean over every selected token of a split
        # (not a mean of batch means) and stays exact when gathered across processes.
        self.val_loss_sum, self.val_correct, self.val_count = SumMetric(), SumMetric(), SumMetric()
        self.train_loss_sum, self.train_count = SumMetric(), SumMetric()
        self.tokens_seen = 0

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss_sum, _, count = self.model(
            batch["input_ids"], batch["labels"], batch["selected"], batch["attention_mask"]
        )
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
        loss_sum, correct, count = self.model(
            batch["input_ids"], batch["labels"], batch["selected"], batch["attention_mask"]
        )
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
        # No weight decay on biases, LayerNorm weights and embeddings (BERT's recipe).
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (decay if p.ndim >= 2 and "tok" not in name and "pos" not in name else no_decay).append(
                p
            )
        o = self.optim
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": o.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=o.lr,
            betas=(o.beta1, o.beta2),
            # Fused on a GPU; elsewhere foreach (one kernel per op over all tensors).
            fused=torch.cuda.is_available() or None,
            foreach=None if torch.cuda.is_available() else True,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(o.warmup_frac * total)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 1.0 - (1.0 - o.final_lr_frac) * min(1.0, progress)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def _versions() -> dict[str, str]:
    names = ("dmx", "torch", "lightning", "hydra-core", "omegaconf", "wandb", "tokenizers")
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux: the process's peak resident memory.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RunFolder(L.Callback):
    """Keeps the run folder current: history and metrics after every validation, atomically.

    A crash at any point leaves the last complete history, metrics.json (status running)
    and checkpoint behind; :meth:`finish` and :meth:`fail` write the final status.
    """

    def __init__(self, run_dir: Path, seed: int, checkpoint: bool) -> None:
        self.run_dir, self.checkpoint = run_dir, checkpoint
        self.history: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.train_s = 0.0  # training time of finished epochs, validation excluded
        self._epoch_start = self._epoch_train_s = 0.0
        self.summary: dict[str, Any] = {
            "status": STATUS_RUNNING,
            "seed": seed,
            "versions": _versions(),
            "error": None,
        }

    def write_summary(self, **updates: Any) -> None:
        self.summary.update(updates)
        write_json(self.run_dir / METRICS_FILE, self.summary)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        device = pl_module.device
        self.summary["device"] = (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else f"cpu ({os.cpu_count()} cores)"
        )
        self.summary["precision"] = str(trainer.precision)
        # CPU: the process's peak resident memory; GPU: the peak memory torch allocated.
        self.summary["peak_mem_kind"] = "cuda_allocated" if device.type == "cuda" else "process_rss"
        self.summary["parameters"] = pl_module.model.num_parameters(non_embedding=False)
        self.write_summary()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._epoch_train_s = 0.0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        # Training time only: the time to the latest batch end, validation excluded.
        self._epoch_train_s = time.perf_counter() - self._epoch_start

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end, not _epoch_end: it runs after the module has logged val/loss.
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        train_s = self.train_s + self._epoch_train_s
        # Inside fit, the epoch under way; in the closing validate() after an early stop
        # (trainer.max_steps), fit has already counted the partial epoch as the last one.
        fitting = trainer.state.fn == TrainerFn.FITTING
        row = {
            "epoch": trainer.current_epoch + 1 if fitting else trainer.current_epoch,
            "step": trainer.global_step,
            "val_loss": float(m["val/loss"]),
            "val_acc": float(m["val/acc"]),
            "val_ppl": float(m["val/ppl"]),
            "train_loss": float(m["train/epoch_loss"]) if "train/epoch_loss" in m else math.nan,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "tokens_seen": pl_module.tokens_seen,
            "train_s": round(train_s, 3),
        }
        self.history.append(row)
        write_history(self.run_dir / HISTORY_FILE, self.history)
        self.write_summary(**self._metrics_from_history(pl_module, train_s))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_s += self._epoch_train_s
        self._epoch_train_s = 0.0
        if self.checkpoint:
            self.save_checkpoint(trainer)

    def save_checkpoint(self, trainer: L.Trainer) -> None:
        final = self.run_dir / CHECKPOINT_DIR / "last.ckpt"
        tmp = final.with_name(".last.ckpt.tmp")
        trainer.save_checkpoint(tmp, weights_only=False)  # collective under DDP: all ranks call it
        if trainer.is_global_zero:
            os.replace(tmp, final)

    def _metrics_from_history(self, pl_module: L.LightningModule, train_s: float) -> dict[str, Any]:
        last = self.history[-1]
        tokens = pl_module.tokens_seen
        return {
            "final_val_loss": last["val_loss"],
            "best_val_loss": min(r["val_loss"] for r in self.history),
            "best_val_epoch": min(self.history, key=lambda r: r["val_loss"])["epoch"],
            "final_val_acc": last["val_acc"],
            "final_val_ppl": last["val_ppl"],
            "final_train_loss": last["train_loss"],
            "epochs": last["epoch"],
            "steps": last["step"],
            "tokens_seen": tokens,
            "train_s": round(train_s, 3),
            "tokens_per_s": round(tokens / train_s, 1) if train_s > 0 else None,
            "peak_mem_mb": round(_peak_mem_mb(pl_module.device), 1),
        }

    def finish(self) -> None:
        self.write_summary(status=STATUS_DONE, wall_s=round(time.perf_counter() - self.started, 3))

    def fail(self, error: BaseException) -> None:
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        self.write_summary(
            status=STATUS_FAILED, error=reason, wall_s=round(time.perf_counter() - self.started, 3)
        )


def _precision(setting: str, accelerator: str) -> str:
    """auto: bf16 mixed precision when training on a CUDA GPU that has it, else fp32."""
    if setting != "auto":
        return setting
    on_gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if on_gpu and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def train(config: Config, run_dir: Path) -> dict[str, Any]:
    """Train one run into ``run_dir``; returns the final metrics.json content.

    Any fault marks the run failed (with the reason) before it propagates, and leaves the
    files written so far intact.
    """
    from dmx.tracking import make_logger  # W&B is imported only when a run needs it

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.structured(config)))
    folder = RunFolder(run_dir, config.seed, checkpoint=config.trainer.checkpoint)
    folder.write_summary()
    logger = None
    try:
        L.seed_everything(config.seed, workers=True, verbose=False)
        data = MLMDataModule(config.data, config.mask, config.seed)
        data.setup("fit")
        log.info("corpus: %s", data.corpus.stats if data.corpus else None)
        m = config.model
        shape = EncoderShape(
            data.vocab_size,
            m.n_layers,
            m.d_model,
            m.n_heads,
            m.d_ff,
            m.max_seq_len,
            m.dropout,
            m.attn_dropout,
        )
        # The same seed gives the same initial weights whatever the mask strategy.
        torch.manual_seed(config.seed)
        module = MLMModule(MaskedLM(shape), config.optim)
        logger = make_logger(config, run_dir)
        callbacks: list[L.Callback] = [folder]
        if config.trainer.progress_bar:
            callbacks.append(L.pytorch.callbacks.RichProgressBar(refresh_rate=5, leave=True))
        trainer = L.Trainer(
            accelerator=config.trainer.accelerator,
            devices=config.trainer.devices,
            precision=_precision(config.trainer.precision, config.trainer.accelerator),
            max_epochs=config.trainer.max_epochs,
            max_steps=config.trainer.max_steps,
            gradient_clip_val=config.trainer.grad_clip or None,
            logger=logger.lightning if logger else False,
            callbacks=callbacks,
            enable_checkpointing=False,  # RunFolder writes last.ckpt atomically itself
            enable_progress_bar=config.trainer.progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=10,
            default_root_dir=run_dir,
        )
        trainer.fit(module, datamodule=data)
        if trainer.interrupted:
            raise KeyboardInterrupt("training was interrupted")
        if not folder.history:  # trainer.max_steps stopped it before the first validation
            trainer.validate(module, datamodule=data, verbose=False)
        folder.finish()
    except BaseException as err:
        folder.fail(err)
        raise
    finally:
        if logger:
            logger.close(folder.summary)
    return folder.summary


@hydra.main(version_base="1.3", config_path="pkg://dmx.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Hydra's task: one run. In a multirun a failed run is recorded and the sweep goes on."""
    hydra_cfg = HydraConfig.get()
    try:
        config = to_config(cfg)
    except UserError as err:
        print(f"dmx: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        summary = train(config, run_dir)
    except Exception as err:
        if hydra_cfg.mode != RunMode.MULTIRUN:
            raise
        log.error("run %s failed: %s: %s", run_dir, type(err).__name__, err)
        return None
    log.info(
        "done: val loss %.3f (best %.3f at epoch %s), val acc %.1f%%, %s tokens/s; run folder: %s",
        summary["final_val_loss"],
        summary["best_val_loss"],
        summary["best_val_epoch"],
        100 * summary["final_val_acc"],
        f"{summary['tokens_per_s']:,.0f}",
        run_dir,
    )
    return summary.get("final_val_loss")


__all__ = ["MLMModule", "RunFolder", "main", "train"]
