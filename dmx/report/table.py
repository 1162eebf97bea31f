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

from dmx.report.cells import CAPTION, cell, failed_lines, impl_note, metrics_of
from dmx.report.stats import Metric
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
class _Layout:
    numbered: bool  # groups named G1, G2, ... in the tables, with a legend below
    chunks: list[list[Metric]]  # the metric columns of each stacked table


def default_console() -> Console:
    """A console on stdout: the terminal's width, COLUMNS when set, else a wide one."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(width=PIPE_WIDTH)
    return console


def print_table(rows: Sequence[Row], console: Console | None = None) -> None:
    """The table(s), a legend when groups are numbered, notes on mixed implementation
    settings, then one line per failed run with its error."""
    from rich.text import Text

    if console is None:
        console = default_console()
    metrics = metrics_of(rows)
    counts = [(name, count) for name, count in _COUNTS if any(count(row) for row in rows)]
    layout = _fit(rows, metrics, counts, console)
    tables = [
        _table(rows, chunk, counts if i == 0 else [], layout.numbered)
        for i, chunk in enumerate(layout.chunks)
    ]
    for i, table in enumerate(tables):
        if i:
            console.print()
        console.print(table)
    console.print(Text(CAPTION, style="dim"))
    if layout.numbered:
        console.print()
        console.print(_legend(rows))
    notes = [
        impl_note(row, f"G{i + 1} ({row.short_label})" if layout.numbered else row.short_label)
        for i, row in enumerate(rows)
    ]
    failed = [f"{path}: {error}" for path, error in failed_lines(rows)]
    if any(notes) or failed:
        console.print()
    console.print(_messages("note", "yellow", [n for n in notes if n]))
    console.print(_messages("failed", "bold red", failed))


def _fit(
    rows: Sequence[Row],
    metrics: Sequence[Metric],
    counts: Sequence[tuple[str, Callable[[Row], int]]],
    console: Console,
) -> _Layout:
    """Labels in the table unless they cost an extra stacked table (or do not fit at all);
    then the fewest stacked tables whose every line fits the console."""

    def pack(numbered: bool) -> list[list[Metric]] | None:
        """Metrics greedily into tables in column order; None if one does not fit alone."""
        chunks: list[list[Metric]] = [[]]
        for metric in metrics:
            first = len(chunks) == 1
            if _fits(
                console, _table(rows, [*chunks[-1], metric], counts if first else [], numbered)
            ):
                chunks[-1].append(metric)
            elif chunks[-1] and _fits(console, _table(rows, [metric], [], numbered)):
                chunks.append([metric])
            else:
                return None
        if not metrics and not _fits(console, _table(rows, [], counts, numbered)):
            return None
        return chunks

    labelled = pack(numbered=False)
    numbered = pack(numbered=True)
    if labelled is not None and (numbered is None or len(labelled) <= len(numbered)):
        return _Layout(numbered=False, chunks=labelled)
    if numbered is not None:
        return _Layout(numbered=True, chunks=numbered)
    # Too narrow even for numbers: one metric per table, and rich squeezes what remains.
    return _Layout(numbered=True, chunks=[[m] for m in metrics] or [[]])


def _fits(console: Console, table: Table) -> bool:
    natural = console.measure(table, options=console.options.update(max_width=_UNBOUNDED))
    return natural.maximum <= console.width


def _table(
    rows: Sequence[Row],
    metrics: Sequence[Metric],
    counts: Sequence[tuple[str, Callable[[Row], int]]],
    numbered: bool,
) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0, 0, 1), pad_edge=False)
    table.add_column("group", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for name, _ in counts:
        table.add_column(name, justify="right", no_wrap=True)
    for metric in metrics:
        table.add_column(metric.label, justify="right", no_wrap=True)
    for i, row in enumerate(rows):
        table.add_row(
            # Text, not markup: a config value like "[1, 2]" must not read as a style.
            Text(_name(i, row, numbered)),
            str(row.n),
            *(str(count(row)) for _, count in counts),
            *(cell(row.stats[m.key], m) for m in metrics),
        )
    return table


def _name(index: int, row: Row, numbered: bool) -> str:
    return f"G{index + 1}" if numbered else row.short_label


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
