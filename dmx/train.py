"""Assembly: build one run from a checked :class:`Config`, and the Hydra entry that calls it.

``main`` is a real ``@hydra.main`` entry (the ``dmx-train`` script; ``dmx train`` and
``dmx sweep`` hand it their arguments), so multirun, launchers and Lightning's process
re-launch all keep working. ``train`` builds the data, model, task and trainer from the
config and a run folder, and is what tests call. Everything it assembles lives elsewhere:
the DataModules in :mod:`dmx.data`, the model in :mod:`dmx.model`, the LightningModules in
:mod:`dmx.tasks`, the run-folder callback in :mod:`dmx.callbacks`.

A run pretrains, then (``finetune=...``) fine-tunes the same encoder on a labelled task in a
second Trainer and adds the dev scores to metrics.json; ``trainer.max_epochs=0`` skips
pretraining, so the classifier is trained from the encoder's initialisation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from dmx import provenance
from dmx.allocator import keep_freed_memory
from dmx.callbacks import RunFolder
from dmx.config import Config, ImplConfig, ModelConfig, to_config
from dmx.data.datamodule import MLMDataModule
from dmx.data.labelled import LabelledDataModule, load_task
from dmx.errors import UserError, error_line
from dmx.model import EncoderShape, MaskedLM
from dmx.runs import (
    ADAPTIVE_FILE,
    CHECKPOINT_DIR,
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    STATUS_DONE,
    RunFolderBusy,
    RunLock,
    atomic_write_text,
    is_rank_zero,
    read_metrics,
    step_checkpoints,
)
from dmx.tasks import ClassifierModule, MLMModule
from dmx.tasks.classify import DEV_METRICS

log = logging.getLogger("dmx")


class _DropAdverts(logging.Filter):
    """Lightning advertises its cloud products on every start; that is noise in a run log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tip:" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())
warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*")  # inside Lightning, not ours
# The DataModule resumes mid-epoch itself (its state_dict holds the position), which
# Lightning's check for a resumable DataLoader cannot see.
warnings.filterwarnings("ignore", message=r".*your dataloader is not resumable.*")
# Epoch metrics are torchmetrics sums, already reduced across processes when computed.
warnings.filterwarnings("ignore", message=r".*It is recommended to use `self.log\('(val|train)/")


def resolve_precision(impl: ImplConfig) -> str:
    """auto: bf16 mixed precision when training on a CUDA GPU that has it, else fp32."""
    if impl.precision != "auto":
        return impl.precision
    on_gpu = impl.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if on_gpu and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def encoder_shape(model: ModelConfig, vocab_size: int, gate: bool = False) -> EncoderShape:
    """The encoder's shape from the model config, field by field by name: a field added to
    one and not the other fails here, loudly, instead of shifting its neighbours."""
    settings = {k: v for k, v in dataclasses.asdict(model).items() if k != "name"}
    return EncoderShape(vocab_size=vocab_size, gate=gate, **settings)


def _trainer(
    config: Config,
    callbacks: list[L.Callback],
    logger: Any,
    run_dir: Path,
    max_epochs: int | None = None,
) -> L.Trainer:
    """A Trainer as ``impl`` and ``trainer`` say; ``max_epochs`` overrides the pretraining
    length (fine-tuning has its own), while ``trainer.max_steps`` caps both, so a smoke
    run stays short end to end."""
    impl = config.impl
    if impl.progress_bar:
        callbacks.append(L.pytorch.callbacks.RichProgressBar(refresh_rate=5, leave=True))
    return L.Trainer(
        accelerator=impl.accelerator,
        devices=impl.devices,
        num_nodes=impl.num_nodes,
        precision=resolve_precision(impl),
        deterministic=impl.deterministic or None,
        max_epochs=config.trainer.max_epochs if max_epochs is None else max_epochs,
        max_steps=config.trainer.max_steps,
        gradient_clip_val=config.trainer.grad_clip or None,
        logger=logger or False,
        callbacks=callbacks,
        enable_checkpointing=False,  # RunFolder writes last.ckpt atomically itself
        # The DataModules shard batches themselves (dmx.data.datamodule.EpochKeyedSampler),
        # so that N processes see exactly the batches one would.
        use_distributed_sampler=False,
        enable_progress_bar=impl.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        default_root_dir=run_dir,
    )


def train(config: Config, run_dir: Path) -> dict[str, Any]:
    """Train one run into ``run_dir``; returns the final metrics.json content.

    Any fault marks the run failed (with the reason) before it propagates, and leaves the
    files written so far intact. A folder another process is training into is refused
    before anything in it is touched.
    """
    from dmx.tracking import make_logger  # W&B is imported only when a run needs it

    keep_freed_memory()
    if not is_rank_zero():  # a data-parallel worker: rank 0 holds the folder and writes it
        return _train_locked(config, run_dir, make_logger, writes=False)
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except RunFolderBusy:
        raise UserError(
            f"run folder {run_dir} is in use by another dmx process; wait for it to finish "
            "or train into another folder (hydra.run.dir=...)"
        ) from None
    try:
        return _train_locked(config, run_dir, make_logger)
    finally:
        lock.release()


def _train_locked(
    config: Config, run_dir: Path, make_logger: Any, writes: bool = True
) -> dict[str, Any]:
    previous = _previous_run(config, run_dir)
    if isinstance(previous, dict):  # finished: nothing to train
        log.info(
            "run folder %s holds a finished run; nothing to train (resume=false, or "
            "dmx sweep --force, trains it again)",
            run_dir,
        )
        return previous
    resume_from = previous
    # A resumed run goes on logging into the same W&B run.
    wandb_id = _read_json_field(run_dir / METRICS_FILE, "wandb_id") if resume_from else None
    if writes:
        if resume_from is None:
            _clear_run(run_dir)
        atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.structured(config)))
    impl = config.impl
    folder = RunFolder(
        run_dir,
        config.seed,
        checkpoint=impl.checkpoint,
        writes=writes,
        every_n_steps=impl.checkpoint_every_n_steps,
        keep=impl.keep_checkpoints,
    )
    folder.write_summary(resumed_from_step=resume_from[1] if resume_from else 0)
    if resume_from:
        log.info("resuming from %s (step %d)", resume_from[0], resume_from[1])
    logger = None
    try:
        L.seed_everything(config.seed, workers=True, verbose=False)
        # Set up even when pretraining is skipped: its tokenizer and vocabulary are the
        # encoder's, and the classifier reads text through them.
        data = MLMDataModule(
            config.data,
            config.mask,
            config.seed,
            num_workers=config.impl.num_workers,
            cache_dir=config.impl.cache_dir,
        )
        data.setup("fit")
        strategy = data.train_masker.strategy
        pretrained = config.trainer.max_epochs > 0
        assert data.corpus is not None
        folder.write_summary(
            mask_strategy=strategy,
            attention=config.attention.pattern,
            pretrained=pretrained,
            # Names the token streams exactly (content, parsing, tokenizer): two runs with
            # the same fingerprint trained on the same tokens.
            corpus_fingerprint=data.corpus.fingerprint,
        )
        log.info("corpus: %s", data.corpus.stats if data.corpus else None)
        # Read and checked before pretraining: a bad TSV file costs seconds, not a run.
        labelled = _labelled_data(config, data) if config.finetune.name != "none" else None
        copies = config.mask.copies
        if copies is not None and copies >= config.trainer.max_epochs > 1:
            log.warning(
                "mask.copies=%d >= trainer.max_epochs=%d: every epoch gets a mask no earlier "
                "epoch used, so this run masks exactly as dynamic masking would",
                copies,
                config.trainer.max_epochs,
            )
        # The same seed gives the same initial weights whatever the mask strategy.
        torch.manual_seed(config.seed)
        gate = config.attention.pattern == "learned_gate"
        model = MaskedLM(encoder_shape(config.model, data.vocab_size, gate=gate))
        if config.impl.compile:
            model.compile_blocks()
        logger = make_logger(config, run_dir, strategy, run_id=wandb_id) if writes else None
        if logger is not None:
            folder.write_summary(wandb_id=logger.run_id)
        if pretrained:
            _pretrain(config, data, model, folder, logger, run_dir, resume_from)
        else:
            log.info("trainer.max_epochs=0: no pretraining; the encoder keeps its initialisation")
        if labelled is not None:
            scores, facts = finetune(config, model, labelled, run_dir)
            # Without pretraining no fit has recorded where and how the run computed.
            folder.write_summary(**{k: v for k, v in facts.items() if k not in folder.summary})
            folder.write_summary(**scores)
        folder.finish()
    except BaseException as err:
        folder.fail(err)
        raise
    finally:
        if logger:
            logger.close(folder.summary)
    return folder.summary


def _pretrain(
    config: Config,
    data: MLMDataModule,
    model: MaskedLM,
    folder: RunFolder,
    logger: Any,
    run_dir: Path,
    resume_from: tuple[Path, int] | None = None,
) -> None:
    """Masked-language-model pretraining; ``folder`` records its history and metrics.

    From a checkpoint, Lightning restores the weights, the optimiser, the schedule and the
    loops; the DataModule, the module and ``folder`` restore the rest (the position in the
    epoch, the mask statistics, the running sums, torch's generator), so the run goes on
    as if it had never stopped. Checkpoints load with ``weights_only``: no code runs.
    """
    observe = data.observe_losses if data.adaptive is not None else None
    module = MLMModule(
        model, config.optim, config.attention, seed=config.seed, observe_losses=observe
    )
    trainer = _trainer(config, [folder], logger.lightning if logger else None, run_dir)
    ckpt = str(resume_from[0]) if resume_from else None
    trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)
    if trainer.interrupted:
        raise KeyboardInterrupt("training was interrupted")
    if not folder.history:  # trainer.max_steps stopped it before the first validation
        trainer.validate(module, datamodule=data, verbose=False)


def _previous_run(config: Config, run_dir: Path) -> dict[str, Any] | tuple[Path, int] | None:
    """What the folder holds, as resume= decides: a finished run's metrics (train nothing),
    the checkpoint to continue from and its step, or None (start from the beginning)."""
    if config.resume == "false":
        return None
    metrics = None
    if (run_dir / METRICS_FILE).exists():
        try:
            metrics = read_metrics(run_dir)
        except (OSError, ValueError):
            metrics = None  # unreadable: there is nothing trustworthy to continue
    if metrics is not None:
        _check_same_experiment(config, run_dir)
        if metrics.get("status") == STATUS_DONE:
            return metrics
    checkpoint = _loadable_checkpoint(run_dir)
    if checkpoint is None and config.resume == "true":
        raise UserError(
            f"resume=true but {run_dir} holds no checkpoint to resume from; run without "
            "resume=true to start it"
        )
    return checkpoint


def _read_json_field(path: Path, key: str) -> Any:
    try:
        return json.loads(path.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _check_same_experiment(config: Config, run_dir: Path) -> None:
    """A folder is resumed only by the run it holds: another experiment (any setting but
    resume, impl and logger) would continue from weights it did not train."""
    saved_path = run_dir / CONFIG_FILE
    if not saved_path.exists():
        return
    try:
        saved = OmegaConf.to_container(OmegaConf.load(saved_path))
    except Exception:  # noqa: BLE001 - an unreadable record cannot vouch for the folder
        saved = None
    ours = OmegaConf.to_container(OmegaConf.structured(config))
    ignored = ("resume", "impl", "logger")
    if not isinstance(saved, dict) or any(
        saved.get(k) != ours.get(k) for k in ours if k not in ignored
    ):
        raise UserError(
            f"{run_dir} holds a run with another config; train into another folder "
            "(hydra.run.dir=...), or add resume=false to replace it"
        )


def _loadable_checkpoint(run_dir: Path) -> tuple[Path, int] | None:
    """The newest checkpoint that loads (safely: tensors and plain data only), with its
    global step; a truncated or corrupt newer one is skipped with a warning."""
    bad = []
    for path in step_checkpoints(run_dir):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return path, int(state["global_step"])
        except Exception as err:  # noqa: BLE001 - any failure to load means: not this one
            bad.append(f"{path.name} ({type(err).__name__})")
            log.warning("checkpoint %s does not load (%s); trying an older one", path, err)
    if bad:
        raise UserError(
            f"no checkpoint in {run_dir / CHECKPOINT_DIR} loads ({', '.join(bad)}); add "
            "resume=false to start the run again"
        )
    return None


def _clear_run(run_dir: Path) -> None:
    """Starting over: the previous attempt's history, metrics and checkpoints go, so none
    of them can be mistaken for this run's."""
    for name in (HISTORY_FILE, METRICS_FILE, ADAPTIVE_FILE):
        (run_dir / name).unlink(missing_ok=True)
    if (run_dir / CHECKPOINT_DIR).is_dir():
        shutil.rmtree(run_dir / CHECKPOINT_DIR)


def _labelled_data(config: Config, data: MLMDataModule) -> LabelledDataModule:
    """The fine-tuning task, read, checked and tokenized with the pretraining tokenizer."""
    assert data.corpus is not None, "set up the MLM data first: its tokenizer is needed"
    ft = config.finetune
    task = load_task(ft, corpus_seed=config.data.corpus_seed)
    log.info(
        "fine-tuning task %s: %d classes, %d train / %d dev examples",
        task.name,
        task.n_classes,
        len(task.train_labels),
        len(task.dev_labels),
    )
    return LabelledDataModule(
        task,
        data.corpus.tokenizer,
        seq_len=config.data.seq_len,
        batch_size=ft.batch_size,
        seed=ft.seed,
        num_workers=config.impl.num_workers,
    )


def finetune(
    config: Config, encoder: MaskedLM, labelled: LabelledDataModule, run_dir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fine-tune ``encoder`` (in place) on the labelled task and score it on the dev split.

    A second Trainer, with the run's devices and precision and its own length
    (finetune.epochs), seeded with finetune.seed so that the head's initialisation, dropout
    and data order are the same whatever pretraining did. The encoder keeps the attention
    pattern it was pretrained under (keyed by the run's seed). No logger: the scores reach
    metrics.json, and W&B's summary from there. Returns the metrics.json fields, and facts
    about the machine for a run that has no pretraining to record them.
    """
    ft, task = config.finetune, labelled.task
    started = time.perf_counter()
    L.seed_everything(ft.seed, workers=True, verbose=False)
    module = ClassifierModule(encoder, task.n_classes, ft, config.attention, seed=config.seed)
    trainer = _trainer(config, [], None, run_dir, max_epochs=ft.epochs)
    trainer.fit(module, datamodule=labelled)
    if trainer.interrupted:
        raise KeyboardInterrupt("fine-tuning was interrupted")
    if not module.scores:  # trainer.max_steps stopped it before the end of an epoch
        trainer.validate(module, datamodule=labelled, verbose=False)
    scores = {
        "finetune_task": task.name,
        "finetune_classes": task.n_classes,
        "finetune_train_examples": len(task.train_labels),
        "finetune_dev_examples": len(task.dev_labels),
        **{f"finetune_{name}": module.scores[name] for name in DEV_METRICS},
        "finetune_dev_loss": module.scores["loss"],
        "finetune_steps": trainer.global_step,
        "finetune_s": round(time.perf_counter() - started, 3),
    }
    device = trainer.strategy.root_device
    facts = {
        "device": provenance.device_name(device),
        "precision": str(trainer.precision),
        "peak_mem_kind": provenance.peak_mem_kind(device),
        "parameters": encoder.num_parameters(non_embedding=False),
    }
    return scores, facts


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


def _resume_command(run_dir: Path) -> str:
    """The command that continues this run from its newest checkpoint."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("hydra.run.dir=")]
    return " ".join(["dmx train", *overrides, f"hydra.run.dir={run_dir}"])


def _closing_line(summary: dict[str, Any], run_dir: Path) -> str:
    """The one line a finished run ends with; any figure that was not measured reads n/a."""

    def figure(key: str, spec: str) -> str:
        value = summary.get(key)
        return "n/a" if value is None else format(value, spec)

    if summary.get("pretrained", True):
        pretraining = (
            f"val loss {figure('final_val_loss', '.3f')} (best {figure('best_val_loss', '.3f')} "
            f"at epoch {summary.get('best_val_epoch')}), val acc {figure('final_val_acc', '.1%')}, "
            f"{figure('tokens_per_s', ',.0f')} tokens/s"
        )
    else:
        pretraining = "no pretraining"
    finetuned = ""
    if "finetune_task" in summary:
        finetuned = (
            f"; {summary['finetune_task']}: dev acc {figure('finetune_acc', '.1%')}, "
            f"macro-F1 {figure('finetune_f1', '.3f')}"
        )
    return (
        f"done: {summary.get('mask_strategy', '?')}, {pretraining}{finetuned}; "
        f"run folder: {run_dir}"
    )


@hydra.main(version_base="1.3", config_path="pkg://dmx.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Hydra's task: one run. In a multirun a failed run is recorded and the sweep goes on."""
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        config = to_config(cfg)
        if hydra_cfg.mode == RunMode.MULTIRUN:
            config = one_device_per_job(config, int(hydra_cfg.job.num))
        summary = train(config, run_dir)
    except UserError as err:
        print(error_line(err), file=sys.stderr)
        raise SystemExit(UserError.exit_code) from None
    except BaseException as err:
        if hydra_cfg.mode != RunMode.MULTIRUN or not isinstance(err, Exception):
            if is_rank_zero() and (run_dir / CHECKPOINT_DIR).is_dir():
                log.error("the run stopped; continue it with: %s", _resume_command(run_dir))
            raise
        log.error("run %s failed: %s: %s", run_dir, type(err).__name__, err)
        return None
    if is_rank_zero():
        log.info(_closing_line(summary, run_dir))
    return summary.get("final_val_loss")


__all__ = ["encoder_shape", "finetune", "main", "resolve_precision", "train"]
