"""Building a token cache: the tokenizer trained on the training split (unless one is given),
every document tokenized in batches, and the streams written to disk.

Apart from finding a cache (dmx.data.cache) and reading one (dmx.data.token_stream)
because only a cache miss runs it, and what it must get right is another matter: two passes
over a source that may not fit in memory, and a folder that is never mistaken for complete
while it is being written. Files are written under temporary names and renamed, and
``meta.json`` is written last: a folder without it is an unfinished build.

It logs as ``dmx.data.cache``, the logger these messages have always come from, so a run's
log (which names the logger) and whoever listens to that logger see them as before.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from dmx.common import progress
from dmx.common.errors import UserError
from dmx.common.files import atomic_write_text
from dmx.config import DataConfig
from dmx.data.source import Source
from dmx.data.token_stream import FORMAT_VERSION, META, TOKENIZER
from dmx.data.tokenizer import SEP_ID, load_tokenizer, train_tokenizer

log = logging.getLogger("dmx.data.cache")

# A document's split as the sources give it: is it a validation document?
_SPLIT_OF = {False: "train", True: "val"}
# Documents per encode_batch call (the tokenizer parallelises within a batch), capped by
# characters so a batch of long documents stays small.
_BATCH_DOCS, _BATCH_CHARS = 1024, 4 << 20
_COPY_CHUNK = 16 << 20  # elements per copy from the raw stream into the .npy file


def build_cache(cfg: DataConfig, source: Source, folder: Path, fp: str) -> None:
    """Tokenize ``source`` into ``folder``: the tokenizer, the two splits' streams, and
    meta.json last, so a folder without meta.json is an unfinished build."""
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).unlink(missing_ok=True)  # the old files are about to be replaced
    documents = None  # known once the tokenizer's pass has counted them
    if cfg.tokenizer:
        tokenizer = load_tokenizer(cfg.tokenizer)
    else:
        tokenizer, documents = _train(cfg, source)
    vocab_size = tokenizer.get_vocab_size()
    # "[SEP]" typed in a document is text, not a separator: special tokens come only from
    # dmx (the setting is not saved with the tokenizer).
    tokenizer.encode_special_tokens = True
    dtype = np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.int32)
    writers = {val: _StreamWriter(folder, _SPLIT_OF[val], dtype) for val in (False, True)}
    try:
        tokens, seconds = _tokenize(cfg, source, tokenizer, writers, documents)
        if cfg.tokenizer:
            _check_split(source, {val: writer.docs for val, writer in writers.items()})
        for writer in writers.values():
            writer.finish()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    rate = tokens / seconds if seconds > 0 else 0.0
    log.info("corpus: tokenized %d tokens in %.1f s (%.0f tokens/s)", tokens, seconds, rate)
    atomic_write_text(folder / TOKENIZER, tokenizer.to_str())
    meta = {
        "format": FORMAT_VERSION,
        "fingerprint": fp,
        "dtype": dtype.name,
        "vocab_size": vocab_size,
        "splits": {
            _SPLIT_OF[val]: {"docs": writer.docs, "tokens": writer.length - writer.docs}
            for val, writer in writers.items()
        },
        "tokens_per_s": rate,
        "build_s": time.perf_counter() - started,
        "source": source.describe,
        "config": asdict(cfg),
    }
    atomic_write_text(folder / META, json.dumps(meta, indent=2, default=str) + "\n")
    log.info("corpus: built %s into %s", meta["splits"], folder)


class _StreamWriter:
    """Appends one split's documents to raw files, then writes them out as .npy files.

    The final length is unknown until the last document, and a .npy header states it, so
    tokens go to a raw file first and are copied, a chunk at a time, into an
    ``open_memmap`` of the final size: neither step holds the stream in memory.
    """

    def __init__(self, folder: Path, split: str, dtype: np.dtype) -> None:
        self.folder, self.split, self.dtype = folder, split, dtype
        tag = f"{os.getpid()}.raw"
        self.raw = {
            "ids": folder / f".{split}.ids.{tag}",
            "starts": folder / f".{split}.starts.{tag}",
            "offsets": folder / f".{split}.offsets.{tag}",
        }
        self.files = {kind: path.open("wb") for kind, path in self.raw.items()}
        self.length = 0
        self.docs = 0
        self.files["offsets"].write(np.zeros(1, np.int64).tobytes())

    def add(self, encodings: list[Encoding]) -> None:
        """Append documents, each followed by a [SEP] (a word of its own)."""
        if not encodings:
            return
        ids, starts, ends = [], [], []
        for encoding in encodings:
            ids.append(np.asarray(encoding.ids, dtype=self.dtype))
            ids.append(np.array([SEP_ID], dtype=self.dtype))
            starts.append(word_starts_array(encoding.word_ids))
            starts.append(np.ones(1, np.uint8))
            self.length += len(encoding.ids) + 1
            ends.append(self.length)
        self.files["ids"].write(np.concatenate(ids).tobytes())
        self.files["starts"].write(np.concatenate(starts).tobytes())
        self.files["offsets"].write(np.asarray(ends, dtype=np.int64).tobytes())
        self.docs += len(encodings)

    def finish(self) -> None:
        for f in self.files.values():
            f.close()
        dtypes = {"ids": self.dtype, "starts": np.dtype(np.uint8), "offsets": np.dtype(np.int64)}
        for kind, raw in self.raw.items():
            source = np.memmap(raw, dtype=dtypes[kind], mode="r") if raw.stat().st_size else None
            n = 0 if source is None else len(source)
            final = self.folder / f"{self.split}.{kind}.npy"
            tmp = self.folder / f".{final.name}.{os.getpid()}.tmp"
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtypes[kind], shape=(n,))
            for begin in range(0, n, _COPY_CHUNK):
                out[begin : begin + _COPY_CHUNK] = source[begin : begin + _COPY_CHUNK]
            out.flush()
            del out, source
            os.replace(tmp, final)
            raw.unlink()

    def abort(self) -> None:
        for f in self.files.values():
            f.close()
        for raw in self.raw.values():
            raw.unlink(missing_ok=True)


def word_starts_array(word_ids: list[int | None]) -> np.ndarray:
    """1 where a token begins a word, from an encoding's ``word_ids`` (None: a special
    token, a word of its own), computed without a Python loop over the tokens."""
    n = len(word_ids)
    out = np.ones(n, dtype=np.uint8)
    if n > 1:
        words = np.array(word_ids, dtype=np.float64)  # None becomes NaN, unequal to all
        out[1:] = words[1:] != words[:-1]
    return out


def _batches(pairs: Iterable[tuple[str, bool]]) -> Iterator[list[tuple[str, bool]]]:
    batch: list[tuple[str, bool]] = []
    chars = 0
    for doc, val in pairs:
        batch.append((doc, val))
        chars += len(doc)
        if len(batch) >= _BATCH_DOCS or chars >= _BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _check_split(source: Source, counts: dict[bool, int]) -> None:
    """At least one document on each side, else the message says what to change."""
    total = counts[False] + counts[True]
    if total == 0:
        raise UserError(
            f"{source.describe} holds no documents (it is empty or only blank lines); give "
            "it some text"
        )
    if counts[True] == 0 or counts[False] == 0:
        side = "validation" if counts[True] == 0 else "training"
        raise UserError(
            f"{source.describe}: the split leaves no {side} document among {total}; add more "
            f"text or change {source.split_hint}"
        )


def _train(cfg: DataConfig, source: Source) -> tuple[Tokenizer, int]:
    """A BPE tokenizer trained on the training split only, with a progress count; returns
    it and the number of documents of both splits (the next pass's total)."""
    started = time.perf_counter()
    counts = {False: 0, True: 0}
    # The documents' total is known once this pass has counted them; before it, the text's
    # size in bytes is (a file's), and the pass measures its progress by that.
    by_bytes = source.documents_hint is None and bool(source.text_bytes)
    total = source.text_bytes if by_bytes else source.documents_hint
    read = 0
    with progress.bar(f"training a tokenizer on {cfg.name}", "B" if by_bytes else "docs") as shown:
        task = shown.add_task("train", total=total)

        def counted_train_documents() -> Iterator[str]:
            nonlocal read
            for doc, val in source.split():
                counts[val] += 1
                if by_bytes:
                    read += len(doc.encode("utf-8")) + 1  # the separator the reader dropped
                if not val:
                    yield doc
                if (counts[False] + counts[True]) % 1000 == 0:
                    shown.update(task, completed=read if by_bytes else sum(counts.values()))

        tokenizer = train_tokenizer(counted_train_documents(), cfg.vocab_size)
        shown.update(task, completed=total)
    _check_split(source, counts)
    log.info(
        "corpus: trained a %d-token BPE tokenizer on %d documents in %.1f s",
        tokenizer.get_vocab_size(),
        counts[False],
        time.perf_counter() - started,
    )
    return tokenizer, counts[False] + counts[True]


def _tokenize(
    cfg: DataConfig,
    source: Source,
    tokenizer: Tokenizer,
    writers: dict[bool, _StreamWriter],
    documents: int | None,
) -> tuple[int, float]:
    """Every document into its split's stream, in batches; returns (tokens, seconds). The
    progress counts documents against ``documents`` when the tokenizer's pass counted them
    (so it shows how far along it is and the time left), and the tokens so far."""
    started = time.perf_counter()
    tokens = 0
    with progress.bar(f"tokenizing {cfg.name}", "docs") as shown:
        task = shown.add_task("tokenize", total=documents, tokens=0)
        for batch in _batches(source.split()):
            docs = [doc for doc, _ in batch]
            encodings = tokenizer.encode_batch(docs, add_special_tokens=False)
            for val, writer in writers.items():
                writer.add([e for e, (_, v) in zip(encodings, batch, strict=True) if v == val])
            added = sum(len(e.ids) for e in encodings)
            tokens += added
            shown.update(task, advance=len(batch), tokens=tokens)
    return tokens, time.perf_counter() - started
