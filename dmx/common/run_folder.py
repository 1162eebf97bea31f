"""The run folder: the one source of truth a report reads.

Everything is written atomically (:mod:`dmx.common.files`), so a crash leaves the
previous version of a file intact. A report never needs the live objects of a run, only
these files:

    <run>/config.yaml     the resolved config (no interpolations left)
    <run>/history.csv     one row per validation
    <run>/metrics.json    the summary, with ``status`` running | done | failed
    <run>/checkpoints/last.ckpt
    <run>/.lock           held (flock) by the one process that trains into the folder

``metrics.json`` says ``running`` from the moment a run starts; whether a process is still
behind it is told by the lock, which the kernel releases when that process dies, even by
SIGKILL. So a report can tell a live run from one that was killed (``unfinished``).
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dmx.common.files import UMASK, atomic_write_text

CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
# Adaptive masking only: the per-id rate table's summary after every update (report --plot).
ADAPTIVE_FILE = "adaptive_rates.json"
CHECKPOINT_DIR = "checkpoints"
# The pretrained encoder and its tokenizer, kept once pretraining ends: every fine-tuning cell,
# and dmx finetune later, starts from a copy of it.
ENCODER_FILE = "encoder.pt"
# The encoder at the best validation loss so far (finetune.encoder=best, eval.encoder=best),
# kept whatever impl.keep_checkpoints says.
ENCODER_BEST_FILE = "encoder_best.pt"
FINETUNE_DIR = "finetune"
# Zero-shot evaluation: eval/<suite>/<paradigm>.json as each is scored, eval/<suite>.json.
EVAL_DIR = "eval"
LAST_CHECKPOINT = "last.ckpt"
LOCK_FILE = ".lock"

STATUS_RUNNING = "running"
STATUS_DONE = "done"
STATUS_FAILED = "failed"
# Stopped by a signal (SIGTERM, Ctrl-C) at a checkpoint: the same command continues it.
STATUS_INTERRUPTED = "interrupted"
# Never written: what a report calls a run whose metrics.json says running while no
# process holds its lock (killed, or its machine lost).
STATUS_UNFINISHED = "unfinished"


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


# What launching a run leaves in its folder before the run writes anything of its own:
# Hydra's record of the command, the lock, and the log (empty until something is logged).
LAUNCH_LEFTOVERS = frozenset({".hydra", LOCK_FILE, "train.log"})


def discard_unstarted(run_dir: Path) -> bool:
    """Remove a run folder that holds only what launching it left, so a command stopped by
    a mistake leaves no run behind; anything else in it (a run's files, a user's, a log
    that says something) keeps it. Returns whether it was removed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return False
    names = {entry.name for entry in run_dir.iterdir()}
    log = run_dir / "train.log"
    if not names <= LAUNCH_LEFTOVERS or (log.exists() and log.stat().st_size > 0):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return not run_dir.exists()


def step_checkpoints(run_dir: Path) -> list[Path]:
    """The run's step-<N>.ckpt files, newest first."""
    folder = run_dir / CHECKPOINT_DIR
    return sorted(folder.glob("step-*.ckpt"), reverse=True) if folder.is_dir() else []


def is_rank_zero() -> bool:
    """Whether this process writes the run folder: the one process of a plain run, or
    global rank 0 of a data-parallel one. Read from the launcher's environment (Lightning's
    own, torchrun's, SLURM's), so it is known before Lightning sets up its process group."""
    if os.environ.get("LOCAL_RANK", "0") != "0":  # Lightning's children carry only this
        return False
    for var in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):  # global ranks
        if var in os.environ:
            return int(os.environ[var]) == 0
    return os.environ.get("NODE_RANK", "0") == "0"


class RunFolderBusy(Exception):
    """Another process holds the run folder's lock."""


class RunLock:
    """An exclusive ``flock`` on ``<run>/.lock`` for as long as a process trains there.

    Two processes training into one folder would overwrite each other's files; the second
    one stops at :meth:`acquire` instead. The kernel drops the lock when its process
    dies, however it dies, so a lock never goes stale.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                raise RunFolderBusy(str(self.path.parent)) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_live(run_dir: Path) -> bool:
    """Whether a process on this machine holds the run's lock right now (a live run)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # no lock file: nothing ever trained here with a lock
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also drops the shared lock, if it was taken
    return False
