"""Fine-tuning: the pretrained encoder on a labelled task, scored on its dev split.

A second Trainer, after pretraining, in the same run: the task's data is read and checked
before pretraining starts (:func:`labelled_data`), so a bad TSV file costs seconds, not a
run; :func:`finetune` trains the classifier and returns the metrics.json fields.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L

from dmx import hardware
from dmx.config import Config
from dmx.data.datamodule import MLMDataModule
from dmx.data.labelled import LabelledDataModule, load_tasks
from dmx.model import MaskedLM
from dmx.runtime import build_trainer
from dmx.tasks import ClassifierModule
from dmx.tasks.classify import DEV_METRICS
from dmx.tasks.scores import glue_score

log = logging.getLogger("dmx")


def labelled_data(config: Config, data: MLMDataModule) -> list[LabelledDataModule]:
    """The fine-tuning tasks (one, or GLUE's several), read, checked and tokenized with the
    pretraining tokenizer."""
    assert data.corpus is not None, "set up the MLM data first: its tokenizer is needed"
    ft = config.finetune
    modules = []
    for task in load_tasks(ft, corpus_seed=config.data.corpus_seed):
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
                data.corpus.tokenizer,
                seq_len=ft.max_len or config.data.seq_len,
                batch_size=ft.batch_size,
                seed=ft.seed,
                num_workers=config.impl.num_workers,
            )
        )
    return modules


def finetune_all(
    config: Config, encoder: MaskedLM, tasks: list[LabelledDataModule], run_dir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every task: GLUE's each from a copy of the pretrained encoder, scored as
    ``glue_<task>_<metric>`` with their ``glue_score``; a single task of tsv, hf or embedded
    in place, scored as ``finetune_<metric>``."""
    if config.finetune.name != "glue":
        (labelled,) = tasks
        return finetune(config, encoder, labelled, run_dir)
    scores: dict[str, Any] = {}
    figures: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for labelled in tasks:
        task = labelled.task
        assert task.glue is not None
        model = copy.deepcopy(encoder)  # pretrained once, fine-tuned once per task
        if task.train_pairs is not None:
            model.add_segments()
        module, trainer = _fit(config, model, labelled, run_dir)
        key = task.glue.key
        scores |= {f"glue_{key}_{name}": value for name, value in module.scores.items()}
        scores[f"glue_{key}_steps"] = trainer.global_step
        if task.glue.in_score:
            figures[key] = {m: module.scores[m] for m in task.glue.metrics}
    scores["glue_score"] = glue_score(figures)
    scores["glue_tasks"] = [labelled.task.name for labelled in tasks]
    scores["finetune_s"] = round(time.perf_counter() - started, 3)
    return scores, _facts(trainer, encoder)


def _fit(
    config: Config, encoder: MaskedLM, labelled: LabelledDataModule, run_dir: Path
) -> tuple[ClassifierModule, L.Trainer]:
    """One fine-tuning: a classifier on ``encoder`` (trained in place), seeded with
    finetune.seed, so that the head's initialisation, dropout and data order are the same
    whatever pretraining or an earlier task did; dev scores after every epoch."""
    ft, task = config.finetune, labelled.task
    L.seed_everything(ft.seed, workers=True, verbose=False)
    module = ClassifierModule(
        encoder,
        task.n_classes,
        ft,
        config.attention,
        seed=config.seed,
        glue=task.glue,
        dev_names=labelled.dev_names,
    )
    trainer = build_trainer(config, [], None, run_dir, max_epochs=ft.epochs)
    trainer.fit(module, datamodule=labelled)
    if trainer.interrupted:
        raise KeyboardInterrupt("fine-tuning was interrupted")
    if not module.scores:  # trainer.max_steps stopped it before the end of an epoch
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


def finetune(
    config: Config, encoder: MaskedLM, labelled: LabelledDataModule, run_dir: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fine-tune ``encoder`` (in place) on the labelled task and score it on the dev split.

    A second Trainer, with the run's devices and precision and its own length
    (finetune.epochs). The encoder keeps the attention pattern it was pretrained under
    (keyed by the run's seed). No logger: the scores reach metrics.json, and W&B's summary
    from there. Returns the metrics.json fields, and facts about the machine for a run that
    has no pretraining to record them.
    """
    task = labelled.task
    started = time.perf_counter()
    module, trainer = _fit(config, encoder, labelled, run_dir)
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
    return scores, _facts(trainer, encoder)
