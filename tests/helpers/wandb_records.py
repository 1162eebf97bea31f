"""Read an offline W&B run's transaction log (``run-<id>.wandb``) as W&B's own reader does.

The file is a LevelDB-style log: a 7-byte header (``:W&B``, a 2-byte magic, a version),
then 32 KiB blocks of chunks, each with a 7-byte header (CRC-32, length, type: full, first,
middle, last). A record is one protobuf ``wandb_internal_pb2.Record``. wandb 0.31 moved its
own reader into its Go core, so the tests carry this one.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[Any]:
    from wandb.proto.wandb_internal_pb2 import Record

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending, found = HEADER, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            found.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            found.append(pending + chunk)
        elif kind == 0 and length == 0:  # zero padding to the block's end
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
    return [Record.FromString(chunk) for chunk in found]


@dataclass
class OfflineRun:
    """What W&B would show of one run: its identity, history keys, summary and metrics."""

    run_id: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    step_metrics: dict[str, str] = field(default_factory=dict)  # metric or glob -> x axis

    @property
    def history_keys(self) -> set[str]:
        return {key for row in self.history for key in row}


def read_run(path: Path) -> OfflineRun:
    run = OfflineRun()
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.group, run.job_type = r.run_id, r.run_group, r.job_type
            run.name, run.tags = r.display_name, list(r.tags)
        elif kind == "history":
            run.history.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "metric":
            m = record.metric
            if m.step_metric:
                run.step_metrics[m.name or m.glob_name] = m.step_metric
    return run
