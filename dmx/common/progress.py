"""Progress lines for the long preparations before a run trains (tokenizing a corpus,
building PMI units, computing corpus statistics), each against a total so a user sees how
far along it is and the time left.

They draw on stderr only when it is a terminal and vanish when done: a log file gets the
preparation's closing log line instead, never a stream of redraws.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


def compact(n: float) -> str:
    """1234567 as 1.2M: a progress line has to fit 80 columns."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}{suffix}"
    return f"{n:.0f}"


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def on_terminal() -> bool:
    """Whether stderr is a terminal: progress is drawn there only, and a log file or a pipe
    gets the closing log line instead (the training loop's bar follows the same rule)."""
    return sys.stderr.isatty()


def no_steps(name: str, total: int | None = None) -> None:
    """The ``step`` callback of a computation run without a display (see :class:`Stages`)."""


def bar(description: str, unit: str) -> Any:
    """A rich progress bar counting ``unit`` (documents, bytes, steps) against a task's
    total (``?`` while unknown), with the tokens made so far when the task has a
    ``tokens`` field, the rate per second and the time left."""
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Done(ProgressColumn):
        def render(self, task: Any) -> Text:
            total = compact(task.total) if task.total is not None else "?"
            return Text(f"{compact(task.completed)}/{total} {unit}")

    class Tokens(ProgressColumn):
        def render(self, task: Any) -> Text:
            made = task.fields.get("tokens")
            return Text(f"{compact(made)} tokens" if made is not None else "")

    class Rate(ProgressColumn):
        def render(self, task: Any) -> Text:
            elapsed = task.elapsed or 0.0
            rate = task.completed / elapsed if elapsed > 0 else 0.0
            return Text(f"{compact(rate)} {unit}/s")

    return Progress(
        TextColumn(description),
        BarColumn(bar_width=16),
        Done(),
        Tokens(),
        Rate(),
        TimeRemainingColumn(),
        console=_console(),
        transient=True,
        disable=not on_terminal(),
    )


class Stages:
    """A computation made of a known number of steps (PMI units: counting n-grams, scoring
    each length, segmenting), shown as ``description ━━━ 3/7 what now 0:00:02``.

    ``step(name)`` marks the previous step done and names the next (``total=`` sets the
    number of steps when the computation learns it late); leaving the ``with`` block
    completes the bar.
    """

    def __init__(self, description: str, total: int | None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn(description),
            BarColumn(bar_width=16),
            TextColumn("{task.completed}/{task.total}"),  # "None" never shows: step() sets it
            TextColumn("{task.fields[now]}"),
            TimeRemainingColumn(),
            console=_console(),
            transient=True,
            disable=not on_terminal(),
        )
        self._task = self._progress.add_task(description, total=total, now="")
        self._started = False
        self.names: list[str] = []  # every step named so far, in order (for the tests)

    def __enter__(self) -> Stages:
        self._progress.__enter__()
        return self

    def step(self, name: str, total: int | None = None) -> None:
        if total is not None:
            self._progress.update(self._task, total=total)
        if self._started:
            self._progress.advance(self._task)
        self._started = True
        self.names.append(name)
        self._progress.update(self._task, now=name)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None and self._started:
            self._progress.advance(self._task)
        self._progress.__exit__(kind, error, trace)


__all__ = ["Stages", "bar", "compact", "no_steps", "on_terminal"]
