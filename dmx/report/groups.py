"""Which config keys define an experiment, and grouping runs by them.

A *group* is the set of runs whose configs agree on every key that defines an
experiment; seeds are replicates within a group, not groups of their own, and
implementation settings (how fast a run went, where it wrote) never change what a
run measures, so they never split a group either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dmx.report.collect import Run

# Config keys that never define an experiment: the seed is a replicate (and so is the
# fine-tuning seed of runs made before the protocol, which presets tied to it:
# finetune.seed=${seed}; the protocol's finetune.seeds are one set for all runs), and the logger and
# Hydra's own settings change where results go, not what they are. An entry matches the
# key itself and everything below it ("logger" matches "logger.mode").
IGNORED_KEYS: tuple[str, ...] = ("seed", "finetune.seed", "logger", "hydra")

# Implementation settings: they change speed or where files go, never results. They are
# left out of grouping whatever ``ignored`` says (even with --per-seed), but a group whose
# runs disagree on one is flagged, since speed and numerics may still differ.
IMPL_PREFIX = "impl"

# Older runs kept the implementation settings elsewhere; each maps to its name under impl.,
# so a group mixing old and new runs is compared setting by setting.
LEGACY_IMPL_KEYS: dict[str, str] = {
    "trainer.accelerator": "impl.accelerator",
    "trainer.devices": "impl.devices",
    "trainer.precision": "impl.precision",
    "trainer.progress_bar": "impl.progress_bar",
    "trainer.checkpoint": "impl.checkpoint",
    "data.num_workers": "impl.num_workers",
    "data.cache_dir": "impl.cache_dir",
}

# The realised precision a run reports in metrics.json: "auto" in the config may become
# bf16 on one machine and fp32 on another, which moves the numbers a little.
REALISED_PRECISION = "precision"


class _Missing:
    """The value of a key a run's config does not have (an older schema), unlike null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def is_ignored(key: str, ignored: Iterable[str] = IGNORED_KEYS) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in ignored)


def impl_name(key: str) -> str | None:
    """The impl. name of an implementation setting (legacy names translated), else None."""
    if is_ignored(key, (IMPL_PREFIX,)):
        return key
    return LEGACY_IMPL_KEYS.get(key)


def differing_keys(runs: Sequence[Run], ignored: Iterable[str] = IGNORED_KEYS) -> list[str]:
    """Config keys whose value differs between the runs that have them, in config order.

    A key only some runs have is a schema addition, not an experimental difference: it
    differs only when the runs that have it disagree (an explicit null is a value).
    """
    ignored = tuple(ignored)
    keys: dict[str, None] = {}  # an ordered set, in order of first appearance
    for run in runs:
        keys.update(
            dict.fromkeys(k for k in run.config if not (is_ignored(k, ignored) or impl_name(k)))
        )
    return [k for k in keys if len(distinct(run.config[k] for run in runs if k in run.config)) > 1]


def distinct(values: Iterable[Any]) -> list[Any]:
    """The distinct values, in the order groups are sorted (numbers numerically, None first)."""
    unique = {hashable(v): v for v in values}
    return sorted(unique.values(), key=sort_key)


def hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple((k, hashable(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(hashable(v) for v in value)
    return value


def sort_key(value: Any) -> tuple[int, Any]:
    """Missing first, then None, numbers numerically (2 before 10), then text."""
    if value is MISSING:
        return (0, 0)
    if value is None:
        return (1, 0)
    if isinstance(value, (int, float)) and not math.isnan(value):
        return (2, value)
    return (3, str(value))


def group_runs(
    runs: Sequence[Run], ignored: Iterable[str] = IGNORED_KEYS
) -> list[tuple[dict[str, Any], list[Run]]]:
    """(group, runs) pairs, where group maps each differing key to the runs' shared value.

    A key the group's runs lack is left out of its group (it is not null there). With one
    group the group is {}. Pairs are sorted by group values in key order.
    """
    keys = differing_keys(runs, ignored)
    groups: dict[tuple[Any, ...], tuple[dict[str, Any], list[Run]]] = {}
    for run in runs:
        values = tuple(run.config.get(k, MISSING) for k in keys)
        group = {k: v for k, v in zip(keys, values, strict=True) if v is not MISSING}
        groups.setdefault(tuple(map(hashable, values)), (group, []))[1].append(run)
    return sorted(
        groups.values(), key=lambda pair: tuple(sort_key(pair[0].get(k, MISSING)) for k in keys)
    )


def impl_differences(runs: Sequence[Run]) -> dict[str, list[Any]]:
    """Implementation settings the runs disagree on, each with its distinct values.

    Only runs that have a setting take part, as for grouping; legacy names count under
    their impl. name. The realised precision from metrics.json is compared too.
    """
    seen: dict[str, list[Any]] = {}
    for run in runs:
        for name, value in _impl_settings(run).items():
            seen.setdefault(name, []).append(value)
    found = {key: distinct(values) for key, values in seen.items()}
    return {key: values for key, values in found.items() if len(values) > 1}


def _impl_settings(run: Run) -> dict[str, Any]:
    """One run's implementation settings by impl. name; a new name wins over a legacy one."""
    settings = {LEGACY_IMPL_KEYS[k]: v for k, v in run.config.items() if k in LEGACY_IMPL_KEYS}
    settings.update((k, v) for k, v in run.config.items() if is_ignored(k, (IMPL_PREFIX,)))
    if REALISED_PRECISION in run.metrics:
        settings[REALISED_PRECISION] = run.metrics[REALISED_PRECISION]
    return settings
