"""Read run folders, group them into experiments, and summarise each over its seeds.

The report reads files only (``config.yaml`` and ``metrics.json`` through
:mod:`dmx.runs`), never live objects, so it works on a sweep copied from another
machine and imports nothing heavy: no torch, Lightning or Hydra, and scipy and rich
only when a confidence interval or a table is actually needed.

The pipeline is four small steps, each replaceable on its own::

    collect(root)       -> list[Run]    every readable run folder under root
    summarize(runs)     -> list[Row]    one Row per group of runs, with statistics
    render(rows, fmt)   -> str | None   a rich table, markdown, csv or json
    report(root, fmt)                   the three above, for the CLI

A *group* is the set of runs whose configs agree on every key that defines an
experiment; seeds are replicates within a group, not groups of their own. A Row
keeps its runs, so later additions (a baseline with p-values paired by seed, medians,
plots from each run's history.csv, a latex format) read from the same Rows.

Unreadable runs (a corrupt metrics.json or config.yaml) are skipped with a
:class:`SkippedRunWarning` through :mod:`warnings`, so one broken folder never hides
the rest of a sweep; the CLI shows these warnings on stderr, tests catch them with
``pytest.warns``. Failed and unfinished runs are counted in every format, and failed
runs are listed with their error message.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dmx.errors import UserError
from dmx.runs import (
    CONFIG_FILE,
    METRICS_FILE,
    STATUS_DONE,
    STATUS_FAILED,
    find_runs,
    json_safe,
    read_metrics,
)

if TYPE_CHECKING:
    from rich.console import Console

# Config keys that never define an experiment: the seed is a replicate, and the logger,
# output paths and Hydra's own settings change where results go, not what they are.
# An entry matches the key itself and everything below it ("logger" matches "logger.mode").
IGNORED_KEYS: tuple[str, ...] = ("seed", "logger", "paths", "hydra")

# Label of the single group when every run shares one config (up to the ignored keys).
ALL_LABEL = "all"


@dataclass(frozen=True)
class Metric:
    """A summarised metric: its key in metrics.json, a column header, a format spec."""

    key: str
    label: str
    spec: str  # format spec applied to the mean and the std alike

    def format(self, value: float) -> str:
        return format(value, self.spec)


# The metrics every report shows, in column order.
METRICS: tuple[Metric, ...] = (
    Metric("final_val_loss", "val loss", ".3f"),
    Metric("best_val_loss", "best val loss", ".3f"),
    Metric("final_val_acc", "val acc", ".2%"),
    Metric("final_train_loss", "train loss", ".3f"),
    Metric("tokens_per_s", "tokens/s", ",.0f"),
)


class SkippedRunWarning(UserWarning):
    """A run folder could not be read and is left out of the report."""


# ---------------------------------------------------------------------------- collect


@dataclass
class Run:
    """One run folder as the report sees it: its flattened config and its metrics."""

    path: Path
    status: str
    config: dict[str, Any]  # flattened to dotted keys: {"mask.copies": 1, ...}
    metrics: dict[str, Any]

    @property
    def seed(self) -> Any:
        """The seed metrics.json recorded, else the config's."""
        seed = self.metrics.get("seed")
        return self.config.get("seed") if seed is None else seed

    @property
    def error(self) -> str | None:
        return self.metrics.get("error")


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
    status = metrics.get("status")
    return Run(path=path, status=str(status), config=flatten(config), metrics=metrics)


def _skip(file: Path, exc: Exception) -> None:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    warnings.warn(
        f"skipped run {file.parent}: cannot read {file.name} ({reason}); "
        "rerun that run or move its folder out of the sweep",
        SkippedRunWarning,
        stacklevel=3,
    )


def _read_config(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict):
        raise ValueError(f"{path} does not hold a YAML mapping")
    return config


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys, in the config's own order: {"mask": {"copies": 1}}
    becomes {"mask.copies": 1}. Lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


# ---------------------------------------------------------------------------- group


def is_ignored(key: str, ignored: Iterable[str] = IGNORED_KEYS) -> bool:
    return any(key == name or key.startswith(f"{name}.") for name in ignored)


def differing_keys(runs: Sequence[Run], ignored: Iterable[str] = IGNORED_KEYS) -> list[str]:
    """Config keys whose value differs between runs, in config order.

    A key missing from a run counts as None there, so a key that only some runs have
    (or that is null in some) still separates them.
    """
    ignored = tuple(ignored)
    keys: dict[str, None] = {}  # an ordered set, in order of first appearance
    for run in runs:
        keys.update(dict.fromkeys(k for k in run.config if not is_ignored(k, ignored)))
    return [k for k in keys if len({_hashable(run.config.get(k)) for run in runs}) > 1]


def _hashable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple((k, _hashable(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


def group_runs(
    runs: Sequence[Run], ignored: Iterable[str] = IGNORED_KEYS
) -> list[tuple[dict[str, Any], list[Run]]]:
    """(group, runs) pairs, where group maps each differing key to the runs' shared value.

    With one group the group is {} (labelled "all"). Pairs are sorted by group values
    in key order, numbers numerically and None first, so 2 comes before 10.
    """
    keys = differing_keys(runs, ignored)
    groups: dict[tuple[Any, ...], tuple[dict[str, Any], list[Run]]] = {}
    for run in runs:
        group = {k: run.config.get(k) for k in keys}
        ident = tuple(_hashable(v) for v in group.values())
        groups.setdefault(ident, (group, []))[1].append(run)
    return sorted(groups.values(), key=lambda pair: _sort_key(pair[0]))


def _sort_key(group: Mapping[str, Any]) -> tuple[tuple[int, Any], ...]:
    def one(value: Any) -> tuple[int, Any]:
        if value is None:
            return (0, 0)
        if isinstance(value, (int, float)) and not math.isnan(value):
            return (1, value)
        return (2, str(value))

    return tuple(one(v) for v in group.values())


def format_value(value: Any) -> str:
    """A config value as one would write it in a Hydra override: null, true, 0.15."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def group_label(group: Mapping[str, Any]) -> str:
    if not group:
        return ALL_LABEL
    return ", ".join(f"{k}={format_value(v)}" for k, v in group.items())


# ---------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stat:
    """Summary of one metric over a group's done runs; std and ci95 need n >= 2."""

    n: int
    mean: float | None
    std: float | None  # sample standard deviation (ddof=1)
    ci95: float | None  # half-width of the 95% confidence interval of the mean (Student's t)


def describe(values: Sequence[float]) -> Stat:
    n = len(values)
    if n == 0:
        return Stat(0, None, None, None)
    mean = math.fsum(values) / n
    if n < 2:
        return Stat(n, mean, None, None)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))
    from scipy.stats import t  # about a second to import: only when it is needed

    return Stat(n, mean, std, float(t.ppf(0.975, n - 1)) * std / math.sqrt(n))


def _number(value: Any) -> float | None:
    """A metric value as a float, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass
class Row:
    """One group of runs and the statistics of its done runs."""

    group: dict[str, Any]
    runs: list[Run]
    stats: dict[str, Stat] = field(default_factory=dict)  # metric key -> Stat

    @property
    def label(self) -> str:
        return group_label(self.group)

    @property
    def done(self) -> list[Run]:
        return [r for r in self.runs if r.status == STATUS_DONE]

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.status == STATUS_FAILED]

    @property
    def unfinished(self) -> list[Run]:
        """Runs neither done nor failed: still running, or killed before they could say."""
        return [r for r in self.runs if r.status not in (STATUS_DONE, STATUS_FAILED)]

    @property
    def n(self) -> int:
        return len(self.done)

    @property
    def seeds(self) -> list[Any]:
        """Seeds of the done runs, the replicates the statistics are over."""
        return sorted((r.seed for r in self.done), key=lambda s: _sort_key({"": s}))


def summarize(
    runs: Sequence[Run], metrics: Sequence[Metric] = METRICS, ignored: Iterable[str] = IGNORED_KEYS
) -> list[Row]:
    """Group runs and compute each metric's statistics over each group's done runs."""
    rows = []
    for group, members in group_runs(runs, ignored):
        row = Row(group=group, runs=members)
        for metric in metrics:
            values = [_number(r.metrics.get(metric.key)) for r in row.done]
            row.stats[metric.key] = describe([v for v in values if v is not None])
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------- render


def cell(stat: Stat, metric: Metric) -> str:
    """ "mean ± std", just the mean when n < 2, or a dash when there is nothing."""
    if stat.mean is None:
        return "–"
    if stat.std is None:
        return metric.format(stat.mean)
    return f"{metric.format(stat.mean)} ± {metric.format(stat.std)}"


def _one_line(text: str | None) -> str:
    return " ".join(str(text).split()) if text else "(no error message recorded)"


def _failed_lines(rows: Sequence[Row]) -> list[tuple[str, str]]:
    return [(str(run.path), _one_line(run.error)) for row in rows for run in row.failed]


def _metrics_of(rows: Sequence[Row]) -> list[Metric]:
    """The metrics the rows hold, described by METRICS where it knows them."""
    known = {m.key: m for m in METRICS}
    keys = dict.fromkeys(key for row in rows for key in row.stats)
    return [known.get(key, Metric(key, key, ".4g")) for key in keys]


def print_table(rows: Sequence[Row], console: Console | None = None) -> None:
    """A rich table, one row per group, then one line per failed run with its error."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe or a file: no terminal width to squeeze into
            console = Console(width=240)
    metrics = _metrics_of(rows)
    table = Table(caption="mean ± sample std over the n done runs of each group")
    table.add_column("group", no_wrap=True)
    for header in ("n", "failed", "running"):
        table.add_column(header, justify="right")
    for metric in metrics:
        table.add_column(metric.label, justify="right")
    for row in rows:
        # Text, not markup: a config value like "[1, 2]" must not read as a style.
        table.add_row(
            Text(row.label),
            str(row.n),
            str(len(row.failed)),
            str(len(row.unfinished)),
            *(cell(row.stats[m.key], m) for m in metrics),
        )
    console.print(table)
    for path, error in _failed_lines(rows):
        console.print(Text.assemble(("failed ", "bold red"), f"{path}: {error}"))


def to_markdown(rows: Sequence[Row]) -> str:
    """A GitHub markdown table with the same cells as the rich table, then failed runs."""
    metrics = _metrics_of(rows)
    header = ["group", "n", "failed", "running", *(m.label for m in metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "--:|" * (len(header) - 1)]
    for row in rows:
        cells = [
            row.label,
            str(row.n),
            str(len(row.failed)),
            str(len(row.unfinished)),
            *(cell(row.stats[m.key], m) for m in metrics),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    failed = _failed_lines(rows)
    if failed:
        lines += ["", "Failed runs:", ""]
        lines += [f"- `{path}`: {error}" for path, error in failed]
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[Row]) -> str:
    """One line per group: the group's config values, counts, and every statistic
    in its own column (final_val_loss_mean, final_val_loss_std, ...), full precision."""
    keys = list(rows[0].group) if rows else []
    metrics = _metrics_of(rows)
    header = ["group", *keys, "n", "n_failed", "n_running", "seeds"]
    header += [f"{m.key}_{s}" for m in metrics for s in ("mean", "std", "ci95")]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        stats = [row.stats[m.key] for m in metrics]
        writer.writerow(
            [
                row.label,
                *(_csv_value(row.group[k]) for k in keys),
                row.n,
                len(row.failed),
                len(row.unfinished),
                " ".join(format_value(s) for s in row.seeds),
                *(_csv_value(v) for s in stats for v in (s.mean, s.std, s.ci95)),
            ]
        )
    return buf.getvalue()


def _csv_value(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def to_json(rows: Sequence[Row]) -> str:
    """A JSON list, one object per group (the documented shape; NaN and None -> null):

    {"group": {key: value}, "n": int, "n_failed": int, "n_running": int, "seeds": [...],
     "<metric>": {"mean": x, "std": y, "ci95": z}, ..., "failed": [{"path", "error"}]}
    """
    out = []
    for row in rows:
        obj: dict[str, Any] = {
            "group": dict(row.group),
            "n": row.n,
            "n_failed": len(row.failed),
            "n_running": len(row.unfinished),
            "seeds": row.seeds,
        }
        for key, stat in row.stats.items():
            obj[key] = {"mean": stat.mean, "std": stat.std, "ci95": stat.ci95}
        obj["failed"] = [{"path": str(r.path), "error": r.error} for r in row.failed]
        out.append(json_safe(obj))
    return json.dumps(out, indent=2, allow_nan=False) + "\n"


# Text formats: each turns rows into a string. "table" prints instead (see render).
TEXT_FORMATS: dict[str, Callable[[Sequence[Row]], str]] = {
    "md": to_markdown,
    "csv": to_csv,
    "json": to_json,
}
FORMATS: tuple[str, ...] = ("table", *TEXT_FORMATS)


def check_format(fmt: str) -> str:
    """Fail early, before reading anything, on a format we cannot write."""
    if fmt not in FORMATS:
        raise UserError(f"unknown report format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return fmt


def render(rows: Sequence[Row], fmt: str = "table", console: Console | None = None) -> str | None:
    """Print the table (and return None), or return the text of another format."""
    check_format(fmt)
    if fmt == "table":
        print_table(rows, console)
        return None
    return TEXT_FORMATS[fmt](rows)


def report(
    root: Path, fmt: str = "table", console: Console | None = None, per_seed: bool = False
) -> str | None:
    """What `dmx report` does: collect the runs under root, summarise, render.

    For "table" it prints to ``console`` and returns None; for md, csv and json it
    returns the text, which the CLI prints or writes to a file. ``per_seed`` keeps each
    seed in a group of its own, to see whether a difference holds seed by seed.
    """
    check_format(fmt)
    ignored = [k for k in IGNORED_KEYS if k != "seed"] if per_seed else IGNORED_KEYS
    return render(summarize(collect(Path(root)), ignored=ignored), fmt, console)
