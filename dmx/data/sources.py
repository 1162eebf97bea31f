"""Where documents come from, and which of them are held out for validation.

A source yields documents (strings) one at a time and never as a list, so a corpus larger
than memory can be tokenized: ``source=embedded`` (the generated corpus), ``source=text``
(a .txt, .jsonl, .csv/.tsv or .parquet file at ``data.path``, the text ones possibly
gzipped, or a folder of shards of one kind) and
``source=hf`` (a dataset loaded by the datasets library, from the hub or a local folder).

The split is by document, so no validation document is ever seen in training. The embedded
corpus keeps its historical split (the last ``val_docs`` documents). Text and hub documents
are split by ``split_seed`` alone, not the run's seed: document ``i`` is held out iff a
splitmix hash of (split_seed, i) falls below ``val_frac``. That is a pure function of the
two numbers, so every run of a comparison, on any machine, trains and scores on the same
documents, and the split needs no pass over the corpus to decide.

Every mistake a user can fix (a missing path, an empty file, a binary file, an unknown
extension, a missing field or column) is a UserError whose one line names the fix.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import json
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmx.config import DataConfig
from dmx.data import embedded as generator
from dmx.errors import UserError, one_line
from dmx.masking.keyed import base_hash

TEXT_EXTENSIONS = (".txt", ".jsonl", ".csv", ".tsv", ".parquet")
# Text formats may also come gzipped (shards.jsonl.gz); parquet compresses itself.
GZIP_EXTENSIONS = (".txt", ".jsonl", ".csv", ".tsv")
FORMATS_HINT = (
    "a .txt, .jsonl, .csv, .tsv or .parquet file (the text ones may be .gz), or a folder of "
    "such files of one kind"
)
# The stream of base_hash that decides the split; its own number, so no other keyed draw
# made from the same seed ever shares bits with it.
SPLIT_STREAM = 0x5B1
_READ_CHUNK = 1 << 20
_PARQUET_BATCH = 4096


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


def open_source(cfg: DataConfig) -> Source:
    """The source ``cfg`` names, checked as far as can be without reading it all."""
    if cfg.source == "embedded":
        return _embedded(cfg)
    if cfg.source == "text":
        return _text(cfg)
    if cfg.source == "hf":
        from dmx.data.hub_source import hub_source  # the datasets library, only when asked

        return hub_source(cfg)
    raise UserError(f"data.source must be one of embedded, text, hf; got {cfg.source!r}")


def hash_documents(docs: Iterator[str]) -> str:
    """sha256 over the documents, each length-prefixed, so no two lists hash alike."""
    digest = hashlib.sha256()
    for doc in docs:
        data = doc.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


# --- embedded -----------------------------------------------------------------------------


def _embedded(cfg: DataConfig) -> Source:
    """The generated corpus, split as it always was: the last val_docs documents held out."""
    n_train = cfg.n_docs - cfg.val_docs

    def read() -> Iterator[str]:
        return iter(generator.generate_documents(cfg.corpus_seed, cfg.n_docs))

    return Source(
        describe=f"the embedded corpus (corpus_seed={cfg.corpus_seed}, n_docs={cfg.n_docs})",
        read=read,
        is_val=lambda i: i >= n_train,
        hash_content=lambda: hash_documents(read()),
        split_hint="data.val_docs",
        documents_hint=cfg.n_docs,
    )


# --- text files ---------------------------------------------------------------------------


def file_kind(file: Path) -> str | None:
    """A corpus file's format (``.jsonl`` for ``shard.jsonl`` and ``shard.jsonl.gz``), or
    None for a file dmx does not read."""
    suffixes = [s.lower() for s in file.suffixes]
    if suffixes[-1:] == [".gz"]:
        kind = suffixes[-2] if len(suffixes) > 1 else None
        return kind if kind in GZIP_EXTENSIONS else None
    kind = suffixes[-1] if suffixes else None
    return kind if kind in TEXT_EXTENSIONS else None


def _corpus_files(path: Path) -> tuple[list[Path], str]:
    """The files of ``data.path`` (a file, or a folder's files of one kind, in name order)
    and their kind."""
    if not path.is_dir():
        kind = file_kind(path)
        if kind is None:
            raise UserError(
                f"data.path={path} has an unknown extension {''.join(path.suffixes) or '(none)'!r}"
                f"; dmx reads {FORMATS_HINT}"
            )
        return [path], kind
    files = sorted(
        (p for p in path.rglob("*") if p.is_file() and file_kind(p) is not None),
        key=lambda p: p.relative_to(path).as_posix(),
    )
    if not files:
        raise UserError(
            f"data.path={path} is a folder with no corpus files; put .txt, .jsonl, .csv, .tsv "
            f"or .parquet files (or .gz ones) in it, or point data.path at {FORMATS_HINT}"
        )
    kinds = sorted({file_kind(p) for p in files}, key=str)
    if len(kinds) > 1:
        raise UserError(
            f"data.path={path} mixes {' and '.join(str(k) for k in kinds)} files; keep one kind "
            "per folder (each kind reads its text its own way), or point data.path at one file"
        )
    return files, str(kinds[0])


def _text(cfg: DataConfig) -> Source:
    assert cfg.path, "DataConfig checks that data=text has a path"
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise UserError(f"data.path={path} does not exist; point data.path at {FORMATS_HINT}")
    read, hash_files, size = _text_files(path, cfg)
    read_val = None
    hash_content = hash_files
    if cfg.val_path:
        val = Path(cfg.val_path).expanduser()
        if not val.exists():
            raise UserError(
                f"data.val_path={val} does not exist; point it at {FORMATS_HINT}, or drop it "
                "to hold out data.val_frac of data.path"
            )
        read_val, hash_val, val_size = _text_files(val, cfg)
        size = None if size is None or val_size is None else size + val_size

        def hash_content() -> str:
            return hashlib.sha256(f"{hash_files()}/val:{hash_val()}".encode()).hexdigest()

    return Source(
        describe=f"data.path={path}" + (f" with data.val_path={cfg.val_path}" if read_val else ""),
        read=read,
        is_val=lambda i: is_validation(cfg.split_seed, i, cfg.val_frac),
        hash_content=hash_content,
        split_hint="data.val_path" if read_val else "data.val_frac",
        read_val=read_val,
        text_bytes=size,
    )


def _text_files(
    path: Path, cfg: DataConfig
) -> tuple[Callable[[], Iterator[str]], Callable[[], str], int | None]:
    """The documents of a file or folder of shards, the fingerprint of their text, and the
    text's size in bytes (None for parquet, whose bytes are not the text)."""
    files, kind = _corpus_files(path)
    reader = _READERS[kind]
    size = None if kind == ".parquet" else sum(_text_size(file) for file in files)

    def read() -> Iterator[str]:
        for file in files:
            yield from reader(file, cfg)

    def hash_content() -> str:
        # The files' bytes (and, in a folder, their names: they set the documents' order).
        # Text files are checked for UTF-8 on the way, before any tokenizer is trained.
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
            digest.update(b"\0")
            _hash_file(file, digest, check_text=kind != ".parquet")
        return digest.hexdigest()

    return read, hash_content, size


def _text_size(file: Path) -> int:
    """A file's text size: its own, or a gzip file's uncompressed size from its trailer
    (modulo 4 GiB, as gzip records it; only a progress bar's total depends on it)."""
    try:
        if not _gzipped(file):
            return file.stat().st_size
        with file.open("rb") as f:
            f.seek(-4, os.SEEK_END)
            return int.from_bytes(f.read(4), "little")
    except OSError:
        return 0  # unreadable or too short: the read that follows says why, in one line


def _not_text(file: Path, why: str) -> UserError:
    return UserError(
        f"{file} is not UTF-8 text ({why}); convert it to UTF-8 or point data.path at "
        f"{FORMATS_HINT}"
    )


def _hash_file(file: Path, digest: Any, check_text: bool) -> None:
    """Feed a file's bytes to ``digest`` in chunks, checking they decode as UTF-8 text."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        opened = file.open("rb")
    except OSError as err:  # the first read of a corpus: unreadable is the user's to fix
        raise UserError(
            f"{file} cannot be read ({err.strerror or err}); give dmx read permission "
            "(chmod +r) or point data.path at another file"
        ) from None
    if _gzipped(file):  # the text inside is what is checked (and fingerprinted)
        opened = gzip.GzipFile(fileobj=opened)  # type: ignore[assignment]
    with opened as f:
        while chunk := _read_chunk(f, file):
            digest.update(chunk)
            if check_text:
                if b"\0" in chunk:
                    raise _not_text(file, f"a NUL byte at offset {offset + chunk.index(0)}")
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as err:
                    raise _not_text(file, f"invalid byte at offset {offset + err.start}") from None
            offset += len(chunk)
    if check_text:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise _not_text(file, "it ends inside a character") from None


def _gzipped(file: Path) -> bool:
    return file.suffix.lower() == ".gz"


def _read_chunk(f: Any, file: Path) -> bytes:
    try:
        return f.read(_READ_CHUNK)
    except (OSError, EOFError, zlib.error) as err:  # gzip's BadGzipFile is an OSError
        raise UserError(
            f"{file} is not a readable gzip file ({one_line(err)}); decompress it, or point "
            f"data.path at {FORMATS_HINT}"
        ) from None


def _open_text(file: Path) -> Any:
    # utf-8-sig: a byte-order mark (spreadsheets write one) is not part of the first field.
    if _gzipped(file):
        return gzip.open(file, "rt", encoding="utf-8-sig", newline="")
    return file.open(encoding="utf-8-sig", newline="")


def _read_txt(file: Path, cfg: DataConfig) -> Iterator[str]:
    """Documents at blank lines (``doc_split=blank_line``) or one per line (``line``)."""
    with _open_text(file) as f:
        if cfg.doc_split == "line":
            yield from f
            return
        lines: list[str] = []
        for line in f:
            if line.strip():
                lines.append(line.rstrip("\r\n"))
            elif lines:
                yield "\n".join(lines)
                lines = []
        if lines:
            yield "\n".join(lines)


def text_value(value: Any, where: str, field: str, available: list[str]) -> str:
    """A field's value as a document: None is an empty document, text is itself, anything
    else is a sign that data.text_field names the wrong field."""
    if value is None or isinstance(value, str):
        return value or ""
    raise UserError(
        f"{where}: data.text_field={field!r} holds {type(value).__name__} values, not text; "
        f"set data.text_field to one of: {', '.join(available)}"
    )


def _read_jsonl(file: Path, cfg: DataConfig) -> Iterator[str]:
    field = cfg.text_field
    with _open_text(file) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(
                    f"{file} line {number} is not JSON ({err.msg}); each line of a .jsonl "
                    "file must be one JSON object"
                ) from None
            if not isinstance(record, dict):
                raise UserError(
                    f"{file} line {number} is a JSON {type(record).__name__}, not an object; "
                    f'each line of a .jsonl file must be an object such as {{"{field}": "..."}}'
                )
            if field not in record:
                raise UserError(
                    f"{file} line {number} has no field {field!r}; set data.text_field to one "
                    f"of: {', '.join(record) or '(none)'}"
                )
            yield text_value(record[field], f"{file} line {number}", field, list(record))


def _read_delimited(file: Path, cfg: DataConfig) -> Iterator[str]:
    """.csv and .tsv through the csv module (quoted fields may hold newlines); header row."""
    field = cfg.text_field
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a document may be a long field
    delimiter = "\t" if file_kind(file) == ".tsv" else ","
    with _open_text(file) as f:
        rows = csv.reader(f, delimiter=delimiter)
        header = next(rows, None)
        if header is None:
            return
        if field not in header:
            raise UserError(
                f"{file} has no column {field!r}; set data.text_field to one of: "
                f"{', '.join(header) or '(none)'}"
            )
        column = header.index(field)
        for row in rows:
            if column < len(row):
                yield row[column]


def _read_parquet(file: Path, cfg: DataConfig) -> Iterator[str]:
    """A parquet column, read in record batches, so a large file is never loaded whole."""
    import pyarrow.parquet as pq

    field = cfg.text_field
    try:
        parquet = pq.ParquetFile(file)
    except Exception as err:
        raise UserError(
            f"{file} is not a readable parquet file ({one_line(err)}); point data.path at "
            f"{FORMATS_HINT}"
        ) from None
    names = parquet.schema_arrow.names
    if field not in names:
        raise UserError(
            f"{file} has no column {field!r}; set data.text_field to one of: {', '.join(names)}"
        )
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH, columns=[field]):
        for value in batch.column(0).to_pylist():
            yield text_value(value, str(file), field, names)


_READERS: dict[str, Callable[[Path, DataConfig], Iterator[str]]] = {
    ".txt": _read_txt,
    ".jsonl": _read_jsonl,
    ".csv": _read_delimited,
    ".tsv": _read_delimited,
    ".parquet": _read_parquet,
}
