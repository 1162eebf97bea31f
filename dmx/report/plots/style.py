"""What every figure of the report shares, so that they look like one set: their size and
resolution, the spacing, a group's colour and label, the fonts and ticks, and the atomic
write of the PNG. A change of look is made here once, not in each figure."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmx.common.files import atomic_write_bytes
from dmx.report.metrics import Metric
from dmx.report.summary import Row

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Figure size in inches and resolution: 1320 x 780 pixels, sharp on a slide or a screen,
# small enough for a README.
FIGSIZE: tuple[float, float] = (11.0, 6.5)
DPI = 120
PIXELS: tuple[int, int] = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))

MIN_SLOTS = 3  # rows a panel has room for, however few groups it shows
LEGEND_SPACING = 0.8  # between legend entries, in font sizes
LABEL_WIDTH = 34  # characters a legend or axis label wraps at, between its key=value parts


def percent_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:.0%}")


def ticks(ax: Axes, metric: Metric, signed: bool = False) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _, m=metric: _tick(m, x, signed=signed)))


def new_figure(nrows: int = 1, ncols: int = 1) -> tuple[Figure, list[Axes]] | tuple[Figure, Axes]:
    """A figure on the Agg canvas, never pyplot, so that no display and no global state
    is involved and a test or a server can draw in any thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    if nrows == ncols == 1:
        return figure, figure.add_subplot()
    return figure, list(figure.subplots(nrows, ncols, squeeze=False).flat)


def save(figure: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=DPI)
    atomic_write_bytes(path, buf.getvalue())
    return path


def group_colors(n: int) -> list[tuple[Any, str]]:
    """(color, line style) per group: ten distinct colors, then the same ten dashed, dotted
    and dash-dotted, so that no two of up to 40 groups look alike."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    styles = ("-", "--", ":", "-.")
    return [(palette[i % 10], styles[(i // 10) % len(styles)]) for i in range(n)]


def row_label(row: Row) -> str:
    return f"{row.short_label} [baseline]" if row.is_baseline else row.short_label


def wrapped(label: str) -> str:
    """A long label on several lines, broken between its key=value parts when it can be."""
    return "\n".join(textwrap.wrap(label, LABEL_WIDTH, break_on_hyphens=False)) or label


def legend_columns(labels: Sequence[str], font: float) -> int:
    """As many legend columns as it takes to fit the legend into the figure's height: a
    taller one would squash the axes to nothing."""
    lines = sum(label.count("\n") + 1 for label in labels)
    height = (lines * 1.2 + len(labels) * LEGEND_SPACING) * font * DPI / 72
    return max(1, math.ceil(height / (0.8 * PIXELS[1])))


def font_size(n_groups: int) -> float:
    return 10 if n_groups <= 8 else 8 if n_groups <= 16 else 6.5


def _tick(metric: Metric, value: float, signed: bool = False) -> str:
    """Axis ticks in the metric's own kind: percentages as percentages (with a decimal when
    the axis is narrow), others as they are; a difference always signed."""
    sign = "+" if signed else ""
    if metric.spec.endswith("%"):
        return f"{value:{sign}.1%}" if abs(value) < 0.1 and value != 0 else f"{value:{sign}.0%}"
    return f"{value:{sign}.4g}"
