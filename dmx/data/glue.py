"""The GLUE tasks, read from the files GLUE's download script leaves, as distributed.

Each task's files have their own layout, and every quirk is read as it is, never cleaned
first (checked against real copies of each file):

* CoLA has no header row: source, label, the original author's mark, sentence.
* MRPC's header is ``Quality  #1 ID  #2 ID  #1 String  #2 String`` and starts with a UTF-8
  byte-order mark (read with ``utf-8-sig``).
* RTE, QNLI and MNLI label with strings (``entailment``, ``not_entailment``, ``neutral``,
  ``contradiction``); STS-B's label is a float score in [0, 5], written as ``5.000``, ``3.8``
  or ``4``.
* MNLI has two dev files, ``dev_matched.tsv`` and ``dev_mismatched.tsv``.
* QQP has rows with missing fields; they are skipped and counted, as GLUE's own processors
  skip them. In any other task a short row is an error naming its line.
* Sentences hold ``"`` characters (MRPC, STS-B, QNLI, RTE): files are read with quoting off,
  as GLUE's loaders do; with Python's default quoting a field that starts with ``"`` swallows
  the tabs and lines after it.

The GLUE paper's task table names each task's metrics: Matthews correlation for CoLA,
Pearson and Spearman correlation for STS-B, F1 and accuracy for MRPC and QQP, accuracy for
the rest. WNLI is read but left out of the GLUE score, as the GLUE baselines do.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmx.common.errors import UserError

Column = str | int  # a header name, or a position for a file without a header


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task: where its columns are, its labels, and the metrics GLUE scores it by."""

    name: str  # as GLUE and its download script spell it: the folder's name
    text_a: Column
    text_b: Column | None  # None: a single-sentence task
    label: Column
    classes: tuple[str, ...] | None  # the label set in id order; None: regression (STS-B)
    metrics: tuple[str, ...]  # the task's figures; the GLUE score takes their mean
    header: bool = True
    # (split, file name) of each dev file; the first is the task's own dev score.
    dev_files: tuple[tuple[str, str], ...] = (("dev", "dev.tsv"),)
    skips_short_rows: bool = False
    in_score: bool = True

    @property
    def key(self) -> str:
        """The task in metric names: lower case without hyphens (``SST-2`` -> ``sst2``)."""
        return self.name.lower().replace("-", "")

    @property
    def is_pair(self) -> bool:
        return self.text_b is not None

    @property
    def is_regression(self) -> bool:
        return self.classes is None


BINARY = ("0", "1")
TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("CoLA", 3, None, 1, BINARY, ("mcc",), header=False),
        GlueTask("SST-2", "sentence", None, "label", BINARY, ("acc",)),
        GlueTask("MRPC", "#1 String", "#2 String", "Quality", BINARY, ("f1", "acc")),
        GlueTask("STS-B", "sentence1", "sentence2", "score", None, ("pearson", "spearman")),
        GlueTask(
            "QQP",
            "question1",
            "question2",
            "is_duplicate",
            BINARY,
            ("f1", "acc"),
            skips_short_rows=True,
        ),
        GlueTask(
            "MNLI",
            "sentence1",
            "sentence2",
            "gold_label",
            ("contradiction", "entailment", "neutral"),
            ("acc",),
            dev_files=(("dev", "dev_matched.tsv"), ("dev_mm", "dev_mismatched.tsv")),
        ),
        GlueTask(
            "QNLI", "question", "sentence", "label", ("entailment", "not_entailment"), ("acc",)
        ),
        GlueTask(
            "RTE", "sentence1", "sentence2", "label", ("entailment", "not_entailment"), ("acc",)
        ),
        GlueTask("WNLI", "sentence1", "sentence2", "label", BINARY, ("acc",), in_score=False),
    )
}


@dataclass(frozen=True)
class Examples:
    """One split of a task: sentences (and their partners), labels as floats for STS-B and
    as class ids otherwise; ``skipped`` counts QQP's rows with missing fields."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[float] | list[int]
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.texts)


def task_named(name: str) -> GlueTask:
    """A task by its GLUE name, forgiving case and the hyphen (``sst2``, ``STS-B``)."""
    wanted = name.lower().replace("-", "")
    for task in TASKS.values():
        if task.key == wanted:
            return task
    raise UserError(f"finetune.tasks: no GLUE task {name!r}; choose from {', '.join(TASKS)}")


def read_split(task: GlueTask, path: Path) -> Examples:
    """One of ``task``'s files, read as distributed; any problem is one line naming the
    file, the line and what was expected."""
    if not path.is_file():
        raise UserError(
            f"finetune.glue_dir: {task.name} needs {path}, which is missing; lay the folder "
            "out as GLUE's download script does (DIR/<TASK>/train.tsv and dev.tsv)"
        )
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return _read_rows(task, path, csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as err:
        raise UserError(f"finetune.glue_dir: {path} is not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise UserError(
            f"finetune.glue_dir: {path} cannot be read ({err.strerror or err})"
        ) from None


def _read_rows(task: GlueTask, path: Path, rows: csv.Reader) -> Examples:  # type: ignore[name-defined]
    columns = [task.text_a, task.label] + ([task.text_b] if task.text_b is not None else [])
    if task.header:
        header = [h.strip() for h in next(rows, [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise UserError(
                f"finetune.glue_dir: {path} has no column {missing[0]!r} (its header: "
                f"{', '.join(header) or 'empty'}); is this {task.name}'s file as GLUE "
                "distributes it?"
            )
        where = {c: header.index(c) for c in columns}  # type: ignore[arg-type]
    else:
        where = {c: c for c in columns}
    needed = max(where.values()) + 1  # type: ignore[type-var]
    texts: list[str] = []
    pairs: list[str] = []
    labels: list = []
    skipped = 0
    for row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line, often the last one
        if len(row) < needed:
            if task.skips_short_rows:
                skipped += 1
                continue
            raise UserError(
                f"finetune.glue_dir: {path} line {rows.line_num} has {len(row)} fields, "
                f"{task.name} needs {needed}; is it {task.name}'s file, tab-separated?"
            )
        labels.append(_label(task, row[where[task.label]].strip(), path, rows.line_num))
        texts.append(row[where[task.text_a]])
        if task.text_b is not None:
            pairs.append(row[where[task.text_b]])
    if not texts:
        raise UserError(f"finetune.glue_dir: {path} holds no examples")
    return Examples(texts, pairs if task.is_pair else None, labels, skipped)


def _label(task: GlueTask, raw: str, path: Path, line: int) -> int | float:
    if task.classes is None:
        try:
            score = float(raw)
        except ValueError:
            score = float("nan")
        if not 0.0 <= score <= 5.0:
            raise UserError(
                f"finetune.glue_dir: {path} line {line}: {task.name}'s label is a score in "
                f"[0, 5], got {raw!r}"
            )
        return score
    if raw not in task.classes:
        raise UserError(
            f"finetune.glue_dir: {path} line {line}: {task.name}'s label is one of "
            f"{', '.join(task.classes)}, got {raw!r}"
        )
    return task.classes.index(raw)


# HuggingFace's copy of GLUE (finetune=glue with no glue_dir): the same tasks as parquet
# files, with its own column names, its ClassLabel ids and MNLI's two validation splits.
HUB_DATASET = "nyu-mll/glue"


@dataclass(frozen=True)
class HubLayout:
    config: str
    text_a: str
    text_b: str | None
    # (dmx's split, the hub's split) of each dev split, as GlueTask.dev_files
    dev_splits: tuple[tuple[str, str], ...] = (("dev", "validation"),)


HUB: dict[str, HubLayout] = {
    "CoLA": HubLayout("cola", "sentence", None),
    "SST-2": HubLayout("sst2", "sentence", None),
    "MRPC": HubLayout("mrpc", "sentence1", "sentence2"),
    "STS-B": HubLayout("stsb", "sentence1", "sentence2"),
    "QQP": HubLayout("qqp", "question1", "question2"),
    "MNLI": HubLayout(
        "mnli",
        "premise",
        "hypothesis",
        (("dev", "validation_matched"), ("dev_mm", "validation_mismatched")),
    ),
    "QNLI": HubLayout("qnli", "question", "sentence"),
    "RTE": HubLayout("rte", "sentence1", "sentence2"),
    "WNLI": HubLayout("wnli", "sentence1", "sentence2"),
}


def hub_split(task: GlueTask, data: Any) -> Examples:
    """One split of HuggingFace's GLUE as the TSV reader gives it: the hub's label ids are
    its ClassLabel's, so a string-labelled task (RTE, QNLI, MNLI) is mapped through the
    label names to this task's ids; 0/1 tasks and STS-B's scores are the files' own."""
    layout = HUB[task.name]
    labels: list = list(data["label"])
    if task.classes is None:
        labels = [float(v) for v in labels]
    elif task.classes != BINARY:
        names = data.features["label"].names
        labels = [task.classes.index(names[v]) for v in labels]
    else:
        labels = [int(v) for v in labels]
    pairs = list(data[layout.text_b]) if layout.text_b else None
    return Examples(list(data[layout.text_a]), pairs, labels)


__all__ = [
    "HUB",
    "HUB_DATASET",
    "TASKS",
    "Examples",
    "GlueTask",
    "HubLayout",
    "hub_split",
    "read_split",
    "task_named",
]
