"""Reading run folders: every readable run under a folder, with its config flattened.

Only files are read (``config.yaml``, ``metrics.json`` and the run's lock), never live
objects, so a sweep copied from another machine reports the same as where it ran.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dmx.common.errors import UserError, one_line
from dmx.common.run_folder import (
    CONFIG_FILE,
    METRICS_FILE,
    STATUS_RUNNING,
    STATUS_UNFINISHED,
    find_runs,
    is_live,
    read_metrics,
)

# What a run that never pretrained (trainer.max_epochs=0: the control) is called, in place of
# its mask strategy; and the config keys that say how it would have pretrained, which did
# not happen: left out, so untrained runs of any mask or length group together.
UNTRAINED = "untrained"
PRETRAINING_KEYS = ("mask.", "rate.", "trainer.max_epochs", "trainer.max_steps")
# Settings of what ran after pretraining: `dmx finetune` and `dmx eval` change them after
# config.yaml was written, and what each run measured is in its columns, so they never
# split a group (a run fine-tuned afterwards is not `finetune=none`).
DOWNSTREAM_KEYS = ("finetune.", "eval.")


class SkippedRunWarning(UserWarning):
    """A run folder could not be read and is left out of the report."""


@dataclass
class Run:
    """One run folder as the report sees it: its flattened config and its metrics."""

    path: Path
    # done | failed | running (a process holds the run's lock) | unfinished (metrics.json
    # says running but nothing holds the lock: killed, or its machine lost). A run killed
    # by SIGKILL never gets to rewrite metrics.json, so its recorded status cannot be trusted.
    status: str
    config: dict[str, Any]  # flattened to dotted keys: {"mask.copies": 1, ...}
    metrics: dict[str, Any]
    # When metrics.json was last written (its mtime): of two finished runs of one config and
    # seed, the report keeps the newer.
    written: float = 0.0

    @property
    def seed(self) -> Any:
        """The seed metrics.json recorded, else the config's."""
        seed = self.metrics.get("seed")
        return self.config.get("seed") if seed is None else seed

    @property
    def untrained(self) -> bool:
        return self.metrics.get("pretrained") is False

    @property
    def error(self) -> str | None:
        return self.metrics.get("error")

    @property
    def strategy(self) -> str | None:
        """What the masker did, e.g. ``static(K=1)``, or ``untrained`` for a run that never
        pretrained; runs older than this field have None."""
        if self.untrained:
            return UNTRAINED
        value = self.metrics.get("mask_strategy")
        return None if value is None else str(value)


def collect(root: Path) -> list[Run]:
    """Every readable run under ``root`` (a sweep folder or one run folder), sorted by path.

    Raises UserError when ``root`` is missing or holds no runs; a run whose files
    cannot be read is skipped with a SkippedRunWarning instead of stopping the report.
    """
    root = Path(root)
    if not root.exists():
        raise UserError(
            f"no such folder: {root}; pass a sweep or run folder, e.g. outputs/sweeps/<name>"
        )
    if not root.is_dir():
        raise UserError(
            f"{root} is a file, not a folder; pass a sweep or run folder, "
            "e.g. outputs/sweeps/<name>"
        )
    paths = list(find_runs(root))
    if not paths:
        raise UserError(
            f"no runs in {root}: a run is a folder holding {METRICS_FILE}; "
            "create some with `dmx sweep` or `dmx train`, or pass the folder "
            "they were written to"
        )
    runs = []
    for path in paths:
        run = _read_run(path)
        if run is not None:
            runs.append(run)
    if not runs:
        raise UserError(
            f"none of the {len(paths)} runs in {root} could be read "
            f"(see the warnings above); check their {METRICS_FILE} "
            f"and {CONFIG_FILE}, or rerun them"
        )
    return runs


def _read_run(path: Path) -> Run | None:
    """Read one run folder, or warn and return None when one of its files is unreadable."""
    try:
        metrics = read_metrics(path)
    except (OSError, ValueError) as exc:  # ValueError covers bad JSON and bad UTF-8
        return _skip(path / METRICS_FILE, exc)
    try:
        config = _read_config(path / CONFIG_FILE)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return _skip(path / CONFIG_FILE, exc)
    written = (path / METRICS_FILE).stat().st_mtime
    status = _status(path, metrics)
    return Run(path, status, as_done(flatten(config), metrics), metrics, written)


def as_done(config: dict[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The config as what was done to the run: no downstream settings, and for a run that
    never pretrained none of the pretraining it did not do (its label says ``untrained``)."""
    untrained = metrics.get("pretrained") is False
    left_out = (*DOWNSTREAM_KEYS, *(PRETRAINING_KEYS if untrained else ()))
    return {key: value for key, value in config.items() if not key.startswith(left_out)}


def _status(path: Path, metrics: Mapping[str, Any]) -> str:
    status = str(metrics.get("status"))
    if status == STATUS_RUNNING and not is_live(path):
        return STATUS_UNFINISHED
    return status


def _skip(file: Path, exc: Exception) -> None:
    warnings.warn(
        f"skipped run {file.parent}: cannot read {file.name} "
        f"({one_line(exc) or type(exc).__name__}); "
        "rerun that run or move its folder out of the sweep",
        SkippedRunWarning,
        stacklevel=4,  # point at whoever called collect, not at this module
    )


def _read_config(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise ValueError(f"{path} does not hold a YAML mapping")
    return config


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys, in the config's own order: {"mask": {"copies": 1}}
    becomes {"mask.copies": 1}, so runs compare key by key. Lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat
