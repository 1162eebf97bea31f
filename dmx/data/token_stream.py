"""The token cache's layout on disk and its reading, memory-mapped.

A split is stored as ONE flat stream of token ids (every document followed by [SEP]), a
parallel stream of word starts (1 where a word begins) and the offsets where each document
begins, as .npy files read back with ``np.load(mmap_mode="r")``: a second run opens them in
milliseconds and pages in only the rows it reads, so a corpus larger than memory trains
without ever sitting in RAM. Sequences are cut from the streams at load time
(dmx.data.sequences), so one cache serves every sequence length, batch size and packing.

Apart from the building (dmx.data.tokenize_corpus) because every training run and every
DataLoader worker reads a cache, and only a cache miss builds one; the file names and
FORMAT_VERSION live here, the one place that says what a complete cache folder holds, so
the writer and the reader cannot disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

# Bump when the stream layout, the parsing or the splitting changes, so stale caches are
# rebuilt rather than reused.
FORMAT_VERSION = 4
SPLITS = ("train", "val")
META = "meta.json"
TOKENIZER = "tokenizer.json"


@dataclass
class TokenStream:
    """One split's streams, opened lazily as read-only memory maps.

    Pickles as its folder and split (never the arrays), so a DataLoader worker started by
    spawn reopens the maps instead of receiving a copy of the corpus.
    """

    folder: Path
    split: str
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def path(self, kind: str) -> Path:
        return self.folder / f"{self.split}.{kind}.npy"

    def _array(self, kind: str) -> np.ndarray:
        if kind not in self._arrays:
            self._arrays[kind] = np.load(self.path(kind), mmap_mode="r", allow_pickle=False)
        return self._arrays[kind]

    @property
    def ids(self) -> np.ndarray:
        """Token ids, each document followed by [SEP]; uint16 or int32."""
        return self._array("ids")

    @property
    def starts(self) -> np.ndarray:
        """uint8, 1 where a token begins a word (a special token is a word of its own)."""
        return self._array("starts")

    @property
    def offsets(self) -> np.ndarray:
        """int64, n_docs + 1: where each document begins in the stream, then its length."""
        return self._array("offsets")

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        """Tokens in the documents, the [SEP] after each not counted."""
        return len(self.ids) - self.n_docs

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "split": self.split, "_arrays": {}}


@dataclass(frozen=True)
class Tokenized:
    """A corpus' token streams and the tokenizer that made them."""

    train: TokenStream
    val: TokenStream
    tokenizer: Tokenizer
    fingerprint: str
    folder: Path
    meta: dict[str, Any]


def open_cache(folder: Path, fp: str) -> Tokenized:
    """Open a complete cache, checking every file against meta.json (raises if damaged)."""
    meta = json.loads((folder / META).read_text())
    if meta.get("format") != FORMAT_VERSION or meta.get("fingerprint") != fp:
        raise ValueError("meta.json is from another format or corpus")
    tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
    if tokenizer.get_vocab_size() != meta["vocab_size"]:
        raise ValueError("tokenizer.json does not match meta.json")
    streams = {split: TokenStream(folder, split) for split in SPLITS}
    for split, stream in streams.items():
        expected = meta["splits"][split]
        n = expected["docs"] + expected["tokens"]
        if stream.ids.shape != (n,) or stream.ids.dtype != np.dtype(meta["dtype"]):
            raise ValueError(f"{stream.path('ids').name} has the wrong shape or type")
        if stream.starts.shape != (n,):
            raise ValueError(f"{stream.path('starts').name} has the wrong shape")
        offsets = stream.offsets
        if offsets.shape != (expected["docs"] + 1,) or offsets[0] != 0 or offsets[-1] != n:
            raise ValueError(f"{stream.path('offsets').name} does not match the stream")
    return Tokenized(
        train=streams["train"],
        val=streams["val"],
        tokenizer=tokenizer,
        fingerprint=fp,
        folder=folder,
        meta=meta,
    )
