"""How a run runs, from ``impl``: the precision, the Lightning Trainer, one device per sweep
job. Never what it computes: every setting here changes speed, memory or where a process
trains, and a result at most by floating-point noise.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch

from dmx.common.errors import UserError
from dmx.common.progress import on_terminal
from dmx.config import Config, ImplConfig

log = logging.getLogger("dmx")


class _DropAdverts(logging.Filter):
    """Lightning advertises its cloud products on every start; that is noise in a run log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


def quiet_lightning() -> None:
    """Drop Lightning's messages that say nothing about this run; once per process is enough,
    and again is harmless (a filter is added once)."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdverts) for f in rank_zero.filters):
        rank_zero.addFilter(_DropAdverts())
    warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*")  # inside Lightning
    # The DataModule resumes mid-epoch itself (its state_dict holds the position), which
    # Lightning's check for a resumable DataLoader cannot see.
    warnings.filterwarnings("ignore", message=r".*your dataloader is not resumable.*")
    # Epoch metrics are torchmetrics sums, already reduced across processes when computed.
    warnings.filterwarnings(
        "ignore", message=r".*It is recommended to use `self.log\('(val|train)/"
    )


def resolve_precision(impl: ImplConfig) -> str:
    """auto: bf16 mixed precision when training on a CUDA GPU that has it, else fp32."""
    if impl.precision != "auto":
        return impl.precision
    on_gpu = impl.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if on_gpu and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def build_trainer(
    config: Config,
    callbacks: list[L.Callback],
    logger: Any,
    run_dir: Path,
    max_epochs: int | None = None,
) -> L.Trainer:
    """A Trainer as ``impl`` and ``trainer`` say; ``max_epochs`` overrides the pretraining
    length (fine-tuning has its own), while ``trainer.max_steps`` caps both, so a smoke
    run stays short end to end."""
    quiet_lightning()
    impl = config.impl
    # On a terminal only: piped into a log, a bar is redraws nobody reads. Lightning's tqdm
    # bar redraws when told (every 5 batches); its rich bar redraws from a thread 5 times a
    # second and built a live display per epoch, which cost a demo run 4 s in a log file
    # and 6 s on a terminal (docs/performance.md).
    bar = impl.progress_bar and on_terminal()
    if bar:
        callbacks.append(L.pytorch.callbacks.TQDMProgressBar(refresh_rate=5))
    return L.Trainer(
        accelerator=impl.accelerator,
        devices=impl.devices,
        num_nodes=impl.num_nodes,
        precision=resolve_precision(impl),
        deterministic=impl.deterministic or None,
        max_epochs=config.trainer.max_epochs if max_epochs is None else max_epochs,
        max_steps=config.trainer.max_steps,
        gradient_clip_val=config.trainer.grad_clip or None,
        # Pretraining only (fine-tuning has its own schedule): whole batches counted as ints.
        val_check_interval=_interval(config.trainer.val_check_interval)
        if max_epochs is None
        else None,
        accumulate_grad_batches=config.trainer.accumulate_grad_batches if max_epochs is None else 1,
        logger=logger or False,
        callbacks=callbacks,
        enable_checkpointing=False,  # RunFolder writes last.ckpt atomically itself
        # The DataModules shard batches themselves (dmx.data.datamodule.EpochKeyedSampler),
        # so that N processes see exactly the batches one would.
        use_distributed_sampler=False,
        enable_progress_bar=bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        default_root_dir=run_dir,
        profiler=_profiler(impl.profiler, run_dir) if max_epochs is None else None,
    )


@contextmanager
def using_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads for the block (None: torch's default, one per core), restored
    after it: a sweep's runs in one process each get their own setting."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _profiler(name: str, run_dir: Path) -> Any:
    """Lightning's profiler ``name`` writing fit-profile.txt into the run folder (None: off)."""
    from lightning.pytorch import profilers

    kinds = {
        "simple": profilers.SimpleProfiler,
        "advanced": profilers.AdvancedProfiler,
        "pytorch": profilers.PyTorchProfiler,
    }
    return kinds[name](dirpath=run_dir, filename="profile") if name in kinds else None


def _interval(value: float) -> float | int | None:
    """Lightning reads an int as a number of batches and a float as a fraction of an epoch;
    None is its default, the epoch's end (1.0 given explicitly makes it say so at start)."""
    if value == 1:
        return None
    return int(value) if value > 1 else float(value)


def one_device_per_job(config: Config, job: int) -> Config:
    """A sweep's run trains on one device: with several GPUs, job k takes GPU k mod count,
    so parallel jobs (hydra/launcher=joblib) spread over them instead of all taking GPU 0.

    A run cannot start its own data-parallel processes inside a sweep (Lightning would start
    each with the whole sweep's command line); it can where the cluster starts one process
    per device itself (SLURM with tasks_per_node > 1).
    """
    impl = config.impl
    devices = impl.devices
    several = (isinstance(devices, int) and devices > 1) or (
        isinstance(devices, (list, tuple)) and len(devices) > 1
    )
    if several and int(os.environ.get("SLURM_NTASKS", "1")) <= 1:
        raise UserError(
            f"impl.devices={devices} in a sweep: a sweep's runs train on one device each; "
            "use dmx train for a data-parallel run, or sweep on SLURM with "
            "hydra/launcher=slurm hydra.launcher.tasks_per_node=N"
        )
    gpus = torch.cuda.device_count()
    if devices == "auto" and impl.accelerator in ("auto", "gpu", "cuda") and gpus > 1:
        impl = dataclasses.replace(impl, devices=[job % gpus])
        log.info("sweep job %d trains on GPU %d of %d", job, job % gpus, gpus)
        return dataclasses.replace(config, impl=impl)
    return config
