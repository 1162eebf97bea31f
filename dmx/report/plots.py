"""The two pictures a reviewer asks for: validation loss over training, and the final
numbers with their uncertainty.

``val_loss.png``: per group, the mean validation loss over its seeds against the step,
with a band showing their spread. ``final_metrics.png``: per result metric, one
horizontal bar per group (the mean), its 95% confidence interval as a whisker, and each
seed as a dot, so that two seeds that disagree are seen, not averaged away. Bars are
horizontal so that long group labels stay readable with any number of groups.
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

from dmx.errors import UserError
from dmx.report.stats import Metric, is_result, number
from dmx.report.summary import Row
from dmx.runs import ADAPTIVE_FILE, HISTORY_FILE, atomic_write_bytes, read_history

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

VAL_LOSS_FILE = "val_loss.png"
FINAL_METRICS_FILE = "final_metrics.png"
ADAPTIVE_RATES_FILE = "adaptive_rates.png"
PLOT_FILES: tuple[str, ...] = (VAL_LOSS_FILE, FINAL_METRICS_FILE)
MAX_ADAPTIVE_GROUPS = 4  # rows of panels in adaptive_rates.png

# Figure size in inches and resolution: 1320 x 780 pixels, sharp on a slide or a screen,
# small enough for a README.
FIGSIZE: tuple[float, float] = (11.0, 6.5)
DPI = 120
PIXELS: tuple[int, int] = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))

BAND_NOTE = "line: mean over seeds; band: ±1 sample std (n ≥ 3) or min–max (n = 2)"
BAR_NOTE = "bar: mean over seeds; whisker: 95% CI of the mean (Student's t); dots: seeds"
MIN_SLOTS = 3  # bar positions a bar chart has room for, however few groups it shows
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
    from matplotlib.ticker import FuncFormatter

    columns = min(len(metrics), 3)
    figure, axes = _figure(nrows=math.ceil(len(metrics) / columns), ncols=columns)
    colors = _colors(len(rows))
    positions = list(range(len(rows)))
    font = _font_size(len(rows))
    for k, metric in enumerate(metrics):
        ax = axes[k]
        stats = [row.stats[metric.key] for row in rows]
        means = [s.mean if s.mean is not None else 0.0 for s in stats]
        errors = [s.ci95 if s.ci95 is not None else 0.0 for s in stats]
        ax.barh(
            positions,
            means,
            xerr=errors,
            color=[color for color, _ in colors],
            alpha=0.75,
            height=0.6,
            error_kw={"ecolor": "0.15", "capsize": 3, "elinewidth": 1.2},
        )
        for y, row in enumerate(rows):
            values = [v for _, v in row.values(metric.key)]
            offsets = [0.18 * (j / max(len(values) - 1, 1) - 0.5) for j in range(len(values))]
            ax.scatter(values, [y + o for o in offsets], s=10, color="black", zorder=3)
        right = max(
            [m + e for m, e in zip(means, errors, strict=True)]
            + [v for row in rows for _, v in row.values(metric.key)]
            + [0.0]
        )
        for y, (stat, m, e) in enumerate(zip(stats, means, errors, strict=True)):
            if stat.mean is not None:
                ax.text(
                    m + e + right * 0.02,
                    y,
                    metric.format(stat.mean),
                    va="center",
                    fontsize=font - 1,
                )
        ax.set_xlim(0, right * 1.3 or 1)
        ax.set_title(metric.label, fontsize=12)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _, m=metric: _tick(m, x)))
        ax.set_yticks(positions)
        if k % columns == 0:
            ax.set_yticklabels([_wrapped(_label(row)) for row in rows], fontsize=font)
        else:
            ax.set_yticklabels([])
        # Room for at least MIN_SLOTS bars, so that one or two groups get bars, not slabs;
        # reversed, so that the first group is on top, as in the table.
        spare = max(MIN_SLOTS - len(rows), 0) / 2
        ax.set_ylim(len(rows) - 0.5 + spare, -0.5 - spare)
        ax.grid(True, axis="x", alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    figure.suptitle(f"{title}: final metrics", fontsize=14, fontweight="bold")
    figure.supxlabel(BAR_NOTE, fontsize=10, color="0.35")
    return figure


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


def _tick(metric: Metric, value: float) -> str:
    """Axis ticks in the metric's own format, without its decimals for percentages."""
    return f"{value:.0%}" if metric.spec.endswith("%") else f"{value:g}"
