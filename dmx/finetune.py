"""Fine-tuning: the pretrained encoder on a labelled task, scored on its dev split.

A second Trainer, after pretraining, in the same run: the task's data is read and checked
before pretraining starts (:func:`labelled_data`), so a bad TSV file costs seconds, not a
run; :func:`finetune` trains the classifier and returns the metrics.json fields.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L

from dmx import hardware
from dmx.config import Config
from dmx.data.datamodule import MLMDataModule
from dmx.data.labelled import LabelledDataModule, load_task
from dmx.model import MaskedLM
from dmx.runtime import build_trainer
from dmx.tasks import ClassifierModule
from dmx.tasks.classify import DEV_METRICS

log = logging.getLogger("dmx")


def labelled_data(config: Config, data: MLMDataModule) -> LabelledDataModule:
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
    trainer = build_trainer(config, [], None, run_dir, max_epochs=ft.epochs)
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
        "device": hardware.device_name(device),
        "precision": str(trainer.precision),
        "peak_mem_kind": hardware.peak_memory_kind(device),
        "parameters": encoder.num_parameters(non_embedding=False),
    }
    return scores, facts
