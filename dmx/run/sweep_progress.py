"""Where a sweep is: run n of N, the runs done, failed and left, and the time left.

A Hydra callback (conf/config.yaml's ``hydra.callbacks``), so ``dmx sweep`` and
``dmx-train -m`` report alike, with any launcher. Each line goes to the console through the
log and is appended to the sweep's own ``sweep.log``. The counts are read from the sweep
folder (each run's metrics.json), so runs finished by an earlier attempt of the same sweep
count as done; the estimate uses only the runs trained in this one, their mean wall time
times the runs left (one at a time: a launcher running several at once finishes sooner).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dmx.common.run_folder import METRICS_FILE, STATUS_DONE, STATUS_FAILED, read_metrics

log = logging.getLogger("dmx.sweep")
LOG_FILE = "sweep.log"


def grid_size(config: DictConfig) -> int | None:
    """How many runs a multirun's config asks for: the product of its sweeps' lengths (the
    command line's and the preset's sweeper params), as Hydra's basic sweeper counts."""
    from dmx.config.validate import multirun_overrides

    try:
        parsed = multirun_overrides(config)
    except Exception:  # noqa: BLE001 - a progress line is never worth a failed sweep
        return None
    lengths: dict[str, int] = {}
    for override in parsed:
        key = override.get_key_element()
        lengths[key] = (
            len(list(override.sweep_string_iterator())) if (override.is_sweep_override()) else 1
        )
    return math.prod(lengths.values())


@dataclass(frozen=True)
class Progress:
    total: int | None
    done: int
    failed: int
    trained_here_s: list[float]  # wall times of the runs this attempt finished

    @property
    def left(self) -> int | None:
        return None if self.total is None else max(self.total - self.done - self.failed, 0)

    def eta_s(self) -> float | None:
        if not self.trained_here_s or self.left is None:
            return None
        return sum(self.trained_here_s) / len(self.trained_here_s) * self.left


def progress(sweep_dir: Path, total: int | None, since: float) -> Progress:
    done = failed = 0
    trained: list[float] = []
    for metrics_file in sweep_dir.glob(f"*/{METRICS_FILE}"):
        try:
            metrics = read_metrics(metrics_file.parent)
        except (OSError, ValueError):
            continue
        status = metrics.get("status")
        done += status == STATUS_DONE
        failed += status == STATUS_FAILED
        finished_here = metrics_file.stat().st_mtime >= since
        if status in (STATUS_DONE, STATUS_FAILED) and finished_here and metrics.get("wall_s"):
            trained.append(float(metrics["wall_s"]))
    return Progress(total, done, failed, trained)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def line(n: int, p: Progress) -> str:
    """``sweep: run 3 of 6 (2 done, 0 failed, 4 left; about 1 min 20 s left)``."""
    of = f" of {p.total}" if p.total is not None else ""
    left = f", {p.left} left" if p.left is not None else ""
    eta = p.eta_s()
    when = f"; about {duration(eta)} left" if eta is not None else ""
    return f"sweep: run {n}{of} ({p.done} done, {p.failed} failed{left}{when})"


class SweepProgress(Callback):
    """Logs one line as each run of a multirun starts, and one when the sweep ends."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.total: int | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()
        self.total = grid_size(config)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.types import RunMode

        if config.hydra.mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        if self.total is None:  # a launcher's own process: the sweep's record says it
            parent = sweep_dir / "multirun.yaml"
            if parent.exists():
                self.total = grid_size(OmegaConf.load(parent))  # type: ignore[arg-type]
                self.started = parent.stat().st_mtime
        since = self.started if self.started is not None else time.time()
        text = line(int(config.hydra.job.num) + 1, progress(sweep_dir, self.total, since))
        self._say(sweep_dir, text)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        since = self.started if self.started is not None else time.time()
        p = progress(sweep_dir, self.total, since)
        took = f" in {duration(time.time() - since)}" if self.started is not None else ""
        self._say(sweep_dir, f"sweep: finished{took}: {p.done} done, {p.failed} failed")

    @staticmethod
    def _say(sweep_dir: Path, text: str) -> None:
        log.info(text)
        try:
            with (sweep_dir / LOG_FILE).open("a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
        except OSError:
            pass  # the console has it


__all__ = ["SweepProgress", "grid_size", "line", "progress"]
