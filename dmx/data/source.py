"""A corpus' documents as a stream, and which of them are held out for validation.

A source yields documents (strings) one at a time and never as a list, so a corpus larger
than memory can be tokenized. The split is by document, so no validation document is ever
seen in training. The embedded corpus keeps its historical split (the last ``val_docs``
documents). Text and hub documents are split by ``split_seed`` alone, not the run's seed:
document ``i`` is held out iff a splitmix hash of (split_seed, i) falls below ``val_frac``.
That is a pure function of the two numbers, so every run of a comparison, on any machine,
trains and scores on the same documents, and the split needs no pass over the corpus.

The readers of each kind of source live beside this file: :mod:`~dmx.data.text_source`
(files), :mod:`~dmx.data.hub_source` (the datasets library); :mod:`~dmx.data.sources` opens
the one a config names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dmx.common.errors import UserError
from dmx.masking.keyed import base_hash

# The stream of base_hash that decides the split; its own number, so no other keyed draw
# made from the same seed ever shares bits with it.
SPLIT_STREAM = 0x5B1


def is_validation(split_seed: int, index: int, val_frac: float) -> bool:
    """Whether document ``index`` is held out: a uniform in [0, 1) keyed by (split_seed,
    index) alone, compared with ``val_frac``."""
    return base_hash(split_seed, SPLIT_STREAM, index) / 2.0**64 < val_frac


@dataclass
class Source:
    """A corpus' documents, read afresh on every pass (a source holds no documents).

    ``documents`` yields every document in order; ``is_val(i)`` says which split document
    ``i`` belongs to; ``hash_content`` fingerprints what the documents are made from (the
    files' bytes, or the documents themselves) for the token cache; ``describe`` names the
    source in messages.
    """

    describe: str
    read: Callable[[], Iterator[str]]
    is_val: Callable[[int], bool]
    hash_content: Callable[[], str]
    # The setting a user changes when the split leaves a side empty.
    split_hint: str
    # A validation set of its own (data.val_path, a hub dataset's validation split): then
    # every document of ``read`` trains and ``is_val`` is not used.
    read_val: Callable[[], Iterator[str]] | None = None
    # How many documents there are, when known without reading them (a progress bar's
    # total before the first pass); None otherwise.
    documents_hint: int | None = None
    # The text's size in bytes (both splits), when the files tell it without reading them:
    # the tokenizer's pass, which counts the documents, measures its progress by it.
    text_bytes: int | None = None

    def documents(self) -> Iterator[str]:
        """Every non-blank document, stripped, in the source's order."""
        for doc in self.read():
            doc = doc.strip()
            if doc:
                yield doc

    def split(self) -> Iterator[tuple[str, bool]]:
        """Each document with whether it is a validation document."""
        if self.read_val is not None:
            yield from ((doc, False) for doc in self.documents())
            yield from ((doc.strip(), True) for doc in self.read_val() if doc.strip())
            return
        for i, doc in enumerate(self.documents()):
            yield doc, self.is_val(i)

    def train_documents(self) -> Iterator[str]:
        return (doc for doc, val in self.split() if not val)


def hash_documents(docs: Iterator[str]) -> str:
    """sha256 over the documents, each length-prefixed, so no two lists hash alike."""
    digest = hashlib.sha256()
    for doc in docs:
        data = doc.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def text_value(value: Any, where: str, field: str, available: list[str]) -> str:
    """A field's value as a document: None is an empty document, text is itself, anything
    else is a sign that data.text_field names the wrong field."""
    if value is None or isinstance(value, str):
        return value or ""
    raise UserError(
        f"{where}: data.text_field={field!r} holds {type(value).__name__} values, not text; "
        f"set data.text_field to one of: {', '.join(available)}"
    )
