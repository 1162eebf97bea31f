"""Files written whole or not at all: a temporary file in the same folder, then
``os.replace``. A crash or a full disk leaves the previous version of a file intact instead
of half a file, so no reader (a report, a cache lookup, a resumed run) ever sees a torn one.
Every file dmx writes goes through here: run folders, the corpus cache, PMI units, reports.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


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
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; give the usual permissions
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
