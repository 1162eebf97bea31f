"""val_loss.png: each group's validation loss over training, read from its runs'
history.csv; and, for runs scored zero-shot during pretraining (eval.epochs), the same for
their minimal-pair accuracy (pairs_acc.png, blimp_acc.png). The figures drawn from a run's
history rather than its final metrics.json, so the reading of history.csv and the averaging
of curves over seeds live with them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dmx.common.run_folder import HISTORY_FILE, read_history
from dmx.report.plots.style import (
    LEGEND_SPACING,
    font_size,
    group_colors,
    legend_columns,
    new_figure,
    percent_formatter,
    row_label,
    wrapped,
)
from dmx.report.summary import Row, number

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

BAND_NOTE = "line: mean over seeds; band: ±1 sample std (n ≥ 3) or min–max (n = 2)"


@dataclass(frozen=True)
class Curve:
    """A group's validation loss over steps: mean, and the band around it."""

    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: int  # runs with a history


def curve(row: Row, key: str = "val_loss") -> Curve | None:
    """The row's ``key`` (validation loss by default) over steps, from each done run's
    history.csv.

    Runs of one config validate at the same steps, so the curve uses the steps all of
    them share, with no value made up; where their schedules differ (a changed
    validation interval) they are interpolated onto the union of their steps, within the
    range every run covers. None when no done run has a history.
    """
    import numpy as np

    histories = [h for h in (_history(run.path / HISTORY_FILE, key) for run in row.done) if h]
    if not histories:
        return None
    shared = sorted(set.intersection(*(set(h) for h in histories)))
    if len(shared) >= 2 or len(histories[0]) < 2:
        steps = np.array(shared, dtype=float)
        values = np.array([[h[s] for s in shared] for h in histories], dtype=float)
    else:
        start = max(min(h) for h in histories)
        stop = min(max(h) for h in histories)
        steps = np.array(
            sorted({s for h in histories for s in h if start <= s <= stop}), dtype=float
        )
        values = np.array(
            [np.interp(steps, sorted(h), [h[s] for s in sorted(h)]) for h in histories]
        )
    if steps.size == 0:
        return None
    mean = values.mean(axis=0)
    if len(histories) >= 3:
        std = values.std(axis=0, ddof=1)
        low, high = mean - std, mean + std
    else:  # with one or two seeds a std says little: show where they are
        low, high = values.min(axis=0), values.max(axis=0)
    return Curve(steps=steps, mean=mean, low=low, high=high, n=len(histories))


def _history(path: Path, key: str) -> dict[float, float]:
    """step -> ``key`` of one run, at the rows that have it; empty when there are none."""
    try:
        records = read_history(path)
    except (OSError, ValueError):
        return {}
    points = {}
    for record in records:
        step, loss = number(record.get("step")), number(record.get(key))
        if step is not None and loss is not None and math.isfinite(loss):
            points[step] = loss
    return points


def val_loss_figure(rows: Sequence[Row], curves: Sequence[Curve | None], title: str) -> Figure:
    return curves_figure(rows, curves, title, "validation loss")


def curves_figure(
    rows: Sequence[Row],
    curves: Sequence[Curve | None],
    title: str,
    what: str,
    percent: bool = False,
) -> Figure:
    """Each group's curve of ``what`` over steps, mean and band, legend beside the axes."""
    figure, ax = new_figure()
    colors = group_colors(len(rows))
    for i, (row, c) in enumerate(zip(rows, curves, strict=True)):
        if c is None:
            continue
        color, style = colors[i]
        label = wrapped(f"{row_label(row)} (n={c.n})") if len(rows) > 1 else f"n={c.n}"
        ax.plot(c.steps, c.mean, color=color, linestyle=style, linewidth=2, label=label)
        if c.n > 1:
            ax.fill_between(c.steps, c.low, c.high, color=color, alpha=0.18, linewidth=0)
    ax.set_xlabel("step")
    ax.set_ylabel(what)
    if percent:
        ax.yaxis.set_major_formatter(percent_formatter())
    ax.grid(True, alpha=0.3)
    ax.set_title(BAND_NOTE, fontsize=10, color="0.35")
    figure.suptitle(f"{title}: {what}", fontsize=14, fontweight="bold")
    missing = [row.short_label for row, c in zip(rows, curves, strict=True) if c is None]
    if missing:
        ax.annotate(
            f"no history.csv: {', '.join(missing)}",
            xy=(0, -0.12),
            xycoords="axes fraction",
            fontsize=8,
            color="0.4",
        )
    # Beside the axes, level with their top: inside, it would hide curves; at the figure's
    # corner, it would run into the title.
    labels = ax.get_legend_handles_labels()[1]
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize=font_size(len(rows)),
        frameon=False,
        labelspacing=LEGEND_SPACING,
        ncols=legend_columns(labels, font_size(len(rows))),
    )
    return figure
