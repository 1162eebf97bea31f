"""final_metrics.png and differences.png: the figures of a result metric's final values,
one panel per metric with the groups down the y axis. Both draw the same kind of dot plot
(a point, its 95% interval, each seed as a dot, an axis fitted to the data), so they share
their panels and axes here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dmx.report.metrics import Metric
from dmx.report.plots.style import (
    MIN_SLOTS,
    font_size,
    group_colors,
    new_figure,
    row_label,
    ticks,
    wrapped,
)
from dmx.report.stats import difference
from dmx.report.summary import Row

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DOT_NOTE = (
    "point: mean over seeds; whisker: 95% CI of the mean (Student's t); small dots: seeds; "
    "axes fitted to the data, not from zero"
)
DIFF_NOTE = (
    "small dots: each seed's paired difference; point and whisker: their mean and its 95% CI "
    "(Welch's when the seeds differ); dashed line: no difference"
)


def final_metrics_figure(rows: Sequence[Row], metrics: Sequence[Metric], title: str) -> Figure:
    """A dot plot per metric: each group's mean as a point, its 95% interval as a whisker,
    each seed as a small dot, on an axis fitted to the data. Bars from zero would hide a
    0.3-nat gap between 5.98 and 6.28, the whole finding of a sweep."""
    figure, axes = _panels(len(metrics))
    colors = group_colors(len(rows))
    font = font_size(len(rows))
    for k, metric in enumerate(metrics):
        ax = axes[k]
        spans: list[float] = []
        for y, row in enumerate(rows):
            stat, color = row.stats[metric.key], colors[y][0]
            seeds = [v for _, v in row.values(metric.key)]
            _seed_dots(ax, seeds, y)
            spans += seeds
            if stat.mean is None:
                continue
            error = stat.ci95 or 0.0
            ax.errorbar(
                stat.mean, y, xerr=error, fmt="o", color=color, markersize=7,
                ecolor=color, elinewidth=2, capsize=4, zorder=2,
            )  # fmt: skip
            spans += [stat.mean - error, stat.mean + error]
            ax.annotate(
                metric.format(stat.mean), (stat.mean + error, y), xytext=(6, 0),
                textcoords="offset points", va="center", fontsize=font - 1,
            )  # fmt: skip
        _fit(ax, spans, percent=metric.spec.endswith("%"), room_right=0.22)
        _group_axis(ax, rows, font, labelled=k % _columns(len(metrics)) == 0)
        ax.set_title(metric.label, fontsize=12)
        ticks(ax, metric)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    figure.suptitle(f"{title}: final metrics", fontsize=14, fontweight="bold")
    figure.supxlabel(DOT_NOTE, fontsize=10, color="0.35")
    return figure


def differences_figure(rows: Sequence[Row], metrics: Sequence[Metric], title: str) -> Figure | None:
    """An estimation plot against the baseline: per group and metric, every seed's paired
    difference from the baseline, their mean and its 95% interval, and zero marked. An
    interval clear of zero is an effect the seeds agree on; one across it is not."""
    baseline = next((row for row in rows if row.is_baseline), None)
    others = [row for row in rows if not row.is_baseline]
    if baseline is None or not others:
        return None
    figure, axes = _panels(len(metrics))
    colors = group_colors(len(rows))  # each group keeps its color from the other plots
    index = {id(row): i for i, row in enumerate(rows)}
    font = font_size(len(others))
    for k, metric in enumerate(metrics):
        ax = axes[k]
        spans = [0.0]
        for y, row in enumerate(others):
            diff = difference(row.values(metric.key), baseline.values(metric.key))
            if diff is None:
                continue
            color = colors[index[id(row)]][0]
            _seed_dots(ax, list(diff.per_seed), y)
            error = diff.ci95 or 0.0
            ax.errorbar(
                diff.mean, y, xerr=error, fmt="D", color=color, markersize=6,
                ecolor=color, elinewidth=2, capsize=4, zorder=2,
            )  # fmt: skip
            spans += [*diff.per_seed, diff.mean - error, diff.mean + error]
            ax.annotate(
                metric.format_delta(diff.mean), (diff.mean + error, y), xytext=(6, 0),
                textcoords="offset points", va="center", fontsize=font - 1,
            )  # fmt: skip
        ax.axvline(0.0, color="0.25", linewidth=1.2, linestyle="--", zorder=1)
        _fit(ax, spans, percent=False, room_right=0.22)
        _group_axis(ax, others, font, labelled=k % _columns(len(metrics)) == 0)
        ax.set_title(f"{metric.label} − baseline", fontsize=12)
        ticks(ax, metric, signed=True)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    figure.suptitle(
        f"{title}: difference from {wrapped(baseline.short_label)}", fontsize=14, fontweight="bold"
    )
    figure.supxlabel(DIFF_NOTE, fontsize=10, color="0.35")
    return figure


def _columns(n_metrics: int) -> int:
    return min(n_metrics, 3)


def _panels(n_metrics: int) -> tuple[Figure, list[Axes]]:
    columns = _columns(n_metrics)
    figure, axes = new_figure(nrows=math.ceil(n_metrics / columns), ncols=columns)
    return figure, axes if isinstance(axes, list) else [axes]


def _seed_dots(ax: Axes, values: Sequence[float], y: int) -> None:
    """Each seed as a small dot, spread a little in y so that equal values stay visible."""
    offsets = [0.22 * (j / max(len(values) - 1, 1) - 0.5) for j in range(len(values))]
    ax.scatter(values, [y + o for o in offsets], s=14, color="0.2", alpha=0.7, zorder=3)


def _fit(ax: Axes, values: Sequence[float], percent: bool, room_right: float) -> None:
    """The x axis fitted to what is drawn, with a margin and room for the value labels on
    the right; a percentage never runs past 0% or 100% for lack of data there."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return
    low, high = min(finite), max(finite)
    span = high - low or max(abs(high) * 0.02, 1e-3)
    left, right = low - 0.08 * span, high + (0.08 + room_right) * span
    if percent:
        left, right = max(left, min(low, 0.0)), min(right, max(high, 1.0) + 0.05 * span)
    ax.set_xlim(left, right)


def _group_axis(ax: Axes, rows: Sequence[Row], font: float, labelled: bool) -> None:
    positions = list(range(len(rows)))
    ax.set_yticks(positions)
    ax.set_yticklabels([wrapped(row_label(row)) for row in rows] if labelled else [], fontsize=font)
    # Room for at least MIN_SLOTS rows, so that one or two groups are not spread over the
    # whole height; reversed, so that the first group is on top, as in the table.
    spare = max(MIN_SLOTS - len(rows), 0) / 2
    ax.set_ylim(len(rows) - 0.5 + spare, -0.5 - spare)
    ax.grid(True, axis="x", alpha=0.3)
