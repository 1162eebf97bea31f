"""Read run folders, group them into experiments, and summarise each over its seeds.

The report reads files only (``config.yaml`` and ``metrics.json`` through
:mod:`dmx.runs`), never live objects, so it works on a sweep copied from another
machine and imports nothing heavy: no torch, Lightning or Hydra, and scipy and rich
only when a confidence interval or a table is actually needed.

The pipeline is small steps, each in its own module and replaceable on its own::

    collect(root)       -> list[Run]    every readable run folder under root   (collect)
    summarize(runs)     -> list[Row]    one Row per group, with statistics     (summary)
                                        grouping keys and labels               (groups, labels)
                                        mean, std, median, ci95                (stats)
    render(rows, fmt)   -> str | None   a rich table, markdown, csv or json    (table, render)
    report(root, fmt)                   the three above, for the CLI

Unreadable runs (a corrupt metrics.json or config.yaml) are skipped with a
:class:`SkippedRunWarning` through :mod:`warnings`, so one broken folder never hides
the rest of a sweep; the CLI shows these warnings on stderr, tests catch them with
``pytest.warns``. Failed, running and unfinished (killed) runs are counted in every
format, and failed runs are listed with their error message.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dmx.report.cells import cell
from dmx.report.collect import Run, SkippedRunWarning, collect, flatten
from dmx.report.groups import (
    IGNORED_KEYS,
    IMPL_PREFIX,
    LEGACY_IMPL_KEYS,
    MISSING,
    differing_keys,
    group_runs,
)
from dmx.report.labels import ALL_LABEL, STRATEGY_KEYS, format_value, group_label
from dmx.report.render import FORMATS, check_format, render, to_csv, to_json, to_markdown
from dmx.report.stats import METRICS, Metric, Stat, describe
from dmx.report.summary import Row, summarize
from dmx.report.table import print_table

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "ALL_LABEL",
    "FORMATS",
    "IGNORED_KEYS",
    "IMPL_PREFIX",
    "LEGACY_IMPL_KEYS",
    "METRICS",
    "MISSING",
    "STRATEGY_KEYS",
    "Metric",
    "Row",
    "Run",
    "SkippedRunWarning",
    "Stat",
    "cell",
    "check_format",
    "collect",
    "describe",
    "differing_keys",
    "flatten",
    "format_value",
    "group_label",
    "group_runs",
    "print_table",
    "render",
    "report",
    "summarize",
    "to_csv",
    "to_json",
    "to_markdown",
]


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
