"""The text every format shares: a statistic's cell, notes on a row, failed runs.

Each format lays these out its own way; keeping the words here means a table, a
markdown file and a terminal never disagree on what a number or a warning says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dmx.common.errors import one_line
from dmx.report.labels import format_value
from dmx.report.metrics import Metric, is_result
from dmx.report.stats import Comparison, Stat
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


def duplicate_note(row: Row, name: str) -> str | None:
    """Which finished runs the row set aside as reruns of a seed it already counts."""
    duplicates = row.duplicates
    if not duplicates:
        return None
    runs = "run" if len(duplicates) == 1 else "runs"
    paths = ", ".join(str(r.path) for r in duplicates)
    return (
        f"{name}: {len(duplicates)} finished {runs} set aside, a seed the group already has "
        f"(the newest of each seed counts, n = {row.n}): {paths}"
    )


def row_notes(rows: Sequence[Row], name: Callable[[int, Row], str]) -> list[str]:
    """Every row's notes: mixed implementation settings, reruns set aside."""
    notes = []
    for i, row in enumerate(rows):
        notes += [n for n in (impl_note(row, name(i, row)), duplicate_note(row, name(i, row))) if n]
    return notes


def failed_lines(rows: Sequence[Row]) -> list[tuple[str, str]]:
    """(path, error on one line) of every failed run, so a row never breaks a table."""
    return [
        (str(run.path), one_line(run.error or "(no error message recorded)"))
        for row in rows
        for run in row.failed
    ]


@dataclass(frozen=True)
class Column:
    """A column any format can lay out: its header, and its cell for a row."""

    header: str
    value: Callable[[Row], str]


def has_baseline(rows: Sequence[Row]) -> bool:
    return any(row.is_baseline for row in rows)


def compared_metrics(rows: Sequence[Row]) -> list[Metric]:
    """The result metrics compared with the baseline, in column order."""
    return [m for m in metrics_of(rows) if is_result(m)]


def comparison_units(rows: Sequence[Row]) -> list[list[Column]]:
    """The comparison's columns, in units a stacked table never splits: ``Δ <metric>`` for
    each compared metric, the first one followed by its effect size and the seeds 80%
    power would need, which is what tells "no effect" from "too few seeds"."""
    units = []
    for i, metric in enumerate(compared_metrics(rows)):
        unit = [_comparison_column(f"Δ {metric.label}", metric, delta_cell)]
        if i == 0:
            unit += [
                _comparison_column("d", metric, lambda c, _: d_cell(c)),
                _comparison_column("n80", metric, lambda c, _: n80_cell(c)),
            ]
        units.append(unit)
    return units


def _comparison_column(
    header: str, metric: Metric, text: Callable[[Comparison | None, Metric], str]
) -> Column:
    return Column(header, lambda row: text(row.comparisons.get(metric.key), metric))


def delta_cell(comparison: Comparison | None, metric: Metric) -> str:
    """ "-0.761 (p=0.003, exact 0.250)": the signed difference in the metric's format, the
    t-test's p ("p n/a" where it is undefined) and the exact permutation test's, when there
    is one; the difference alone when no test could run, a dash when there is none."""
    if comparison is None or comparison.delta is None:
        return "–"
    delta = metric.format_delta(comparison.delta)
    parts = []
    if comparison.p is not None:
        parts.append(p_text(comparison.p))
    elif comparison.undefined is not None:
        parts.append("p n/a")
    if comparison.p_exact is not None:
        parts.append(f"exact {comparison.p_exact:.3f}")
    return f"{delta} ({', '.join(parts)})" if parts else delta


def p_text(p: float) -> str:
    """Three decimals, since seeds are few and p is rough; below 0.001 just says so."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def d_cell(comparison: Comparison | None) -> str:
    if comparison is None or comparison.effect_size is None:
        return "–"
    return f"{comparison.effect_size:+.2f}"


def n80_cell(comparison: Comparison | None) -> str:
    if comparison is None or comparison.n_for_80_power is None:
        return "–"
    return str(comparison.n_for_80_power)


def main_grid(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the files' main table (markdown, latex): every count, full
    labels, whatever their width."""
    metrics = metrics_of(rows)
    header = ["group", "n", "failed", "running", "unfinished", *(m.label for m in metrics)]
    body = [
        [
            row.label,
            str(row.n),
            str(len(row.failed)),
            str(len(row.running)),
            str(len(row.unfinished)),
            *(cell(row.stats[m.key], m) for m in metrics),
        ]
        for row in rows
    ]
    return header, body


def comparison_grid(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the files' comparison table: the rich table's columns, one row
    per group other than the baseline."""
    columns = [column for unit in comparison_units(rows) for column in unit]
    header = ["group", "n", *(c.header for c in columns)]
    body = [
        [row.label, str(row.n), *(c.value(row) for c in columns)]
        for row in rows
        if not row.is_baseline
    ]
    return header, body
