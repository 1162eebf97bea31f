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

All are drawn on matplotlib's Agg canvas (no display, no pyplot state) at a fixed pixel
size, and written atomically: a report run while a sweep writes never leaves half a PNG.

Each figure has its module (:mod:`.curves`, :mod:`.metrics`, :mod:`.adaptive`), and what
they share (size, colours, labels, saving) is in :mod:`.style`; this one decides which
figures a report has and where they are written.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from dmx.common.errors import UserError
from dmx.common.run_folder import HISTORY_FILE
from dmx.report.cells import metrics_of
from dmx.report.metrics import is_result
from dmx.report.plots.adaptive import adaptive_figure, adaptive_trace
from dmx.report.plots.curves import curve, curves_figure, val_loss_figure
from dmx.report.plots.metrics import differences_figure, final_metrics_figure
from dmx.report.plots.style import save
from dmx.report.summary import Row

VAL_LOSS_FILE = "val_loss.png"
FINAL_METRICS_FILE = "final_metrics.png"
DIFFERENCES_FILE = "differences.png"
ADAPTIVE_RATES_FILE = "adaptive_rates.png"
PLOT_FILES: tuple[str, ...] = (VAL_LOSS_FILE, FINAL_METRICS_FILE)
MAX_ADAPTIVE_GROUPS = 4
# Zero-shot accuracy over pretraining (eval.epochs), drawn as <key>.png when some run has it.
ZERO_SHOT_CURVES = {
    "pairs_acc": "minimal-pair accuracy (embedded)",
    "blimp_acc": "BLiMP accuracy",
}  # rows of panels in adaptive_rates.png


class PlotWarning(UserWarning):
    """A plot, or a group in it, was left out: nothing to draw it from."""


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
        written.append(save(val_loss_figure(rows, curves, title), out_dir / VAL_LOSS_FILE))
    else:
        warnings.warn(
            f"no done run has a readable {HISTORY_FILE}: {VAL_LOSS_FILE} not written",
            PlotWarning,
            stacklevel=2,
        )
    metrics = [
        m
        for m in metrics_of(rows)
        if is_result(m) and any(row.stats[m.key].mean is not None for row in rows)
    ]
    if metrics:
        figure = final_metrics_figure(rows, metrics, title)
        written.append(save(figure, out_dir / FINAL_METRICS_FILE))
        differences = differences_figure(rows, metrics, title)  # with --baseline only
        if differences is not None:
            written.append(save(differences, out_dir / DIFFERENCES_FILE))
    else:
        warnings.warn(
            f"no done run recorded a result metric: {FINAL_METRICS_FILE} not written",
            PlotWarning,
            stacklevel=2,
        )
    for key, what in ZERO_SHOT_CURVES.items():  # eval.epochs: zero-shot during pretraining
        curves = [curve(row, key) for row in rows]
        if any(c is not None for c in curves):
            figure = curves_figure(rows, curves, title, what, percent=True)
            written.append(save(figure, out_dir / f"{key}.png"))
    adaptive = [(row, t) for row in rows if (t := adaptive_trace(row)) is not None]
    if adaptive:
        path = out_dir / ADAPTIVE_RATES_FILE
        written.append(save(adaptive_figure(adaptive[:MAX_ADAPTIVE_GROUPS], title), path))
    return written
