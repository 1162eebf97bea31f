"""The text every format shares: a statistic's cell, notes on a row, failed runs.

Each format lays these out its own way; keeping the words here means a table, a
markdown file and a terminal never disagree on what a number or a warning says.
"""

from __future__ import annotations

from collections.abc import Sequence

from dmx.errors import one_line
from dmx.report.labels import format_value
from dmx.report.stats import Metric, Stat
from dmx.report.summary import Row

CAPTION = "mean ± sample std over the n done runs of each group"


def cell(stat: Stat, metric: Metric) -> str:
    """ "mean ± std", just the mean when n < 2, or a dash when there is nothing."""
    if stat.mean is None:
        return "–"
    if stat.std is None:
        return metric.format(stat.mean)
    return f"{metric.format(stat.mean)} ± {metric.format(stat.std)}"


def metrics_of(rows: Sequence[Row]) -> list[Metric]:
    """The metrics the rows were summarised over, in column order."""
    return list({m.key: m for row in rows for m in row.metrics}.values())


def impl_note(row: Row, name: str) -> str | None:
    """A warning that the row's numbers pool runs with different implementation settings,
    which may shift speed (tokens/s) and, through precision, the losses a little."""
    if not row.impl_differs:
        return None
    settings = "; ".join(
        f"{key} ∈ {{{', '.join(format_value(v) for v in values)}}}"
        for key, values in row.impl_differs.items()
    )
    return f"{name} mixes implementation settings: {settings}"


def failed_lines(rows: Sequence[Row]) -> list[tuple[str, str]]:
    """(path, error on one line) of every failed run, so a row never breaks a table."""
    return [
        (str(run.path), one_line(run.error or "(no error message recorded)"))
        for row in rows
        for run in row.failed
    ]
