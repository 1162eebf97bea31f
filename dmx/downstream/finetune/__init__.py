"""Fine-tuning: the pretrained encoder on labelled tasks, scored by the protocol the papers
use.

The tasks are read and checked before anything else (:func:`read_tasks`), so a bad file
costs seconds, not a run, and leaves no run behind. :func:`finetune_all` then runs the
protocol on each task: every learning rate of ``finetune.lrs`` with every seed of
``finetune.seeds``, each cell a fresh copy of the one pretrained encoder fine-tuned for up
to ``finetune.epochs`` epochs and scored on dev after each (:mod:`~.grid` keeps the cells in
the run folder, :mod:`~.protocol` picks the reported figures from them).
"""

from __future__ import annotations

import copy
import logging
import math
import re
import time
from pathlib import Path
from typing import Any

import lightning as L
from tokenizers import Tokenizer

from dmx.common import hardware
from dmx.config import Config
from dmx.data.labelled import LabelledDataModule
from dmx.data.task_readers import load_tasks
from dmx.data.tasks import LabelledTask
from dmx.downstream.finetune.grid import Cell, Progress, read_cell, write_cell
from dmx.downstream.finetune.protocol import Choice, best_epoch, choose
from dmx.model import MaskedLM
from dmx.training.classify import DEV_METRICS, ClassifierModule
from dmx.training.scores import glue_score
from dmx.training.trainer import build_trainer

log = logging.getLogger("dmx")


def read_tasks(config: Config) -> list[LabelledTask]:
    """The fine-tuning tasks ``config.finetune`` names (none for ``finetune=none``), read and
    checked: the first thing a run does, before the corpus, so a bad file is one line."""
    if config.finetune.name == "none":
        return []
    return load_tasks(config.finetune, corpus_seed=config.data.corpus_seed)


def labelled_data(
    config: Config, tasks: list[LabelledTask], tokenizer: Tokenizer
) -> list[LabelledDataModule]:
    """The tasks (one, or GLUE's several) tokenized with the pretraining tokenizer."""
    ft = config.finetune
    modules = []
    for task in tasks:
        log.info(
            "fine-tuning task %s: %s, %d train / %d dev examples",
            task.name,
            "a regression" if task.regression else f"{task.n_classes} classes",
            len(task.train_labels),
            len(task.dev_labels),
        )
        modules.append(
            LabelledDataModule(
                task,
                tokenizer,
                seq_len=ft.max_len or config.data.seq_len,
                batch_size=ft.batch_size,
                seed=ft.seeds[0],
                num_workers=config.impl.num_workers,
            )
        )
    return modules


def task_folder(labelled: LabelledDataModule, config: Config) -> str:
    """The task's folder under finetune/: GLUE's key (cola, sst2), or finetune.name."""
    task = labelled.task
    if task.glue is not None:
        return task.glue.key
    return re.sub(r"[^a-z0-9]+", "_", config.finetune.name.lower())


def main_metrics(labelled: LabelledDataModule) -> tuple[str, ...]:
    """What a task is judged by when the protocol picks epochs and learning rates: GLUE's
    figures for a GLUE task, accuracy otherwise."""
    glue = labelled.task.glue
    return glue.metrics if glue is not None else ("acc",)


def cell_settings(config: Config, labelled: LabelledDataModule) -> dict[str, Any]:
    """Everything besides the learning rate and the seed that makes a cell's figures what
    they are: a cell made with other settings is not one of this grid's."""
    ft, task = config.finetune, labelled.task
    return {
        "task": task.name,
        "train_examples": len(task.train_labels),
        "dev_examples": len(task.dev_labels),
        "epochs": ft.epochs,
        "batch_size": ft.batch_size,
        "max_len": ft.max_len or config.data.seq_len,
        "pooling": ft.pooling,
        "dropout": ft.dropout,
        "weight_decay": ft.weight_decay,
        "warmup_frac": ft.warmup_frac,
        "max_steps": config.trainer.max_steps,
        # Only when it is not the default, so cells fine-tuned before the choice existed
        # (all from the final encoder) still count as this grid's.
        **({"encoder": ft.encoder} if ft.encoder != "last" else {}),
    }


def finetune_all(
    config: Config, encoder: MaskedLM, tasks: list[LabelledDataModule], run_dir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The protocol on every task; returns the metrics.json fields (a GLUE task's as
    ``glue_<task>_<metric>`` with their ``glue_score``; a single task of tsv, hf or embedded
    as ``finetune_<metric>``) and facts about the machine, for a run that has no
    pretraining to record them (empty when every cell was already in the folder)."""
    ft = config.finetune
    started = time.perf_counter()
    grid = [
        (labelled, Cell(task_folder(labelled, config), lr, seed))
        for labelled in tasks
        for lr in ft.lrs
        for seed in ft.seeds
    ]
    records, facts = _run_cells(config, encoder, grid, run_dir)
    scores = _task_fields(config, tasks, records)
    scores["finetune_protocol"] = {
        "lrs": list(ft.lrs),
        "seeds": list(ft.seeds),
        "epochs": ft.epochs,
        "cells": len(grid),
    }
    scores["finetune_s"] = round(time.perf_counter() - started, 3)
    return scores, facts


def _run_cells(
    config: Config,
    encoder: MaskedLM,
    grid: list[tuple[LabelledDataModule, Cell]],
    run_dir: Path,
) -> tuple[dict[Cell, dict[str, Any]], dict[str, Any]]:
    """Every cell's record: read from the folder, or fine-tuned now and written there."""
    progress = Progress(
        {cell: len(labelled.task.train_labels) * config.finetune.epochs for labelled, cell in grid}
    )
    # Every finished cell is read first: one made with other settings stops the run before
    # anything trains, and the estimate of the time left counts only what is left.
    settings = {cell: cell_settings(config, labelled) for labelled, cell in grid}
    found = {cell: read_cell(run_dir, cell, settings[cell]) for _, cell in grid}
    records: dict[Cell, dict[str, Any]] = {}
    facts: dict[str, Any] = {}
    for labelled, cell in grid:
        record = found[cell]
        if record is not None:
            progress.skip(cell)
            records[cell] = record
            continue
        began = progress.start(cell, labelled.task.name)
        model = copy.deepcopy(encoder)  # pretrained once, fine-tuned once per cell
        if labelled.task.train_pairs is not None:
            model.add_segments()
        module, trainer = _fit(config, model, labelled, run_dir, cell)
        best = best_epoch(module.history, main_metrics(labelled))
        seconds = progress.finish(cell, began)
        records[cell] = write_cell(
            run_dir, cell, settings[cell], module.history, best, trainer.global_step, seconds
        )
        facts = _facts(trainer, encoder)
    return records, facts


def _task_fields(
    config: Config, tasks: list[LabelledDataModule], records: dict[Cell, dict[str, Any]]
) -> dict[str, Any]:
    """What the protocol reports for each task, under its metrics.json names."""
    ft = config.finetune
    scores: dict[str, Any] = {}
    figures: dict[str, dict[str, float]] = {}
    spreads = []
    for labelled in tasks:
        folder = task_folder(labelled, config)
        cells = {(c.lr, c.seed): r["best"] for c, r in records.items() if c.task == folder}
        choice = choose(cells, ft.lrs, ft.seeds, main_metrics(labelled))
        steps = records[Cell(folder, choice.lr, ft.seeds[0])]["steps"]
        glue = labelled.task.glue
        if glue is None:
            scores |= _single_task_fields(labelled, choice, steps)
            continue
        key = glue.key
        scores |= {f"glue_{key}_{name}": value for name, value in choice.scores.items()}
        scores |= {
            f"glue_{key}_lr": choice.lr,
            f"glue_{key}_seed_spread": choice.seed_spread,
            f"glue_{key}_steps": steps,
        }
        if glue.in_score:
            figures[key] = {m: choice.scores[m] for m in glue.metrics}
            spreads.append(choice.seed_spread)
    if ft.name == "glue":
        scores["glue_score"] = glue_score(figures)
        scores["glue_seed_spread"] = sum(spreads) / len(spreads) if spreads else math.nan
        scores["glue_tasks"] = [labelled.task.name for labelled in tasks]
    return scores


def _single_task_fields(labelled: LabelledDataModule, choice: Choice, steps: int) -> dict[str, Any]:
    """A tsv, hf or embedded task's figures under the names metrics.json has always used."""
    task = labelled.task
    return {
        "finetune_task": task.name,
        "finetune_classes": task.n_classes,
        "finetune_train_examples": len(task.train_labels),
        "finetune_dev_examples": len(task.dev_labels),
        **{f"finetune_{name}": choice.scores[name] for name in DEV_METRICS},
        "finetune_dev_loss": choice.scores["loss"],
        "finetune_lr": choice.lr,
        "finetune_seed_spread": choice.seed_spread,
        "finetune_steps": steps,
    }


def _fit(
    config: Config, encoder: MaskedLM, labelled: LabelledDataModule, run_dir: Path, cell: Cell
) -> tuple[ClassifierModule, L.Trainer]:
    """One cell: a classifier on ``encoder`` (trained in place) at the cell's learning rate,
    seeded with the cell's seed, so that the head's initialisation, dropout and data order
    are the same whatever pretraining or an earlier cell did; dev scores after every epoch.
    """
    ft, task = config.finetune, labelled.task
    L.seed_everything(cell.seed, workers=True, verbose=False)
    labelled.seed = cell.seed  # the training split's order
    module = ClassifierModule(
        encoder,
        task.n_classes,
        ft,
        config.attention,
        seed=config.seed,
        glue=task.glue,
        dev_names=labelled.dev_names,
        lr=cell.lr,
    )
    trainer = build_trainer(config, [], None, run_dir, max_epochs=ft.epochs)
    trainer.fit(module, datamodule=labelled)
    if trainer.interrupted:
        raise KeyboardInterrupt("fine-tuning was interrupted")
    if not module.history:  # trainer.max_steps stopped it before the end of an epoch
        trainer.validate(module, datamodule=labelled, verbose=False)
    return module, trainer


def _facts(trainer: L.Trainer, encoder: MaskedLM) -> dict[str, Any]:
    """Where and how fine-tuning computed, for a run without pretraining to record it."""
    device = trainer.strategy.root_device
    return {
        "device": hardware.device_name(device),
        "precision": str(trainer.precision),
        "peak_mem_kind": hardware.peak_memory_kind(device),
        "parameters": encoder.num_parameters(non_embedding=False),
    }


__all__ = [
    "cell_settings",
    "finetune_all",
    "labelled_data",
    "main_metrics",
    "read_tasks",
    "task_folder",
]
