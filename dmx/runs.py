"""The run folder: the one source of truth a report reads.

Everything is written atomically (a temporary file in the same folder, then
``os.replace``), so a crash or a full disk leaves the previous version of a file
intact instead of half a file. A report never needs the live objects of a run,
only these files:

    <run>/config.yaml     the resolved config (no interpolations left)
    <run>/history.csv     one row per validation
    <run>/metrics.json    the summary, with ``status`` running | done | failed
    <run>/checkpoints/last.ckpt
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
CHECKPOINT_DIR = "checkpoints"

STATUS_RUNNING = "running"
STATUS_DONE = "done"
STATUS_FAILED = "failed"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a sibling temp file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: write null. Anything else unknown becomes a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    return str(value)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(
        path, json.dumps(json_safe(data), indent=2, sort_keys=True, allow_nan=False) + "\n"
    )


def write_history(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rewrite the whole history each time: it is small, and a rewrite stays atomic."""
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_history(path: Path) -> list[dict[str, float | int | str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: _parse_number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _parse_number(text: str) -> float | int | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_metrics(run_dir: Path) -> dict[str, Any]:
    with open(Path(run_dir) / METRICS_FILE, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{run_dir / METRICS_FILE} does not hold a JSON object")
    return data


def find_runs(root: Path) -> Iterator[Path]:
    """Every folder under ``root`` (itself included) that holds a metrics.json, sorted.

    W&B's own folders are skipped: they mirror runs, they are not runs.
    """
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in {"wandb", CHECKPOINT_DIR, ".hydra"})
        if METRICS_FILE in filenames:
            yield Path(dirpath)
