"""The run-folder callback: keeps history.csv, metrics.json and the checkpoint current.

It decides *when* to write (after every validation, at every epoch end, at the finish);
:mod:`dmx.runs` decides *how* (atomically), and :mod:`dmx.provenance` what to record
about the machine.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

from dmx import provenance
from dmx.runs import (
    CHECKPOINT_DIR,
    HISTORY_FILE,
    METRICS_FILE,
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_RUNNING,
    write_history,
    write_json,
)


class RunFolder(L.Callback):
    """History and metrics after every validation, atomically.

    A crash at any point leaves the last complete history, metrics.json (status running)
    and checkpoint behind; :meth:`finish` and :meth:`fail` write the final status.
    """

    def __init__(
        self, run_dir: Path, seed: int, checkpoint: bool, writes: bool = True, **facts: Any
    ) -> None:
        # Under data parallelism only global rank 0 writes; the others keep the same state.
        self.run_dir, self.checkpoint, self.writes = run_dir, checkpoint, writes
        self.history: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.train_s = 0.0  # training time of finished epochs, validation excluded
        self._epoch_start = self._epoch_train_s = 0.0
        self.summary: dict[str, Any] = {
            "status": STATUS_RUNNING,
            "seed": seed,
            **facts,
            "versions": provenance.versions(),
            "error": None,
        }

    def write_summary(self, **updates: Any) -> None:
        self.summary.update(updates)
        if self.writes:
            write_json(self.run_dir / METRICS_FILE, self.summary)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        device = pl_module.device
        self.summary["device"] = provenance.device_name(device)
        self.summary["precision"] = str(trainer.precision)
        self.summary["peak_mem_kind"] = provenance.peak_mem_kind(device)
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
        # Every process keeps the history (its metrics are already reduced across them), so
        # all of them take the same decisions from it; only the writer writes it.
        if trainer.sanity_checking:
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
        if self.writes:
            write_history(self.run_dir / HISTORY_FILE, self.history)
        metrics = self._metrics_from_history(pl_module, train_s)
        diagnostics = self._diagnostics(trainer, pl_module, train_s)
        self.write_summary(
            **metrics,
            **diagnostics,
            **self._utilisation(trainer, pl_module, metrics["tokens_per_s"], diagnostics),
        )

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
            "peak_mem_mb": round(provenance.peak_mem_mb(pl_module.device), 1),
        }

    @staticmethod
    def _diagnostics(
        trainer: L.Trainer, pl_module: L.LightningModule, train_s: float
    ) -> dict[str, Any]:
        """What the masks did, as measured: rate, corruption split, diversity, time share,
        and the realised attention density (None for full attention)."""
        stats = getattr(trainer.datamodule, "stats", None)
        out: dict[str, Any] = dict(stats.summary()) if stats is not None else {}
        if "mask_time_s" in out and train_s > 0:
            out["mask_time_share"] = out["mask_time_s"] / train_s
        density = getattr(pl_module, "realised_attention_density", None)
        if density is not None:
            out["attention_density"] = density()
        return out

    @staticmethod
    def _utilisation(
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        tokens_per_s: float | None,
        diagnostics: dict[str, Any],
    ) -> dict[str, Any]:
        """The model's training FLOPs per token (at the realised mask rate: the head scores
        only masked positions), the FLOP/s reached, and on a GPU the model FLOPs
        utilisation against that GPU's matrix-multiply peak, measured once per process."""
        model, data = getattr(pl_module, "model", None), trainer.datamodule
        if tokens_per_s is None or not hasattr(model, "flops_per_token") or data is None:
            return {}
        rate = diagnostics.get("mask_rate")
        if rate is None:
            rate = data.mask_cfg.prob if hasattr(data, "mask_cfg") else 0.0
        flops = model.flops_per_token(data.cfg.seq_len, rate)
        out: dict[str, Any] = {
            "flops_per_token": round(flops),
            "model_tflops": round(tokens_per_s * flops / 1e12, 4),
        }
        peak = provenance.matmul_peak_flops(pl_module.device, str(trainer.precision))
        if peak:
            out["mfu"] = round(tokens_per_s * flops / (peak * trainer.world_size), 4)
            out["peak_tflops"] = round(peak / 1e12, 1)
        return out

    def finish(self) -> None:
        self.write_summary(status=STATUS_DONE, wall_s=round(time.perf_counter() - self.started, 3))

    def fail(self, error: BaseException) -> None:
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        self.write_summary(
            status=STATUS_FAILED, error=reason, wall_s=round(time.perf_counter() - self.started, 3)
        )
