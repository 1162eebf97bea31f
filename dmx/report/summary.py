"""Rows: one group of runs each, with the statistics of its done runs.

A Row keeps its runs, so later additions (a baseline with p-values paired by seed,
plots from each run's history.csv, a latex format) read from the same Rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dmx.common.run_folder import STATUS_DONE, STATUS_FAILED, STATUS_RUNNING
from dmx.report.collect import Run
from dmx.report.groups import IGNORED_KEYS, differing_keys, group_runs, impl_differences, sort_key
from dmx.report.labels import ALL_LABEL, label_groups
from dmx.report.metrics import DIAGNOSTICS, METRICS, Metric
from dmx.report.stats import Comparison, Stat, describe


@dataclass
class Row:
    """One group of runs and the statistics of its done runs."""

    group: dict[str, Any]  # differing key -> value; a key the group's runs lack is absent
    runs: list[Run]
    keys: list[str] = field(default_factory=list)  # the keys that differ between all groups
    stats: dict[str, Stat] = field(default_factory=dict)  # metric key -> Stat
    metrics: list[Metric] = field(default_factory=list)  # what stats holds, in column order
    label: str = ALL_LABEL  # full dotted keys, the strategy in place of its keys
    short_label: str = ALL_LABEL  # the same, keys shortened where unambiguous
    strategy: str | None = None  # the runs' recorded mask strategy, None for older runs
    # Implementation settings the done runs disagree on (a note, never a split): name ->
    # its distinct values, e.g. {"impl.num_workers": [0, 2], "precision": ["32-true", ...]}.
    impl_differs: dict[str, list[Any]] = field(default_factory=dict)
    # Set by dmx.report.baseline.compare_to: whether this row is the baseline, and else each
    # result metric's difference from it (metric key -> Comparison); empty without one.
    is_baseline: bool = False
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @property
    def done(self) -> list[Run]:
        """The replicates: the finished runs, one per seed. Two finished runs of one config
        and one seed (a rerun in another folder) are one replicate, not two: the newer
        counts, the others are :attr:`duplicates`."""
        newest: dict[Any, Run] = {}
        for run in self.runs:
            if run.status != STATUS_DONE:
                continue
            kept = newest.get(_seed_key(run.seed))
            if kept is None or (run.written, str(run.path)) > (kept.written, str(kept.path)):
                newest[_seed_key(run.seed)] = run
        kept_runs = {id(r) for r in newest.values()}
        return [r for r in self.runs if id(r) in kept_runs]

    @property
    def duplicates(self) -> list[Run]:
        """Finished runs set aside because a newer one has the same seed."""
        kept = {id(r) for r in self.done}
        return [r for r in self.runs if r.status == STATUS_DONE and id(r) not in kept]

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.status == STATUS_FAILED]

    @property
    def running(self) -> list[Run]:
        """Runs a live process is still training (it holds the run's lock)."""
        return [r for r in self.runs if r.status == STATUS_RUNNING]

    @property
    def unfinished(self) -> list[Run]:
        """Runs that will never finish on their own: killed, lost, or of unknown status."""
        known = (STATUS_DONE, STATUS_FAILED, STATUS_RUNNING)
        return [r for r in self.runs if r.status not in known]

    @property
    def n(self) -> int:
        return len(self.done)

    def values(self, key: str) -> list[tuple[Any, float]]:
        """(seed, value) of each done run that recorded a number for the metric."""
        pairs = [(r.seed, number(r.metrics.get(key))) for r in self.done]
        return [(seed, v) for seed, v in pairs if v is not None]

    @property
    def seeds(self) -> list[Any]:
        """Seeds of the done runs, the replicates the statistics are over."""
        return sorted((r.seed for r in self.done), key=sort_key)


def summarize(
    runs: Sequence[Run],
    metrics: Sequence[Metric] = METRICS,
    ignored: Iterable[str] = IGNORED_KEYS,
    optional: Sequence[Metric] = DIAGNOSTICS,
) -> list[Row]:
    """Group runs and compute each metric's statistics over each group's done runs.

    ``optional`` metrics join ``metrics`` only when some done run recorded them."""
    recorded = {
        k
        for run in runs
        if run.status == STATUS_DONE
        for k, v in run.metrics.items()
        if number(v) is not None
    }
    metrics = [*metrics, *(m for m in optional if m.key in recorded and m not in metrics)]
    ignored = tuple(ignored)
    keys = differing_keys(runs, ignored)
    rows = [
        Row(group=group, runs=members, keys=keys, strategy=_strategy(members))
        for group, members in group_runs(runs, ignored)
    ]
    full, short = label_groups([r.group for r in rows], keys, [r.strategy for r in rows])
    for row, label, short_label in zip(rows, full, short, strict=True):
        row.label, row.short_label = label, short_label
        row.impl_differs = impl_differences(row.done)
        row.metrics = list(metrics)
        for metric in metrics:
            row.stats[metric.key] = describe([v for _, v in row.values(metric.key)])
    return rows


def _seed_key(seed: Any) -> Any:
    """A seed as a dict key: a list (an odd but readable config) by its text."""
    return seed if isinstance(seed, Hashable) else repr(seed)


def _strategy(runs: Sequence[Run]) -> str | None:
    """The group's mask strategy; runs of one config agree on it, unless the masker's way of
    naming itself changed between them, which the label then shows."""
    found = sorted({r.strategy for r in runs if r.strategy is not None})
    return "/".join(found) if found else None


def number(value: Any) -> float | None:
    """A metric value as a float, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
