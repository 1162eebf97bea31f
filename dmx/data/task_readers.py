"""Where labelled tasks come from: a user's TSV files, a hub dataset, GLUE's folder or
HuggingFace's copy of GLUE, each read and checked before any training starts.

* ``tsv``: your files in GLUE's layout (a header row, tab-separated, no quoting), with the
  text in ``finetune.text_column``, the label in ``finetune.label_column`` and, for a pair
  task, the second text in ``finetune.text_pair_column``;
* ``hf``: a hub dataset (``glue``/``sst2``) through the ``datasets`` package, when installed
  and reachable, with the same three columns;
* ``glue``: GLUE's tasks from the folder its download script leaves (:mod:`dmx.data.glue`
  reads each file as distributed), or, with no folder, from HuggingFace's ``nyu-mll/glue``;
* ``embedded``: :func:`dmx.data.tasks.embedded_task`.

Every mistake (a missing file or column, a split the hub dataset lacks, no network) is one
line that names the fix.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dmx.common.errors import UserError, exception_line
from dmx.config import FinetuneConfig
from dmx.data import hub
from dmx.data.glue import HUB, HUB_DATASET, Examples, GlueTask, hub_split, read_split, task_named
from dmx.data.glue import TASKS as GLUE_TASKS
from dmx.data.tasks import LabelledTask, RawSplit, embedded_task, make_task

log = logging.getLogger("dmx")


def load_tasks(cfg: FinetuneConfig, corpus_seed: int = 0) -> list[LabelledTask]:
    """Every task ``finetune`` names, read and checked: GLUE's, or the one task of tsv, hf
    or embedded."""
    if cfg.name == "glue":
        if cfg.glue_dir is None:
            return hub_glue_tasks(cfg.tasks)
        return glue_tasks(Path(cfg.glue_dir), cfg.tasks)
    return [load_task(cfg, corpus_seed)]


def glue_tasks(folder: Path, names: Sequence[str] | None = None) -> list[LabelledTask]:
    """GLUE's tasks from ``folder`` as its download script lays it out: ``names`` (GLUE's
    spelling, case and hyphens forgiven), or every task whose folder is there."""
    if not folder.is_dir():
        raise UserError(
            f"finetune.glue_dir: no such folder {folder}; give the folder GLUE's download "
            "script leaves (it holds CoLA/, SST-2/, MRPC/, ...)"
        )
    if names:
        specs = [task_named(name) for name in names]
    else:
        specs = [spec for spec in GLUE_TASKS.values() if (folder / spec.name).is_dir()]
        if not specs:
            raise UserError(
                f"finetune.glue_dir: {folder} holds no GLUE task folder (CoLA, SST-2, MRPC, "
                "STS-B, QQP, MNLI, QNLI, RTE, WNLI); give the folder GLUE's download script leaves"
            )
    return [glue_task(spec, folder) for spec in specs]


def glue_task(spec: GlueTask, folder: Path) -> LabelledTask:
    """One GLUE task: its train split, its dev split, and MNLI's mismatched dev split when its
    file is there."""
    train = read_split(spec, folder / spec.name / "train.tsv")
    (_, dev_file), *others = spec.dev_files
    dev = read_split(spec, folder / spec.name / dev_file)
    more = tuple(
        (split, read_split(spec, folder / spec.name / name))
        for split, name in others
        if (folder / spec.name / name).is_file()
    )
    for split, examples in (("train", train), ("dev", dev), *more):
        if examples.skipped:
            log.warning(
                "%s %s: skipped %d rows with missing fields", spec.name, split, examples.skipped
            )
    return _glue_labelled(spec, train, dev, more)


def hub_glue_tasks(names: Sequence[str] | None = None) -> list[LabelledTask]:
    """GLUE's tasks from HuggingFace's copy (``nyu-mll/glue``), for finetune=glue without a
    glue_dir: ``names``, or all nine. Read through the datasets library and its cache, so a
    second run reads nothing from the network."""
    specs = [task_named(n) for n in names] if names else list(GLUE_TASKS.values())
    offline = "or give finetune.glue_dir=DIR, the folder GLUE's download script leaves"
    if not hub.installed():
        raise UserError(f"finetune=glue without glue_dir needs the datasets package, {offline}")
    tasks = []
    for spec in specs:
        layout = HUB[spec.name]
        try:
            loaded: Any = hub.load(HUB_DATASET, layout.config)
        except Exception as err:
            raise UserError(
                f"finetune=glue without glue_dir loads {HUB_DATASET} ({layout.config}) from "
                f"the hub, which failed ({exception_line(err)}); connect, {offline}"
            ) from None
        (_, dev_split), *others = layout.dev_splits
        more = tuple((name, hub_split(spec, loaded[split])) for name, split in others)
        train, dev = hub_split(spec, loaded["train"]), hub_split(spec, loaded[dev_split])
        tasks.append(_glue_labelled(spec, train, dev, more))
    return tasks


def _glue_labelled(
    spec: GlueTask, train: Examples, dev: Examples, more: tuple[tuple[str, Examples], ...]
) -> LabelledTask:
    return LabelledTask(
        name=spec.name,
        train_texts=train.texts,
        train_labels=list(train.labels),  # type: ignore[arg-type]
        dev_texts=dev.texts,
        dev_labels=list(dev.labels),  # type: ignore[arg-type]
        classes=spec.classes or (),
        train_pairs=train.pairs,
        dev_pairs=dev.pairs,
        glue=spec,
        more_dev=more,
    )


def load_task(cfg: FinetuneConfig, corpus_seed: int = 0) -> LabelledTask:
    """The task ``finetune.name`` names; ``corpus_seed`` keeps the embedded task apart from
    the pretraining corpus."""
    if cfg.name == "tsv":
        assert cfg.train_path and cfg.dev_path  # FinetuneConfig checks this
        columns = (cfg.text_column, cfg.label_column)
        pair = cfg.text_pair_column
        train = read_tsv(cfg.train_path, *columns, "train_path", pair_column=pair)
        dev = read_tsv(cfg.dev_path, *columns, "dev_path", pair_column=pair)
        return make_task(f"tsv:{Path(cfg.train_path).name}", train, dev)
    if cfg.name == "hf":
        return hf_task(cfg)
    if cfg.name == "embedded":
        return embedded_task(cfg.n_train, cfg.n_dev, corpus_seed)
    raise ValueError(f"no labelled task for finetune.name={cfg.name!r}")


def read_tsv(
    path: str | Path,
    text_column: str,
    label_column: str,
    key: str = "train_path",
    pair_column: str | None = None,
) -> RawSplit:
    """Texts, raw labels and (with ``pair_column``) second texts from a GLUE-style TSV file;
    ``key`` names the setting in errors.

    GLUE's files are read with quoting off (a ``"`` inside a sentence is just a character),
    as its own loaders do; a row shorter than the header is an error with its line number.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"finetune.{key}: {path} is a folder; give a TSV file with a header row")
    if not path.is_file():
        raise UserError(f"finetune.{key}: no such file {path}; give a TSV file with a header row")
    csv.field_size_limit(sys.maxsize)  # a long document in one field is not an error
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(rows, None)
            if not header or not any(h.strip() for h in header):
                raise UserError(
                    f"finetune.{key}: {path} is empty; it needs a header row naming the "
                    f"{text_column!r} and {label_column!r} columns, then one example per line"
                )
            header = [h.strip() for h in header]
            settings = {
                "text_column": text_column,
                "label_column": label_column,
                "text_pair_column": pair_column,
            }
            missing = [(k, c) for k, c in settings.items() if c is not None and c not in header]
            if missing:
                setting, column = missing[0]
                raise UserError(
                    f"finetune.{key}: {path} has no column {column!r} (columns: "
                    f"{', '.join(header)}); set finetune.{setting}=... to one of them"
                )
            t, y = header.index(text_column), header.index(label_column)
            b = header.index(pair_column) if pair_column is not None else None
            texts, labels, pairs = [], [], []
            for row in rows:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line, often the last one
                if len(row) <= max(t, y, -1 if b is None else b):
                    raise UserError(
                        f"finetune.{key}: {path} line {rows.line_num} has {len(row)} fields, "
                        f"fewer than its header's {len(header)}; is it tab-separated?"
                    )
                texts.append(row[t])
                labels.append(row[y].strip())
                if b is not None:
                    pairs.append(row[b])
    except UnicodeDecodeError as err:
        raise UserError(
            f"finetune.{key}: {path} is not UTF-8 text ({err.reason}); convert it to UTF-8"
        ) from None
    except OSError as err:
        raise UserError(
            f"finetune.{key}: {path} cannot be read ({err.strerror or err}); give dmx read "
            "permission (chmod +r)"
        ) from None
    if not texts:
        raise UserError(f"finetune.{key}: {path} has a header row but no examples")
    return texts, labels, (pairs if pair_column is not None else None)


def hf_task(cfg: FinetuneConfig) -> LabelledTask:
    """A hub dataset's train and dev splits; any failure to get them says what to do."""
    name = "/".join(n for n in (cfg.hf_name, cfg.hf_config) if n)
    offline = (
        "or use finetune=tsv finetune.train_path=TRAIN.tsv finetune.dev_path=DEV.tsv with "
        "local files"
    )
    if not hub.installed():
        raise UserError(f"finetune=hf needs the datasets package (pip install datasets), {offline}")
    try:
        loaded = hub.load(cfg.hf_name, cfg.hf_config)
    except Exception as err:
        raise UserError(
            f"cannot load hub dataset {name} ({exception_line(err)}); check the name and the "
            f"network, {offline}"
        ) from None
    splits = []
    for key, split in (("train_split", cfg.train_split), ("dev_split", cfg.dev_split)):
        if split not in loaded:
            raise UserError(
                f"hub dataset {name} has no split {split!r} (splits: "
                f"{', '.join(loaded)}); set finetune.{key}=... to one of them"
            )
        data = loaded[split]
        for setting, column in (
            ("text_column", cfg.text_column),
            ("label_column", cfg.label_column),
            ("text_pair_column", cfg.text_pair_column),
        ):
            if column is not None and column not in data.column_names:
                raise UserError(
                    f"hub dataset {name} split {split!r} has no column {column!r} (columns: "
                    f"{', '.join(data.column_names)}); set finetune.{setting}=... to one of them"
                )
        pairs = list(data[cfg.text_pair_column]) if cfg.text_pair_column else None
        labels = [str(v) for v in data[cfg.label_column]]
        splits.append((list(data[cfg.text_column]), labels, pairs))
    return make_task(f"hf:{name}", splits[0], splits[1])


__all__ = [
    "glue_task",
    "glue_tasks",
    "hf_task",
    "hub_glue_tasks",
    "load_task",
    "load_tasks",
    "read_tsv",
]
