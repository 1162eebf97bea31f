"""Labelled sentences for the downstream task: read, mapped to class ids, tokenized.

Three sources give the same :class:`LabelledTask`, a train and a dev split of (text, label):

* ``tsv``: your files in GLUE's layout (a header row, tab-separated, no quoting), with the
  text in ``finetune.text_column`` and the label in ``finetune.label_column``;
* ``hf``: a hub dataset (``glue``/``sst2``) through the ``datasets`` package, when installed
  and reachable;
* ``embedded``: topic classification of documents from the embedded corpus' grammar,
  generated from a seed of their own, so the offline default has a downstream number too.

Labels are mapped to ``0..C-1`` in the sorted order of the training labels (integers
numerically, strings lexically), so the same files always give the same ids. Every
mistake in a task (a missing file or column, one class only, a dev label never seen in
training) is a one-line :class:`~dmx.errors.UserError` that names the fix, raised before
any training starts.

Texts are tokenized with the pretraining run's tokenizer, as ``[CLS] text [SEP]``, so the
classifier reads the first position the way the encoder saw it in pretraining.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from tokenizers import Tokenizer
from torch.utils.data import DataLoader, Dataset

from dmx.config import FinetuneConfig
from dmx.data.embedded import generate_labelled_documents
from dmx.data.glue import TASKS as GLUE_TASKS
from dmx.data.glue import Examples, GlueTask, read_split, task_named
from dmx.data.tokenizer import CLS_ID, PAD_ID, SEP_ID
from dmx.errors import UserError, exception_line

log = logging.getLogger("dmx")

# The embedded task's documents come from seed TASK_SEED_OFFSET + data.corpus_seed: never
# the pretraining documents (those use corpus_seed itself), and the same task for every run
# of a comparison whatever its seeds, so runs are scored on the same dev sentences.
TASK_SEED_OFFSET = 10_000
# How many of a document's first sentences make the embedded task's text (see embedded_task).
EMBEDDED_SENTENCES = 1


@dataclass(frozen=True)
class LabelledTask:
    """A train and a dev split, labels already mapped to ``0..len(classes)-1``."""

    name: str
    train_texts: list[str]
    train_labels: list[int]
    dev_texts: list[str]
    dev_labels: list[int]
    # The original labels, in id order: classes[i] is what id i stands for (none for a
    # regression task: STS-B's scores).
    classes: tuple[str, ...]
    # Sentence-pair tasks: each example's second sentence.
    train_pairs: list[str] | None = None
    dev_pairs: list[str] | None = None
    # A GLUE task: its metrics and whether it is a regression (STS-B).
    glue: GlueTask | None = None
    # Further dev splits, scored like dev after every epoch: MNLI's mismatched one.
    more_dev: tuple[tuple[str, Examples], ...] = ()

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def regression(self) -> bool:
        return self.glue is not None and self.glue.is_regression

    @property
    def n_outputs(self) -> int:
        """The classifier's outputs: one score for a regression, one logit per class."""
        return 1 if self.regression else self.n_classes


def load_tasks(cfg: FinetuneConfig, corpus_seed: int = 0) -> list[LabelledTask]:
    """Every task ``finetune`` names, read and checked: GLUE's, or the one task of tsv, hf
    or embedded."""
    if cfg.name == "glue":
        assert cfg.glue_dir  # FinetuneConfig checks this
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
        train = read_tsv(cfg.train_path, cfg.text_column, cfg.label_column, "train_path")
        dev = read_tsv(cfg.dev_path, cfg.text_column, cfg.label_column, "dev_path")
        return make_task(f"tsv:{Path(cfg.train_path).name}", train, dev)
    if cfg.name == "hf":
        return hf_task(cfg)
    if cfg.name == "embedded":
        return embedded_task(cfg.n_train, cfg.n_dev, corpus_seed)
    raise ValueError(f"no labelled task for finetune.name={cfg.name!r}")


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


def read_tsv(
    path: str | Path, text_column: str, label_column: str, key: str = "train_path"
) -> tuple[list[str], list[str]]:
    """Texts and raw labels from a GLUE-style TSV file; ``key`` names the setting in errors.

    GLUE's files are read with quoting off (a ``"`` inside a sentence is just a character),
    as its own loaders do; a row shorter than the header is an error with its line number.
    """
    path = Path(path)
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
            missing = [c for c in (text_column, label_column) if c not in header]
            if missing:
                setting = "text_column" if missing[0] == text_column else "label_column"
                raise UserError(
                    f"finetune.{key}: {path} has no column {missing[0]!r} (columns: "
                    f"{', '.join(header)}); set finetune.{setting}=... to one of them"
                )
            t, y = header.index(text_column), header.index(label_column)
            texts, labels = [], []
            for row in rows:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line, often the last one
                if len(row) <= max(t, y):
                    raise UserError(
                        f"finetune.{key}: {path} line {rows.line_num} has {len(row)} fields, "
                        f"fewer than its header's {len(header)}; is it tab-separated?"
                    )
                texts.append(row[t])
                labels.append(row[y].strip())
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
    return texts, labels


def hf_task(cfg: FinetuneConfig) -> LabelledTask:
    """A hub dataset's train and dev splits; any failure to get them says what to do."""
    name = "/".join(n for n in (cfg.hf_name, cfg.hf_config) if n)
    offline = (
        "or use finetune=tsv finetune.train_path=TRAIN.tsv finetune.dev_path=DEV.tsv with "
        "local files"
    )
    try:
        import datasets
    except ImportError:
        raise UserError(
            f"finetune=hf needs the datasets package (pip install datasets), {offline}"
        ) from None
    try:
        loaded = datasets.load_dataset(cfg.hf_name, cfg.hf_config)
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
        ):
            if column not in data.column_names:
                raise UserError(
                    f"hub dataset {name} split {split!r} has no column {column!r} (columns: "
                    f"{', '.join(data.column_names)}); set finetune.{setting}=... to one of them"
                )
        splits.append((list(data[cfg.text_column]), [str(v) for v in data[cfg.label_column]]))
    return make_task(f"hf:{name}", splits[0], splits[1])


def first_sentences(text: str, n: int) -> str:
    """The first ``n`` sentences of an embedded document (sentences end with ``" ."``)."""
    sentences = text.split(" . ")
    head = " . ".join(sentences[:n])
    return head if head.endswith(" .") else head + " ."


def embedded_task(n_train: int, n_dev: int, corpus_seed: int = 0) -> LabelledTask:
    """Topic classification (16 topics) on the first sentence of embedded documents.

    The text is a document's first sentence, about 10 words (``nora was a busy baker who
    lived near the pantry .``), labelled with the document's topic. Why so short: each topic
    owns its nouns, verbs and adjectives, so a whole document (60-120 words, dozens of topic
    words) is solved by any bag of words at once; one sentence carries one to three topic
    words, often rare ones, so the score depends on how well the encoder represents a few
    words from few examples. It is still an easy task given time: a lookup of the topic
    words seen in 800 training sentences labels about 98% of the dev sentences, and the tiny
    model reaches about 97% after 10 epochs, so short fine-tuning (3 epochs) is what keeps
    scores apart.

    The documents come from seed ``TASK_SEED_OFFSET + corpus_seed``, never the pretraining
    corpus' seed: dev sentences are never pretraining text.
    """
    docs = generate_labelled_documents(TASK_SEED_OFFSET + corpus_seed, n_train + n_dev)
    pairs = [(first_sentences(text, EMBEDDED_SENTENCES), topic) for topic, text in docs]
    train, dev = pairs[:n_train], pairs[n_train:]
    return make_task(
        "embedded",
        ([t for t, _ in train], [y for _, y in train]),
        ([t for t, _ in dev], [y for _, y in dev]),
        fix="raise finetune.n_train so that every topic occurs in training",
    )


# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------


def _as_int(label: str) -> int | None:
    try:
        return int(label)
    except ValueError:
        return None


def label_order(labels: Sequence[str]) -> list[str]:
    """The distinct labels in id order: numerically when every one is an integer (so ``10``
    comes after ``2``), else lexically."""
    distinct = set(labels)
    if all(_as_int(label) is not None for label in distinct):
        return sorted(distinct, key=lambda label: (int(label), label))
    return sorted(distinct)


def make_task(
    name: str,
    train: tuple[list[str], list[str]],
    dev: tuple[list[str], list[str]],
    fix: str = "check finetune.label_column and that dev and train label the same classes",
) -> LabelledTask:
    """Map raw labels to ids by the training split's classes; the dev split must use no
    other class. Integer labels match by value (``1`` and ``01`` are one class)."""
    train_texts, train_raw = train
    dev_texts, dev_raw = dev
    classes = label_order(train_raw)
    if len(classes) < 2:
        found = f"a single class ({classes[0]!r})" if classes else "no examples"
        raise UserError(
            f"finetune task {name}: the training split has {found}; a classifier needs at "
            f"least 2 classes; {fix}"
        )
    numeric = all(_as_int(c) is not None for c in classes)
    key = (lambda label: _as_int(label)) if numeric else (lambda label: label)
    ids = {key(c): i for i, c in enumerate(classes)}
    unseen = sorted({label for label in dev_raw if key(label) not in ids})
    if unseen:
        shown = ", ".join(repr(label) for label in unseen[:5])
        raise UserError(
            f"finetune task {name}: the dev split has label(s) never seen in training "
            f"({shown}; training has {', '.join(repr(c) for c in classes)}); {fix}"
        )
    return LabelledTask(
        name=name,
        train_texts=list(train_texts),
        train_labels=[ids[key(label)] for label in train_raw],
        dev_texts=list(dev_texts),
        dev_labels=[ids[key(label)] for label in dev_raw],
        classes=tuple(classes),
    )


# --------------------------------------------------------------------------------------
# Tokens and batches
# --------------------------------------------------------------------------------------


def encode(texts: Sequence[str], tokenizer: Tokenizer, seq_len: int) -> torch.Tensor:
    """``[CLS] text [SEP]`` per text, cut to ``seq_len`` (the text loses its end, [SEP] is
    kept) and padded with [PAD]: a (len(texts), seq_len) int64 tensor."""
    out = torch.full((len(texts), seq_len), PAD_ID, dtype=torch.int64)
    for i, encoding in enumerate(tokenizer.encode_batch(list(texts), add_special_tokens=False)):
        ids = [CLS_ID, *encoding.ids[: seq_len - 2], SEP_ID]
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return out


def encode_pairs(
    texts: Sequence[str], pairs: Sequence[str], tokenizer: Tokenizer, max_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] a [SEP] b [SEP]`` per pair, with its segments (0 up to the first [SEP], 1
    after), padded with [PAD] to ``max_len``: two (len(texts), max_len) int64 tensors.

    Too long a pair is cut longest first, one token at a time from the end of the longer
    sentence (the second on a tie), as BERT's and HuggingFace's ``longest_first`` do, so a
    short premise keeps all its words while a long one gives up its tail.
    """
    ids = torch.full((len(texts), max_len), PAD_ID, dtype=torch.int64)
    types = torch.zeros((len(texts), max_len), dtype=torch.int64)
    a_all = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    b_all = tokenizer.encode_batch(list(pairs), add_special_tokens=False)
    for i, (a_enc, b_enc) in enumerate(zip(a_all, b_all, strict=True)):
        a, b = truncate_longest_first(a_enc.ids, b_enc.ids, max_len - 3)
        row = [CLS_ID, *a, SEP_ID, *b, SEP_ID]
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
        types[i, len(a) + 2 : len(row)] = 1
    return ids, types


def truncate_longest_first(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """``a`` and ``b`` cut to ``budget`` tokens together, from the end of the longer one
    (``b`` on a tie)."""
    n_a, n_b = len(a), len(b)
    while n_a + n_b > budget:
        if n_a > n_b:
            n_a -= 1
        else:
            n_b -= 1
    return a[:n_a], b[:n_b]


class LabelledSequences(Dataset):
    def __init__(
        self,
        input_ids: torch.Tensor,
        labels: Sequence[int] | Sequence[float],
        token_types: torch.Tensor | None = None,
    ) -> None:
        self.input_ids, self.token_types = input_ids, token_types
        floats = any(isinstance(label, float) for label in labels)
        self.labels = torch.as_tensor(list(labels), dtype=torch.float32 if floats else torch.int64)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"input_ids": self.input_ids[i], "label": self.labels[i]}
        if self.token_types is not None:
            item["token_types"] = self.token_types[i]
        return item


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack, then cut the batch to its longest example: short sentences padded to the
    pretraining length would spend most of the attention on [PAD]. Attention patterns are
    pure functions of (query, key) positions, so a shorter batch sees the top-left corner
    of the same pattern."""
    input_ids = torch.stack([item["input_ids"] for item in items])
    padding = input_ids != PAD_ID
    length = max(1, int(padding.sum(dim=1).max()))
    batch = {
        "input_ids": input_ids[:, :length],
        "attention_mask": padding[:, :length],
        "label": torch.stack([item["label"] for item in items]),
    }
    if "token_types" in items[0]:
        batch["token_types"] = torch.stack([item["token_types"] for item in items])[:, :length]
    return batch


def sequences(
    texts: Sequence[str],
    pairs: Sequence[str] | None,
    labels: Sequence[int] | Sequence[float],
    tokenizer: Tokenizer,
    max_len: int,
) -> LabelledSequences:
    """A split's examples, encoded as single sentences or as pairs with their segments."""
    if pairs is None:
        return LabelledSequences(encode(texts, tokenizer, max_len), labels)
    ids, types = encode_pairs(texts, pairs, tokenizer, max_len)
    return LabelledSequences(ids, labels, types)


class LabelledDataModule(L.LightningDataModule):
    """A task's train split (shuffled by a generator seeded from ``seed``) and dev split."""

    def __init__(
        self,
        task: LabelledTask,
        tokenizer: Tokenizer,
        seq_len: int,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.task, self.batch_size, self.seed = task, batch_size, seed
        self.num_workers = num_workers
        self.train_data = sequences(
            task.train_texts, task.train_pairs, task.train_labels, tokenizer, seq_len
        )
        dev = sequences(task.dev_texts, task.dev_pairs, task.dev_labels, tokenizer, seq_len)
        # dev first: its score is the task's; MNLI's mismatched split follows
        self.dev_data = [dev] + [
            sequences(ex.texts, ex.pairs, ex.labels, tokenizer, seq_len) for _, ex in task.more_dev
        ]

    @property
    def dev_names(self) -> tuple[str, ...]:
        """The dev splits, in the order of the validation loaders."""
        return ("dev", *(name for name, _ in self.task.more_dev))

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return self._loader(self.train_data, shuffle=True, generator=generator)

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(data, shuffle=False, generator=None) for data in self.dev_data]
        return loaders[0] if len(loaders) == 1 else loaders

    def _loader(self, data: Dataset, shuffle: bool, generator: Any) -> DataLoader:
        return DataLoader(
            data,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )


__all__ = [
    "EMBEDDED_SENTENCES",
    "TASK_SEED_OFFSET",
    "LabelledDataModule",
    "LabelledTask",
    "collate",
    "embedded_task",
    "encode",
    "encode_pairs",
    "truncate_longest_first",
    "first_sentences",
    "hf_task",
    "label_order",
    "glue_task",
    "glue_tasks",
    "load_task",
    "load_tasks",
    "make_task",
    "read_tsv",
    "sequences",
]
