"""The run-folder callback: keeps history.csv, metrics.json and the checkpoint current.

It decides *when* to write (after every validation, at every epoch end, at the finish);
:mod:`dmx.common.run_folder` decides *how* (atomically), :mod:`dmx.run.provenance`
what to record about the machine, and :mod:`dmx.run.checkpoint_state` what a checkpoint
holds for an exact resume and how its files are kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn

from dmx.common import hardware
from dmx.common.files import write_json
from dmx.common.run_folder import (
    ADAPTIVE_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_INTERRUPTED,
    STATUS_RUNNING,
    write_history,
)
from dmx.run import provenance, stops
from dmx.run.checkpoint_state import add_rng, restore_rng, set_rng, write_checkpoint
from dmx.training.encoder import save_encoder


class RunFolder(L.Callback):
    """History and metrics after every validation, atomically.

    A crash at any point leaves the last complete history, metrics.json (status running)
    and checkpoint behind; :meth:`finish` and :meth:`fail` write the final status.
    """

    def __init__(
        self,
        run_dir: Path,
        seed: int,
        checkpoint: bool,
        rank_zero: bool = True,
        every_n_steps: int = 0,
        keep: int = 2,
        started: float | None = None,
        **facts: Any,
    ) -> None:
        # Under data parallelism only global rank 0 writes; the others keep the same state.
        self.run_dir, self.checkpoint, self.rank_zero = run_dir, checkpoint, rank_zero
        self.every_n_steps, self.keep = every_n_steps, keep
        self.history: list[dict[str, Any]] = []
        # When the run began (time.perf_counter()): wall_s and setup_s count from here.
        self.started = time.perf_counter() if started is None else started
        self._first_step = True  # setup_s is the time from the start to the first step
        self.train_s = 0.0  # training time of finished epochs, validation excluded
        self._epoch_start = self._epoch_train_s = 0.0
        self._epoch_offset = 0.0  # a resumed epoch's training time before the checkpoint
        self._epoch_offset_at_start = 0.0
        self._mid_epoch = False  # whether the checkpoint being written is taken mid-epoch
        self._rng_at_first_batch: dict[str, Any] | None = None
        # eval.epochs: after which epochs' validation the encoder is also scored zero-shot,
        # and how (set by the run once its data is read).
        self.score_epochs: set[int] = set()
        self.score: Callable[[Any], dict[str, float]] | None = None
        self.summary: dict[str, Any] = {
            "status": STATUS_RUNNING,
            "seed": seed,
            **facts,
            "versions": provenance.versions(),
            "git": provenance.git_commit(),
            "hardware": provenance.hardware(),
            "error": None,
        }

    def write_summary(self, **updates: Any) -> None:
        self.summary.update(updates)
        if self.rank_zero:
            write_json(self.run_dir / METRICS_FILE, self.summary)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        device = pl_module.device
        self.summary["device"] = hardware.device_name(device)
        self.summary["precision"] = str(trainer.precision)
        self.summary["threads"] = torch.get_num_threads()  # CPU threads (impl.threads)
        self.summary["peak_mem_kind"] = hardware.peak_memory_kind(device)
        self.summary["parameters"] = pl_module.model.num_parameters(non_embedding=False)
        self.write_summary()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # From here a signal waits for the end of the step under way (dmx.run.stops).
        stops.reinstall()
        stops.defer(True)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stops.defer(False)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        stops.defer(False)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._epoch_offset_at_start, self._epoch_offset = self._epoch_offset, 0.0
        self._epoch_train_s = self._epoch_offset_at_start

    def on_train_batch_start(self, *args: Any) -> None:
        if self._first_step:  # the corpus read, the Trainer set up: the wait for step one
            self._first_step = False
            self.summary["setup_s"] = round(time.perf_counter() - self.started, 3)
        # Resumed mid-epoch, Lightning does not start the epoch again (no
        # on_train_epoch_start), and the loader's iterator was made again on the way here:
        # it draws a seed from torch's generator, as the uninterrupted run did before the
        # checkpoint. So the epoch's clock and the generator are set here, before the step.
        if self._rng_at_first_batch is not None:
            set_rng(self._rng_at_first_batch)
            self._rng_at_first_batch = None
            self._epoch_start = time.perf_counter()
            self._epoch_offset_at_start, self._epoch_offset = self._epoch_offset, 0.0

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        # Training time only: the time to the latest batch end, validation excluded.
        self._epoch_train_s = self._epoch_offset_at_start + time.perf_counter() - self._epoch_start
        n = self.every_n_steps
        last_of_epoch = batch_idx + 1 >= trainer.num_training_batches  # the epoch's own follows
        # With gradient accumulation a checkpoint between the batches of one step would lose
        # the gradients summed so far: save and stop only right after an optimiser step.
        if (batch_idx + 1) % trainer.accumulate_grad_batches and not last_of_epoch:
            return
        due = self.checkpoint and n and trainer.global_step % n == 0 and not last_of_epoch
        if due:
            self.save_checkpoint(trainer, mid_epoch=True)
        if last_of_epoch:  # the epoch's end saves, then stops if asked
            return
        signum = _stop_asked(trainer, pl_module)
        if signum:
            if self.checkpoint and not due:
                self.save_checkpoint(trainer, mid_epoch=True)
            raise stops.Stop(signum)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end, not _epoch_end: it runs after the module has logged val/loss.
        # Every process keeps the history (its metrics are already reduced across them), so
        # all of them take the same decisions from it; only rank 0 writes it.
        if trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        train_s = self.train_s + self._epoch_train_s
        # Inside fit, the epoch under way; in the closing validate() after an early stop
        # (trainer.max_steps), fit has already counted the partial epoch as the last one.
        fitting = trainer.state.fn == TrainerFn.FITTING
        row = {
            "epoch": _epochs_done(trainer) if fitting else trainer.current_epoch,
            "step": trainer.global_step,
            "val_loss": float(m["val/loss"]),
            "val_acc": float(m["val/acc"]),
            "val_ppl": float(m["val/ppl"]),
            "train_loss": float(m["train/epoch_loss"]) if "train/epoch_loss" in m else math.nan,
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "tokens_seen": pl_module.tokens_seen,
            "train_s": round(train_s, 3),
        }
        if self.score is not None and fitting and row["epoch"] in self.score_epochs:
            scores = self.score(pl_module.model)
            row.update(scores)
            if trainer.logger is not None:
                logged = {f"val/{k}": v for k, v in scores.items()}
                trainer.logger.log_metrics({**logged, "val/tokens_seen": row["tokens_seen"]})
        self.history.append(row)
        if self.rank_zero:
            write_history(self.run_dir / HISTORY_FILE, self.history)
            if fitting and min(self.history, key=lambda r: r["val_loss"]) is row:
                # The best so far (the first of equals, as best_val_epoch counts it): kept
                # for finetune.encoder=best and eval.encoder=best, whatever keep_checkpoints.
                tokenizer = trainer.datamodule.corpus.tokenizer
                save_encoder(self.run_dir, pl_module.model, tokenizer, which="best")
            adaptive = getattr(trainer.datamodule, "adaptive", None)
            if adaptive is not None and adaptive.history:
                write_json(self.run_dir / ADAPTIVE_FILE, adaptive.record())
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
            self.save_checkpoint(trainer, mid_epoch=False)
        signum = _stop_asked(trainer, pl_module)
        if signum:
            raise stops.Stop(signum)

    def save_checkpoint(self, trainer: L.Trainer, mid_epoch: bool) -> None:
        """A checkpoint of this step (dmx.run.checkpoint_state keeps its files); whether
        it is taken mid-epoch goes into it, and into the epoch time it saves."""
        self._mid_epoch = mid_epoch
        write_checkpoint(trainer, self.run_dir, self.keep, self.rank_zero)

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "train_s": self.train_s,
            "epoch_train_s": self._epoch_train_s if self._mid_epoch else 0.0,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])
        self.train_s = float(state["train_s"])
        self._epoch_offset = float(state["epoch_train_s"])

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        add_rng(checkpoint, self._mid_epoch)

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        rng = restore_rng(checkpoint)
        if rng is not None:
            self._rng_at_first_batch = rng

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
            "peak_mem_mb": round(hardware.peak_memory_mb(pl_module.device), 1),
        }

    @staticmethod
    def _diagnostics(
        trainer: L.Trainer, pl_module: L.LightningModule, train_s: float
    ) -> dict[str, Any]:
        """What the masks did, as measured: rate, corruption split, diversity, time share,
        and the realised attention density (None for full attention)."""
        diagnostics = getattr(trainer.datamodule, "diagnostics", None)
        out: dict[str, Any] = dict(diagnostics()) if diagnostics is not None else {}
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
        peak = hardware.gpu_matmul_peak(pl_module.device, str(trainer.precision))
        if peak:
            out["mfu"] = round(tokens_per_s * flops / (peak * trainer.world_size), 4)
            out["peak_tflops"] = round(peak / 1e12, 1)
        return out

    def finish(self) -> None:
        self.write_summary(status=STATUS_DONE, wall_s=round(time.perf_counter() - self.started, 3))

    def fail(self, error: BaseException) -> None:
        """The run's end by a fault, or by a signal's :class:`~dmx.run.stops.Stop` (interrupted,
        not failed: nothing went wrong, and the same command continues it)."""
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        status = STATUS_INTERRUPTED if isinstance(error, stops.Stop) else STATUS_FAILED
        self.write_summary(
            status=status, error=reason, wall_s=round(time.perf_counter() - self.started, 3)
        )


def _epochs_done(trainer: L.Trainer) -> float | int:
    """Epochs trained at a validation inside fit: whole at an epoch's end, a fraction
    (1.5) when trainer.val_check_interval validates within epochs."""
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    total = trainer.num_training_batches
    if not total or done >= total:
        return trainer.current_epoch + 1
    return round(trainer.current_epoch + done / total, 3)


def _stop_asked(trainer: L.Trainer, pl_module: L.LightningModule) -> int:
    """The signal that asked for a stop in any process (0 if none): under data parallelism
    a signal may reach rank 0 alone (``kill``), and every process must stop at the same
    step, so each step ends with one tiny collective."""
    signum = stops.pending() or 0
    if trainer.world_size > 1:
        flag = torch.tensor(float(signum), device=pl_module.device)
        signum = int(trainer.strategy.reduce(flag, reduce_op="max").item())
    return signum
