"""Documents from text files: ``source=text`` reads a .txt, .jsonl, .csv/.tsv or .parquet
file at ``data.path`` (the text ones possibly gzipped), or a folder of shards of one kind,
and fingerprints the files' bytes for the token cache in the same pass that checks they are
text.

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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from dmx.common.errors import UserError, one_line
from dmx.config import DataConfig
from dmx.data.source import Source, is_validation, text_value

TEXT_EXTENSIONS = (".txt", ".jsonl", ".csv", ".tsv", ".parquet")
# Text formats may also come gzipped (shards.jsonl.gz); parquet compresses itself.
GZIP_EXTENSIONS = (".txt", ".jsonl", ".csv", ".tsv")
FORMATS_HINT = (
    "a .txt, .jsonl, .csv, .tsv or .parquet file (the text ones may be .gz), or a folder of "
    "such files of one kind"
)
_READ_CHUNK = 1 << 20
_PARQUET_BATCH = 4096


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


def text_source(cfg: DataConfig) -> Source:
    """The files of ``data.path`` (and ``data.val_path``), checked as far as can be without
    reading them all."""
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


def json_lines(lines: Iterable[str], where: Path, what: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for each non-blank line; a line that is not JSON is one
    UserError naming it (``what``: what each line should be, for the message)."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(
                f"{where} line {number} is not JSON ({err.msg}); each line of {what}"
            ) from None


def _read_jsonl(file: Path, cfg: DataConfig) -> Iterator[str]:
    field = cfg.text_field
    with _open_text(file) as f:
        for number, record in json_lines(f, file, "a .jsonl file must be one JSON object"):
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
