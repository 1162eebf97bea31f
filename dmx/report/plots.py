"""The pictures a reviewer asks for: validation loss over training, the final numbers with
their uncertainty, and the effect against a baseline.

``val_loss.png``: per group, the mean validation loss over its seeds against the step,
with a band showing their spread. ``final_metrics.png``: per result metric, a dot plot: one
point per group (the mean), its 95% confidence interval as a whisker, and each seed as a
small dot, so that two seeds that disagree are seen, not averaged away; the axis is fitted
to the data, because the differences that matter are small against the values.
``differences.png`` (with ``--baseline``): an estimation plot, per group every seed's paired
difference from the baseline, their mean and its 95% interval, and zero marked. Groups run
down the y axis so that long labels stay readable with any number of groups.
``adaptive_rates.png``, when some run used adaptive masking: how its per-id rates moved
over training (their spread over the training tokens, and the mean rate of frequent and
rare ids), from each run's adaptive_rates.json, averaged over seeds.

Both are drawn on matplotlib's Agg canvas (no display, no pyplot state) at a fixed pixel
size, and written atomically: a report run while a sweep writes never leaves half a PNG.
"""

from __future__ import annotations

import io
import math
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmx.common.errors import UserError
from dmx.common.files import atomic_write_bytes
from dmx.common.run_folder import ADAPTIVE_FILE, HISTORY_FILE, read_history
from dmx.report.stats import Metric, difference, is_result, number
from dmx.report.summary import Row

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

VAL_LOSS_FILE = "val_loss.png"
FINAL_METRICS_FILE = "final_metrics.png"
DIFFERENCES_FILE = "differences.png"
ADAPTIVE_RATES_FILE = "adaptive_rates.png"
PLOT_FILES: tuple[str, ...] = (VAL_LOSS_FILE, FINAL_METRICS_FILE)
MAX_ADAPTIVE_GROUPS = 4  # rows of panels in adaptive_rates.png

# Figure size in inches and resolution: 1320 x 780 pixels, sharp on a slide or a screen,
# small enough for a README.
FIGSIZE: tuple[float, float] = (11.0, 6.5)
DPI = 120
PIXELS: tuple[int, int] = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))

BAND_NOTE = "line: mean over seeds; band: ±1 sample std (n ≥ 3) or min–max (n = 2)"
DOT_NOTE = (
    "point: mean over seeds; whisker: 95% CI of the mean (Student's t); small dots: seeds; "
    "axes fitted to the data, not from zero"
)
DIFF_NOTE = (
    "small dots: each seed's paired difference; point and whisker: their mean and its 95% CI "
    "(Welch's when the seeds differ); dashed line: no difference"
)
MIN_SLOTS = 3  # rows a panel has room for, however few groups it shows
LEGEND_SPACING = 0.8  # between legend entries, in font sizes
LABEL_WIDTH = 34  # characters a legend or axis label wraps at, between its key=value parts


class PlotWarning(UserWarning):
    """A plot, or a group in it, was left out: nothing to draw it from."""


@dataclass(frozen=True)
class Curve:
    """A group's validation loss over steps: mean, and the band around it."""

    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: int  # runs with a history


def check_plot_dir(path: Path) -> Path:
    """Fail before reading any run when the plots could not be written there."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"--plot wants a folder to write PNGs into; {path} is a file")
    return path


def write_plots(rows: Sequence[Row], out_dir: Path, title: str) -> list[Path]:
    """Write val_loss.png and final_metrics.png into out_dir (made if missing); returns
    the paths written. A plot with nothing to draw is skipped with a PlotWarning."""
    out_dir = check_plot_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    curves = [curve(row) for row in rows]
    if any(c is not None for c in curves):
        written.append(_save(val_loss_figure(rows, curves, title), out_dir / VAL_LOSS_FILE))
    else:
        warnings.warn(
            f"no done run has a readable {HISTORY_FILE}: {VAL_LOSS_FILE} not written",
            PlotWarning,
            stacklevel=2,
        )
    metrics = [
        m
        for m in _metrics(rows)
        if is_result(m) and any(row.stats[m.key].mean is not None for row in rows)
    ]
    if metrics:
        figure = final_metrics_figure(rows, metrics, title)
        written.append(_save(figure, out_dir / FINAL_METRICS_FILE))
        differences = differences_figure(rows, metrics, title)  # with --baseline only
        if differences is not None:
            written.append(_save(differences, out_dir / DIFFERENCES_FILE))
    else:
        warnings.warn(
            f"no done run recorded a result metric: {FINAL_METRICS_FILE} not written",
            PlotWarning,
            stacklevel=2,
        )
    adaptive = [(row, t) for row in rows if (t := adaptive_trace(row)) is not None]
    if adaptive:
        path = out_dir / ADAPTIVE_RATES_FILE
        written.append(_save(adaptive_figure(adaptive[:MAX_ADAPTIVE_GROUPS], title), path))
    return written


@dataclass(frozen=True)
class AdaptiveTrace:
    """A group's adaptive rate table over training, averaged over its seeds."""

    steps: np.ndarray
    quantiles: dict[str, np.ndarray]  # "p05" ... "p95" -> rate at each step
    bands: np.ndarray  # (steps, bands): mean rate of each frequency band
    band_shares: list[float]  # the share of the training tokens each band holds
    prob: float
    n: int


def adaptive_trace(row: Row) -> AdaptiveTrace | None:
    """The row's adaptive_rates.json files, averaged over its done runs at the steps they
    share; None when no done run has one (not adaptive, or older)."""
    import json

    import numpy as np

    records = []
    for run in row.done:
        try:
            records.append(json.loads((run.path / ADAPTIVE_FILE).read_text()))
        except (OSError, ValueError):
            continue
    records = [r for r in records if isinstance(r, dict) and r.get("history")]
    if not records:
        return None
    per_run = [{h["step"]: h for h in r["history"]} for r in records]
    steps = sorted(set.intersection(*(set(h) for h in per_run)))
    if not steps:
        return None
    names = [k for k in per_run[0][steps[0]] if k.startswith("adaptive_rate_p")]
    quantiles = {
        k.removeprefix("adaptive_rate_"): np.mean([[h[s][k] for s in steps] for h in per_run], 0)
        for k in names
    }
    bands = np.mean([[h[s]["bands"] for s in steps] for h in per_run], axis=0)
    return AdaptiveTrace(
        steps=np.asarray(steps, dtype=float),
        quantiles=quantiles,
        bands=bands,
        band_shares=[b["token_share"] for b in records[0]["bands"]],
        prob=float(records[0]["prob"]),
        n=len(records),
    )


def adaptive_figure(traces: Sequence[tuple[Row, AdaptiveTrace]], title: str) -> Figure:
    """Per adaptive group, two panels: the spread of the per-id rates over the training
    tokens (5-95% and 25-75% bands, the median), and each frequency band's mean rate."""
    figure, axes = _figure(len(traces), 2)
    assert isinstance(axes, list)
    for i, (row, trace) in enumerate(traces):
        spread, bands = axes[2 * i], axes[2 * i + 1]
        q = trace.quantiles
        spread.fill_between(trace.steps, q["p05"], q["p95"], alpha=0.2, color="C0", lw=0)
        spread.fill_between(trace.steps, q["p25"], q["p75"], alpha=0.35, color="C0", lw=0)
        spread.plot(trace.steps, q["p50"], color="C0", lw=2, label="median")
        spread.axhline(trace.prob, color="0.3", ls="--", lw=1, label=f"mask.prob {trace.prob:g}")
        spread.set_ylabel("per-id mask rate")
        spread.set_title(
            f"{_label(row)} (n={trace.n}): spread over the training tokens",
            fontsize=10,
        )
        names = ["most frequent", "frequent", "rarer", "rarest"]
        for b in range(trace.bands.shape[1]):
            name = names[b] if trace.bands.shape[1] == len(names) else f"band {b + 1}"
            share = trace.band_shares[b] if b < len(trace.band_shares) else float("nan")
            bands.plot(trace.steps, trace.bands[:, b], lw=2, label=f"{name} ids ({share:.0%})")
        bands.axhline(trace.prob, color="0.3", ls="--", lw=1)
        bands.set_title("mean rate by frequency band (share of tokens)", fontsize=10)
        for ax in (spread, bands):
            ax.grid(True, alpha=0.3)
            ax.yaxis.set_major_formatter(_percent_formatter())
            ax.legend(fontsize=8, frameon=False)
        if i == len(traces) - 1:
            spread.set_xlabel("step")
            bands.set_xlabel("step")
    note = "bands: 5-95% and 25-75% of the training tokens' rates; mean over seeds"
    figure.suptitle(f"{title}: adaptive mask rates\n{note}", fontsize=12, fontweight="bold")
    return figure


def _percent_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:.0%}")


def curve(row: Row) -> Curve | None:
    """The row's validation loss over steps, from each done run's history.csv.

    Runs of one config validate at the same steps, so the curve uses the steps all of
    them share, with no value made up; where their schedules differ (a changed
    validation interval) they are interpolated onto the union of their steps, within the
    range every run covers. None when no done run has a history.
    """
    import numpy as np

    histories = [h for h in (_history(run.path / HISTORY_FILE) for run in row.done) if h]
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


def _history(path: Path) -> dict[float, float]:
    """step -> val_loss of one run; empty when it has no readable history."""
    try:
        records = read_history(path)
    except (OSError, ValueError):
        return {}
    points = {}
    for record in records:
        step, loss = number(record.get("step")), number(record.get("val_loss"))
        if step is not None and loss is not None and math.isfinite(loss):
            points[step] = loss
    return points


def val_loss_figure(rows: Sequence[Row], curves: Sequence[Curve | None], title: str) -> Figure:
    figure, ax = _figure()
    colors = _colors(len(rows))
    for i, (row, c) in enumerate(zip(rows, curves, strict=True)):
        if c is None:
            continue
        color, style = colors[i]
        label = _wrapped(f"{_label(row)} (n={c.n})") if len(rows) > 1 else f"n={c.n}"
        ax.plot(c.steps, c.mean, color=color, linestyle=style, linewidth=2, label=label)
        if c.n > 1:
            ax.fill_between(c.steps, c.low, c.high, color=color, alpha=0.18, linewidth=0)
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss")
    ax.grid(True, alpha=0.3)
    ax.set_title(BAND_NOTE, fontsize=10, color="0.35")
    figure.suptitle(f"{title}: validation loss", fontsize=14, fontweight="bold")
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
        fontsize=_font_size(len(rows)),
        frameon=False,
        labelspacing=LEGEND_SPACING,
        ncols=_legend_columns(labels, _font_size(len(rows))),
    )
    return figure


def final_metrics_figure(rows: Sequence[Row], metrics: Sequence[Metric], title: str) -> Figure:
    """A dot plot per metric: each group's mean as a point, its 95% interval as a whisker,
    each seed as a small dot, on an axis fitted to the data. Bars from zero would hide a
    0.3-nat gap between 5.98 and 6.28, the whole finding of a sweep."""
    figure, axes = _panels(len(metrics))
    colors = _colors(len(rows))
    font = _font_size(len(rows))
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
        _ticks(ax, metric)
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
    colors = _colors(len(rows))  # each group keeps its color from the other plots
    index = {id(row): i for i, row in enumerate(rows)}
    font = _font_size(len(others))
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
        _ticks(ax, metric, signed=True)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    figure.suptitle(
        f"{title}: difference from {_wrapped(baseline.short_label)}", fontsize=14, fontweight="bold"
    )
    figure.supxlabel(DIFF_NOTE, fontsize=10, color="0.35")
    return figure


def _columns(n_metrics: int) -> int:
    return min(n_metrics, 3)


def _panels(n_metrics: int) -> tuple[Figure, list[Axes]]:
    columns = _columns(n_metrics)
    figure, axes = _figure(nrows=math.ceil(n_metrics / columns), ncols=columns)
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
    ax.set_yticklabels([_wrapped(_label(row)) for row in rows] if labelled else [], fontsize=font)
    # Room for at least MIN_SLOTS rows, so that one or two groups are not spread over the
    # whole height; reversed, so that the first group is on top, as in the table.
    spare = max(MIN_SLOTS - len(rows), 0) / 2
    ax.set_ylim(len(rows) - 0.5 + spare, -0.5 - spare)
    ax.grid(True, axis="x", alpha=0.3)


def _ticks(ax: Axes, metric: Metric, signed: bool = False) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _, m=metric: _tick(m, x, signed=signed)))


def _metrics(rows: Sequence[Row]) -> list[Metric]:
    return list({m.key: m for row in rows for m in row.metrics}.values())


def _figure(nrows: int = 1, ncols: int = 1) -> tuple[Figure, list[Axes]] | tuple[Figure, Axes]:
    """A figure on the Agg canvas, never pyplot, so that no display and no global state
    is involved and a test or a server can draw in any thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    if nrows == ncols == 1:
        return figure, figure.add_subplot()
    return figure, list(figure.subplots(nrows, ncols, squeeze=False).flat)


def _save(figure: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=DPI)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _colors(n: int) -> list[tuple[Any, str]]:
    """(color, line style) per group: ten distinct colors, then the same ten dashed, dotted
    and dash-dotted, so that no two of up to 40 groups look alike."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    styles = ("-", "--", ":", "-.")
    return [(palette[i % 10], styles[(i // 10) % len(styles)]) for i in range(n)]


def _label(row: Row) -> str:
    return f"{row.short_label} [baseline]" if row.is_baseline else row.short_label


def _wrapped(label: str) -> str:
    """A long label on several lines, broken between its key=value parts when it can be."""
    return "\n".join(textwrap.wrap(label, LABEL_WIDTH, break_on_hyphens=False)) or label


def _legend_columns(labels: Sequence[str], font: float) -> int:
    """As many legend columns as it takes to fit the legend into the figure's height: a
    taller one would squash the axes to nothing."""
    lines = sum(label.count("\n") + 1 for label in labels)
    height = (lines * 1.2 + len(labels) * LEGEND_SPACING) * font * DPI / 72
    return max(1, math.ceil(height / (0.8 * PIXELS[1])))


def _font_size(n_groups: int) -> float:
    return 10 if n_groups <= 8 else 8 if n_groups <= 16 else 6.5


def _tick(metric: Metric, value: float, signed: bool = False) -> str:
    """Axis ticks in the metric's own kind: percentages as percentages (with a decimal when
    the axis is narrow), others as they are; a difference always signed."""
    sign = "+" if signed else ""
    if metric.spec.endswith("%"):
        return f"{value:{sign}.1%}" if abs(value) < 0.1 and value != 0 else f"{value:{sign}.0%}"
    return f"{value:{sign}.4g}"
