"""``dmx finetune`` and ``dmx eval``: downstream on the encoder a finished run kept, without
pretraining it again. Each holds the run folder's lock while it works, reads what is
already there (cells, scored paradigms) instead of computing it again, and rewrites
metrics.json with everything it held plus the new fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmx.common.errors import UserError
from dmx.common.files import write_json
from dmx.common.run_folder import METRICS_FILE, STATUS_DONE, read_metrics
from dmx.config import Config
from dmx.downstream.finetune import finetune_all, labelled_data, read_tasks
from dmx.downstream.zeroshot import evaluate, read_suite, without_suite
from dmx.run.allocator import keep_freed_memory
from dmx.run.train import holding
from dmx.training.encoder import load_encoder
from dmx.training.trainer import using_threads


def add_finetuning(config: Config, run_dir: Path) -> dict[str, Any]:
    """``dmx finetune``: the protocol's cells for ``config.finetune`` on the encoder a
    finished run kept, without pretraining again; returns the updated metrics.json.

    Cells already in the folder are read, not trained again, so a rerun trains nothing and
    a killed one resumes at the first missing cell. metrics.json keeps everything it held
    and gains (or updates) the fine-tuning fields.
    """
    with holding(run_dir, "wait for it to finish"):
        metrics = _finished(run_dir)
        tasks = read_tasks(config)
        encoder, tokenizer = load_encoder(config, run_dir, config.finetune.encoder)
        labelled = labelled_data(config, tasks, tokenizer)
        if config.impl.compile:
            encoder.compile_blocks()
        scores, _ = finetune_all(config, encoder, labelled, run_dir)
        metrics.update(scores, finetune_encoder=config.finetune.encoder)
        write_json(run_dir / METRICS_FILE, metrics)
    from dmx.tracking.wandb_run import log_finetuning  # W&B is imported only when a run needs it

    log_finetuning(config, run_dir, metrics)
    return metrics


def add_eval(config: Config, run_dir: Path) -> dict[str, Any]:
    """``dmx eval``: the zero-shot suite of ``config.eval`` on the encoder a finished run
    kept, without pretraining again; returns the updated metrics.json.

    Paradigms already scored with the same settings are read, not scored again, so a rerun
    scores nothing and a killed one goes on at the first paradigm missing. metrics.json
    keeps everything it held and gains (or updates) the zero-shot fields.
    """
    keep_freed_memory()  # the copies' batches are allocated and freed again and again
    with holding(run_dir, "wait for it to finish"):
        metrics = _finished(run_dir)
        suite = read_suite(config)
        encoder, tokenizer = load_encoder(config, run_dir, config.eval.encoder)
        with using_threads(config.impl.threads):
            scores = evaluate(config, encoder, tokenizer, suite, run_dir)
        metrics = {**without_suite(metrics, config.eval.name), **scores}
        write_json(run_dir / METRICS_FILE, metrics)
    return metrics


def _finished(run_dir: Path) -> dict[str, Any]:
    """A finished run's metrics; an unfinished one is refused with the command that ends it."""
    metrics = read_metrics(run_dir)
    if metrics.get("status") != STATUS_DONE:
        raise UserError(
            f"{run_dir} holds an unfinished run (status {metrics.get('status')}); finish "
            "it first with the dmx train command that started it"
        )
    return metrics


__all__ = ["add_eval", "add_finetuning"]
