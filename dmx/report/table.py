"""The rich table, fitted to the console so that every number stays readable.

A sweep whose runs differ in many keys has long group labels, and rich's answer to a
table wider than the console is to squeeze every column, down to nothing. Instead:
labels are short (``n_layers=4``, not ``model.n_layers=4``); groups are numbered, with a
legend below, when their labels would cost the metrics room; and metrics that do not
fit side by side go into several stacked tables, each repeating the group and ``n``.
Widths are measured with rich, never guessed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dmx.report.baseline import method_note
from dmx.report.cells import (
    CAPTION,
    Column,
    cell,
    comparison_units,
    failed_lines,
    has_baseline,
    metrics_of,
    row_notes,
)
from dmx.report.metrics import Metric
from dmx.report.summary import Row

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# Width when stdout is a pipe or a file and COLUMNS does not say: wide enough that labels
# stay in the table, for a log or a grep, rather than the terminal's 80 columns.
PIPE_WIDTH = 240

# Width to measure a table's natural size at, wider than any table we would print.
_UNBOUNDED = 100_000

# Counts beyond n, shown only when some row has one: usually all zero, they would take
# room from the metrics.
_COUNTS: tuple[tuple[str, Callable[[Row], int]], ...] = (
    ("failed", lambda row: len(row.failed)),
    ("running", lambda row: len(row.running)),
    ("unfinished", lambda row: len(row.unfinished)),
)


@dataclass(frozen=True)
class _Part:
    """One table to print, maybe stacked: its rows, the columns only its first stacked
    table shows, and its other columns in units that stay together."""

    entries: list[tuple[int, Row]]  # (index among all rows, row): names stay G<index + 1>
    lead: list[Column]
    units: list[list[Column]]


@dataclass(frozen=True)
class _Layout:
    numbered: bool  # groups named G1, G2, ... in the tables, with a legend below
    chunks: list[list[list[Column]]]  # per part, the columns of each stacked table


def default_console() -> Console:
    """A console on stdout: the terminal's width, COLUMNS when set, else a wide one."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(width=PIPE_WIDTH)
    return console


def print_table(rows: Sequence[Row], console: Console | None = None) -> None:
    """The table(s); with a baseline, the comparison table(s) and how they were tested;
    a legend when groups are numbered, notes on mixed implementation settings, then one
    line per failed run with its error."""
    from rich.text import Text

    if console is None:
        console = default_console()
    counts = [_count_column(name, count) for name, count in _COUNTS if any(map(count, rows))]
    indexed = list(enumerate(rows))
    parts = [_Part(indexed, counts, [[_metric_column(m)] for m in metrics_of(rows)])]
    if has_baseline(rows):
        others = [(i, row) for i, row in indexed if not row.is_baseline]
        parts.append(_Part(others, [], comparison_units(rows)))
    layout = _fit(parts, console)
    name = _namer(layout.numbered)
    long_name = _namer(layout.numbered, labelled=True)
    for p, (part, chunks) in enumerate(zip(parts, layout.chunks, strict=True)):
        if p:
            console.print()
        for i, chunk in enumerate(chunks):
            if i:
                console.print()
            console.print(_table(part.entries, chunk, part.lead if i == 0 else [], name))
        caption = CAPTION if p == 0 else method_note(rows, name, long_name)
        console.print(Text(caption or "", style="dim"))
    if layout.numbered:
        console.print()
        console.print(_legend(rows))
    notes = row_notes(rows, long_name)
    failed = [f"{path}: {error}" for path, error in failed_lines(rows)]
    if notes or failed:
        console.print()
    console.print(_messages("note", "yellow", notes))
    console.print(_messages("failed", "bold red", failed))


def _count_column(name: str, count: Callable[[Row], int]) -> Column:
    return Column(name, lambda row: str(count(row)))


def _metric_column(metric: Metric) -> Column:
    return Column(metric.label, lambda row: cell(row.stats[metric.key], metric))


def _fit(parts: Sequence[_Part], console: Console) -> _Layout:
    """Labels in the tables unless they cost an extra stacked table (or do not fit at
    all) in any part; then the fewest stacked tables whose every line fits the console.
    One choice for all parts, so that a group has one name throughout."""

    def pack(part: _Part, numbered: bool) -> list[list[Column]] | None:
        """Units greedily into tables in column order; None if one does not fit alone."""
        name = _namer(numbered)
        chunks: list[list[Column]] = [[]]
        for unit in part.units:
            lead = part.lead if len(chunks) == 1 else []
            if _fits(console, _table(part.entries, [*chunks[-1], *unit], lead, name)):
                chunks[-1].extend(unit)
            elif chunks[-1] and _fits(console, _table(part.entries, unit, [], name)):
                chunks.append(list(unit))
            else:
                return None
        if not part.units and not _fits(console, _table(part.entries, [], part.lead, name)):
            return None
        return chunks

    labelled = [pack(part, numbered=False) for part in parts]
    numbered = [pack(part, numbered=True) for part in parts]
    if all(
        lab is not None and (num is None or len(lab) <= len(num))
        for lab, num in zip(labelled, numbered, strict=True)
    ):
        return _Layout(numbered=False, chunks=[lab for lab in labelled if lab is not None])
    # Too narrow even for numbers: one unit per table, and rich squeezes what remains.
    return _Layout(
        numbered=True,
        chunks=[
            num if num is not None else [list(unit) for unit in part.units] or [[]]
            for part, num in zip(parts, numbered, strict=True)
        ],
    )


def _fits(console: Console, table: Table) -> bool:
    natural = console.measure(table, options=console.options.update(max_width=_UNBOUNDED))
    return natural.maximum <= console.width


def _table(
    entries: Sequence[tuple[int, Row]],
    columns: Sequence[Column],
    lead: Sequence[Column],
    name: Callable[[int, Row], str],
) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0, 0, 1), pad_edge=False)
    table.add_column("group", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for column in [*lead, *columns]:
        table.add_column(column.header, justify="right", no_wrap=True)
    for i, row in entries:
        table.add_row(
            # Text, not markup: a config value like "[1, 2]" must not read as a style.
            Text(name(i, row)),
            str(row.n),
            *(column.value(row) for column in [*lead, *columns]),
        )
    return table


def _namer(numbered: bool, labelled: bool = False) -> Callable[[int, Row], str]:
    """How row i is called: its short label, or G<i + 1>, with its label where a sentence
    names it (a note, the baseline), so that nobody has to look it up in the legend."""

    def name(index: int, row: Row) -> str:
        if not numbered:
            return row.short_label
        return f"G{index + 1} ({row.short_label})" if labelled else f"G{index + 1}"

    return name


def _legend(rows: Sequence[Row]) -> Table:
    """G1  <short label>, one group a line; a long label wraps between its keys, indented
    under itself so the numbers stay a clean column."""
    from rich.table import Table
    from rich.text import Text

    legend = Table.grid(padding=(0, 2))
    legend.add_column(no_wrap=True, style="bold")
    legend.add_column(overflow="fold")
    for i, row in enumerate(rows):
        legend.add_row(f"G{i + 1}", Text(row.short_label))
    return legend


def _messages(kind: str, style: str, messages: Sequence[str]) -> Table:
    """``kind: message`` lines, a long message wrapping under itself rather than under
    its kind, so each one still reads as one item."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True, style=style)
    grid.add_column(overflow="fold")
    for message in messages:
        grid.add_row(f"{kind}:", Text(message))
    return grid
