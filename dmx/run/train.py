"""Build one run from a checked :class:`Config` and run it: pretraining, then fine-tuning.

What it assembles lives elsewhere: the DataModules in :mod:`dmx.data`, the model in
:mod:`dmx.model`, the LightningModules in :mod:`dmx.training`, the Trainer in
:mod:`dmx.training.trainer`, what a folder already holds in :mod:`dmx.run.resume`, the run-folder
callback in :mod:`dmx.run.callbacks`. The Hydra entry that calls :func:`train` is
:mod:`dmx.run.entry`; tests call :func:`train` directly.

A run pretrains, then (``finetune=...``) fine-tunes the same encoder on a labelled task in a
second Trainer and adds the dev scores to metrics.json; ``trainer.max_epochs=0`` skips
pretraining, so the classifier is trained from the encoder's initialisation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from omegaconf import OmegaConf

from dmx.common.errors import UserError
from dmx.common.files import atomic_write_text
from dmx.common.run_folder import (
    CONFIG_FILE,
    ENCODER_FILE,
    METRICS_FILE,
    RunFolderBusy,
    RunLock,
    is_rank_zero,
)
from dmx.config import Config
from dmx.data.datamodule import MLMDataModule
from dmx.data.labelled import LabelledDataModule
from dmx.data.minimal_pairs import Paradigm
from dmx.data.tasks import LabelledTask
from dmx.downstream.finetune import finetune_all, labelled_data, read_tasks
from dmx.downstream.zeroshot import epoch_scorer, evaluate, read_suite
from dmx.model import MaskedLM
from dmx.run import stops
from dmx.run.allocator import keep_freed_memory
from dmx.run.callbacks import RunFolder
from dmx.run.resume import Checkpoint, clear_run, kept_pretraining, previous_run, read_json_field
from dmx.training.encoder import load_encoder, new_encoder, save_encoder
from dmx.training.mlm import MLMModule
from dmx.training.trainer import build_trainer, using_threads

if TYPE_CHECKING:
    from dmx.tracking.wandb_run import WandbRun

log = logging.getLogger("dmx")


class RunFolderInUse(UserError):
    """Another dmx process is training into the run folder (it holds the lock)."""


def train(config: Config, run_dir: Path) -> dict[str, Any]:
    """Train one run into ``run_dir``; returns the final metrics.json content.

    Any fault marks the run failed (with the reason) before it propagates, and leaves the
    files written so far intact; a signal's stop (:mod:`dmx.run.stops`) marks it interrupted,
    at a checkpoint. A folder another process is training into is refused before anything
    in it is touched.
    """
    keep_freed_memory()
    # SIGTERM and Ctrl-C stop at a checkpoint (dmx.run.stops)
    with using_threads(config.impl.threads), stops.catching():
        if not is_rank_zero():  # a data-parallel worker: rank 0 holds the folder and writes it
            return _train(config, run_dir, rank_zero=False)
        elsewhere = "wait for it to finish or train into another folder (hydra.run.dir=...)"
        with holding(run_dir, elsewhere):
            return _train(config, run_dir, rank_zero=True)


@contextmanager
def holding(run_dir: Path, fix: str) -> Iterator[None]:
    """The folder's lock for the block; a folder another process holds is refused, with
    ``fix`` saying what to do, before anything in it is touched."""
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except RunFolderBusy:
        raise RunFolderInUse(
            f"run folder {run_dir} is in use by another dmx process; {fix}"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _train(config: Config, run_dir: Path, rank_zero: bool) -> dict[str, Any]:
    began = time.perf_counter()  # wall_s and setup_s (to the first step) count from here
    previous = previous_run(config, run_dir)
    if isinstance(previous, dict):  # finished: nothing to train
        log.info(
            "run folder %s holds a finished run; nothing to train (resume=false, or "
            "dmx sweep --force, trains it again; dmx finetune adds fine-tuning to it)",
            run_dir,
        )
        return previous
    # An earlier attempt finished pretraining and kept the encoder: only fine-tuning is left.
    # What it recorded is read now, before the folder is opened (which writes metrics.json).
    pretraining = kept_pretraining(config, run_dir)
    encoder_kept = pretraining is not None
    # A resumed run goes on logging into the same W&B run.
    resumed = previous is not None or encoder_kept
    wandb_id = read_json_field(run_dir / METRICS_FILE, "wandb_id") if resumed else None
    # Every input is read and checked before the folder is touched: a user's mistake (a bad
    # path, file or column) stops here with its one line and leaves no run, so the
    # corrected command starts afresh. Any other fault is recorded in the folder as a
    # failed run, as a fault later on is, so a sweep's report counts it.
    try:
        tasks = read_tasks(config)
        suite = read_suite(config)
        data = _pretraining_data(config)
    except (UserError, stops.Stop):  # a stop here has trained nothing: there is no run yet
        raise
    except BaseException as err:
        _open_folder(config, run_dir, previous, rank_zero, fresh=not resumed, began=began).fail(err)
        raise
    folder = _open_folder(config, run_dir, previous, rank_zero, fresh=not resumed, began=began)
    logger = None
    try:
        labelled = _record_data(config, data, tasks, folder)
        model = _encoder(config, run_dir, data, folder, pretraining)
        if suite and config.eval.epochs and rank_zero:
            assert data.corpus is not None
            folder.score = epoch_scorer(config, suite, data.corpus.tokenizer)
            folder.score_epochs = set(config.eval.epochs)
        if rank_zero:
            logger = _logger(config, run_dir, data, folder, wandb_id)
        if not encoder_kept:
            if config.trainer.max_epochs > 0:
                pretrain(config, data, model, folder, logger, run_dir, previous)
            else:
                log.info("trainer.max_epochs=0: no pretraining; the encoder keeps its init")
            if rank_zero:
                assert data.corpus is not None
                save_encoder(run_dir, model, data.corpus.tokenizer)
        _downstream(config, model, data, labelled, suite, folder, run_dir)
        folder.finish()
    except BaseException as err:
        folder.fail(err)
        raise
    finally:
        if logger:
            logger.close(folder.summary)
    return folder.summary


def _downstream(
    config: Config,
    model: MaskedLM,
    data: MLMDataModule,
    labelled: list[LabelledDataModule],
    suite: list[Paradigm],
    folder: RunFolder,
    run_dir: Path,
) -> None:
    """What is measured after pretraining, in order: fine-tuning (each cell on a copy of
    the encoder), then the zero-shot suite on the encoder itself (rank 0 only)."""
    if labelled:
        encoder = _chosen_encoder(config, config.finetune.encoder, model, run_dir)
        scores, facts = finetune_all(config, encoder, labelled, run_dir)
        # Without pretraining no fit has recorded where and how the run computed.
        folder.write_summary(**{k: v for k, v in facts.items() if k not in folder.summary})
        folder.write_summary(**scores, finetune_encoder=config.finetune.encoder)
    if suite and is_rank_zero():
        assert data.corpus is not None
        encoder = _chosen_encoder(config, config.eval.encoder, model, run_dir)
        folder.write_summary(**evaluate(config, encoder, data.corpus.tokenizer, suite, run_dir))


def _chosen_encoder(config: Config, which: str, model: MaskedLM, run_dir: Path) -> MaskedLM:
    """The encoder downstream starts from: this run's final one, or the one kept at the
    best validation loss."""
    return model if which == "last" else load_encoder(config, run_dir, which)[0]


def _encoder(
    config: Config,
    run_dir: Path,
    data: MLMDataModule,
    folder: RunFolder,
    pretraining: dict[str, Any] | None,
) -> MaskedLM:
    """The encoder this attempt trains: the one an earlier attempt kept when it finished
    pretraining (its record joins this one's), or a fresh one from the run's seed."""
    if pretraining is not None:
        model, _ = load_encoder(config, run_dir)
        folder.summary = {**pretraining, **folder.summary}
        log.info(
            "pretraining finished in an earlier attempt: fine-tuning from %s",
            run_dir / ENCODER_FILE,
        )
    else:
        # The same seed gives the same initial weights whatever the mask strategy.
        torch.manual_seed(config.seed)
        model = new_encoder(config, data.vocab_size)
    if config.impl.compile:
        model.compile_blocks()
    return model


def _logger(
    config: Config, run_dir: Path, data: MLMDataModule, folder: RunFolder, wandb_id: str | None
) -> WandbRun | None:
    """The run's W&B run, named after its sweep cell (``wandb_id`` continues a resumed
    run's); its id, group and name are recorded so dmx finetune can log beside it."""
    # W&B is imported only when a run needs it
    from dmx.tracking.names import run_names
    from dmx.tracking.wandb_run import make_logger

    strategy = data.train_masker.strategy
    names = run_names(config, strategy)
    logger = make_logger(config, run_dir, strategy, names, run_id=wandb_id)
    if logger is not None:
        group, name = names
        folder.write_summary(wandb_id=logger.run_id, wandb_group=group, wandb_name=name)
    return logger


def _open_folder(
    config: Config,
    run_dir: Path,
    previous: Checkpoint | None,
    rank_zero: bool,
    fresh: bool,
    began: float,
) -> RunFolder:
    """The run-folder callback, after a fresh start has cleared the old attempt's files and
    the config is recorded (rank 0 only).

    ``attempts`` counts the processes that have trained into the folder: 1 for a run
    trained at one go, one more for each resume; a finished run's is never raised, since a
    finished run is never opened again."""
    earlier = None if fresh else read_json_field(run_dir / METRICS_FILE, "attempts")
    if rank_zero:
        if fresh:
            clear_run(run_dir)
        atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.structured(config)))
    impl = config.impl
    folder = RunFolder(
        run_dir,
        config.seed,
        checkpoint=impl.checkpoint,
        rank_zero=rank_zero,
        every_n_steps=impl.checkpoint_every_n_steps,
        keep=impl.keep_checkpoints,
        started=began,
    )
    folder.write_summary(
        resumed_from_step=previous.step if previous else 0,
        attempts=1 if fresh else (earlier if isinstance(earlier, int) else 1) + 1,
    )
    if previous:
        log.info("resuming from %s (step %d)", previous.path, previous.step)
    return folder


def _pretraining_data(config: Config) -> MLMDataModule:
    """The pretraining data, set up: the corpus read (and tokenized once), the masks'
    statistics built. Set up even when pretraining is skipped: its tokenizer and
    vocabulary are the encoder's, and the classifier reads text through them."""
    L.seed_everything(config.seed, workers=True, verbose=False)
    data = MLMDataModule(
        config.data,
        config.mask,
        config.seed,
        num_workers=config.impl.num_workers,
        cache_dir=config.impl.cache_dir,
    )
    data.setup("fit")
    return data


def _record_data(
    config: Config, data: MLMDataModule, tasks: list[LabelledTask], folder: RunFolder
) -> list[LabelledDataModule]:
    """What the run reads, in its summary and log; the fine-tuning tasks tokenized."""
    assert data.corpus is not None
    folder.write_summary(
        mask_strategy=data.train_masker.strategy,
        attention=config.attention.pattern,
        pretrained=config.trainer.max_epochs > 0,
        # Names the token streams exactly (content, parsing, tokenizer): two runs with
        # the same fingerprint trained on the same tokens.
        corpus_fingerprint=data.corpus.fingerprint,
    )
    log.info("corpus: %s", data.corpus.stats)
    labelled = labelled_data(config, tasks, data.corpus.tokenizer)
    copies = config.mask.copies
    if copies is not None and copies >= config.trainer.max_epochs > 1:
        log.warning(
            "mask.copies=%d >= trainer.max_epochs=%d: every epoch gets a mask no earlier "
            "epoch used, so this run masks exactly as dynamic masking would",
            copies,
            config.trainer.max_epochs,
        )
    return labelled


def pretrain(
    config: Config,
    data: MLMDataModule,
    model: MaskedLM,
    folder: RunFolder,
    logger: Any,
    run_dir: Path,
    resume_from: Checkpoint | None = None,
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
    trainer = build_trainer(config, [folder], logger.lightning if logger else None, run_dir)
    ckpt = str(resume_from.path) if resume_from else None
    trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)
    if trainer.interrupted:
        raise KeyboardInterrupt("training was interrupted")
    if not folder.history:  # trainer.max_steps stopped it before the first validation
        trainer.validate(module, datamodule=data, verbose=False)


__all__ = ["RunFolderInUse", "holding", "pretrain", "train"]
