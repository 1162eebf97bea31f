"""Read run folders, group them into experiments, and summarise each over its seeds.

The report reads files only (``config.yaml`` and ``metrics.json`` through
:mod:`dmx.common.run_folder`), never live objects, so it works on a sweep copied from another
machine and imports nothing heavy: no torch, Lightning or Hydra, and scipy and rich
only when a confidence interval or a table is actually needed.

The pipeline is small steps, each in its own module and replaceable on its own::

    collect(root)       -> list[Run]    every readable run folder under root   (collect)
    summarize(runs)     -> list[Row]    one Row per group, with statistics     (summary)
                                        grouping keys and labels               (groups, labels)
                                        which metrics, their formats           (metrics)
                                        mean, std, median, ci95                (stats)
    compare_to(rows, b) -> Row          the baseline; other rows get Δ, p, d   (baseline)
    render(rows, fmt)   -> str | None   a rich table, markdown, csv, json or   (table, render,
                                        latex                                   latex)
    load(root)          -> list[Row]    collect, summarize, compare_to
    report(root, fmt)                   load and render, for the CLI
    write_plots(rows)   -> [Path]       val_loss.png, final_metrics.png (+ adaptive_rates.png)

The baseline comparison uses scipy's t-tests and statsmodels' power analysis, the plots
matplotlib: each is imported inside the function that needs it.

Unreadable runs (a corrupt metrics.json or config.yaml) are skipped with a
:class:`SkippedRunWarning` through :mod:`warnings`, so one broken folder never hides
the rest of a sweep; the CLI shows these warnings on stderr, tests catch them with
``pytest.warns``. Failed, running and unfinished (killed) runs are counted in every
format, and failed runs are listed with their error message.

Layer 5 of 9, beside dmx.training: imports dmx.data (GLUE's task table), dmx.common and no
torch or Lightning. A new metric to report or a new statistic goes here (its catalogue
entry in :mod:`~dmx.report.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dmx.report.baseline import compare_to, find_baseline, method_note
from dmx.report.baseline import parse as parse_baseline
from dmx.report.cells import cell
from dmx.report.collect import Run, SkippedRunWarning, collect, flatten
from dmx.report.groups import (
    IGNORED_KEYS,
    IMPL_PREFIX,
    LEGACY_IMPL_KEYS,
    MISSING,
    differing_keys,
    group_runs,
)
from dmx.report.labels import ALL_LABEL, STRATEGY_KEYS, format_value, group_label
from dmx.report.latex import to_latex
from dmx.report.metrics import (
    DIAGNOSTICS,
    FINETUNE,
    GLUE,
    METRICS,
    ZERO_SHOT,
    Metric,
    zero_shot_detail,
)
from dmx.report.plots import PLOT_FILES, PlotWarning, check_plot_dir, write_plots
from dmx.report.render import FORMATS, check_format, render, to_csv, to_json, to_markdown
from dmx.report.stats import Comparison, Stat, compare, describe, seeds_for_power
from dmx.report.summary import Row, summarize
from dmx.report.table import print_table

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "ALL_LABEL",
    "DIAGNOSTICS",
    "FINETUNE",
    "GLUE",
    "ZERO_SHOT",
    "FORMATS",
    "IGNORED_KEYS",
    "IMPL_PREFIX",
    "LEGACY_IMPL_KEYS",
    "METRICS",
    "MISSING",
    "PLOT_FILES",
    "STRATEGY_KEYS",
    "Comparison",
    "Metric",
    "PlotWarning",
    "Row",
    "Run",
    "SkippedRunWarning",
    "Stat",
    "cell",
    "check_format",
    "check_plot_dir",
    "collect",
    "compare",
    "compare_to",
    "describe",
    "differing_keys",
    "find_baseline",
    "flatten",
    "format_value",
    "parse_baseline",
    "group_label",
    "group_runs",
    "load",
    "method_note",
    "print_table",
    "render",
    "report",
    "seeds_for_power",
    "summarize",
    "to_csv",
    "to_json",
    "to_latex",
    "to_markdown",
    "write_plots",
]


def load(
    root: Path,
    per_seed: bool = False,
    baseline: str | Sequence[str] | None = None,
    zero_shot: bool = False,
) -> list[Row]:
    """The rows of every run under root, compared with the baseline group when one is
    named (``mask=static``; several KEY=VALUE when one does not single out a group).

    ``per_seed`` keeps each seed in a group of its own, to see whether a difference holds
    seed by seed. Zero-shot and fine-tuning results join the columns when some run recorded
    them; ``zero_shot`` adds the zero-shot figures per field and phenomenon.
    """
    ignored = [k for k in IGNORED_KEYS if k != "seed"] if per_seed else IGNORED_KEYS
    runs = collect(Path(root))
    detail = zero_shot_detail({k for r in runs for k in r.metrics}) if zero_shot else ()
    optional = (*ZERO_SHOT, *detail, *FINETUNE, *GLUE, *DIAGNOSTICS)
    rows = summarize(runs, ignored=ignored, optional=optional)
    if baseline:
        compare_to(rows, baseline)
    return rows


def report(
    root: Path,
    fmt: str = "table",
    console: Console | None = None,
    per_seed: bool = False,
    baseline: str | Sequence[str] | None = None,
) -> str | None:
    """What `dmx report` does: load the rows, render them.

    For "table" it prints to ``console`` and returns None; for md, csv, json and latex
    it returns the text, which the CLI prints or writes to a file.
    """
    check_format(fmt)
    if baseline:
        for spec in [baseline] if isinstance(baseline, str) else baseline:
            parse_baseline(spec)  # a typo stops before a single run is read
    return render(load(root, per_seed, baseline), fmt, console)
