"""A labelled task, whatever its source: a train and a dev split of (text, label), or of
(text, second text, label) for a pair task, labels mapped to class ids.

Labels are mapped to ``0..C-1`` in the sorted order of the training labels (integers
numerically, strings lexically), so the same files always give the same ids; a dev label
never seen in training, or a training split of one class, is a one-line
:class:`~dmx.common.errors.UserError` naming the fix. The embedded task lives here too: topic
classification of documents from the embedded corpus' grammar, generated from a seed of
their own, so the offline default has a downstream number. Where the other tasks are read
from (TSV files, the hub, GLUE's folder) is :mod:`dmx.data.task_readers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dmx.common.errors import UserError
from dmx.data.embedded import generate_labelled_documents
from dmx.data.glue import Examples, GlueTask

# The embedded task's documents come from seed TASK_SEED_OFFSET + data.corpus_seed: never
# the pretraining documents (those use corpus_seed itself), and the same task for every run
# of a comparison whatever its seeds, so runs are scored on the same dev sentences.
TASK_SEED_OFFSET = 10_000
# How many of a document's first sentences make the embedded task's text (see embedded_task).
EMBEDDED_SENTENCES = 1

# One split as read: texts, raw labels, and the second texts of a pair task (or None).
RawSplit = tuple[list[str], list[str], list[str] | None]


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
        ([t for t, _ in train], [y for _, y in train], None),
        ([t for t, _ in dev], [y for _, y in dev], None),
        fix="raise finetune.n_train so that every topic occurs in training",
    )


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
    train: RawSplit,
    dev: RawSplit,
    fix: str = "check finetune.label_column and that dev and train label the same classes",
) -> LabelledTask:
    """Map raw labels to ids by the training split's classes; the dev split must use no
    other class. Integer labels match by value (``1`` and ``01`` are one class)."""
    train_texts, train_raw, train_pairs = train
    dev_texts, dev_raw, dev_pairs = dev
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
        train_pairs=None if train_pairs is None else list(train_pairs),
        dev_pairs=None if dev_pairs is None else list(dev_pairs),
    )


__all__ = [
    "EMBEDDED_SENTENCES",
    "TASK_SEED_OFFSET",
    "LabelledTask",
    "RawSplit",
    "embedded_task",
    "first_sentences",
    "label_order",
    "make_task",
]
