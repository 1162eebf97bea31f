"""Every output format: the rich table (printed), markdown, csv, json and latex (returned).

The files keep full labels (dotted keys) and every count, whatever their width: they are
read by people searching for a key and by programs, not squeezed into a terminal.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dmx.common.errors import UserError
from dmx.common.files import json_safe
from dmx.report.baseline import method_note
from dmx.report.cells import (
    compared_metrics,
    comparison_grid,
    failed_lines,
    has_baseline,
    main_grid,
    metrics_of,
    row_notes,
)
from dmx.report.labels import format_value
from dmx.report.latex import to_latex
from dmx.report.summary import Row
from dmx.report.table import print_table

if TYPE_CHECKING:
    from rich.console import Console

STAT_FIELDS: tuple[str, ...] = ("mean", "std", "median", "ci95", "n")
JSON_COMPARISON_FIELDS: tuple[str, ...] = (
    "delta",
    "p",
    "p_exact",
    "undefined",
    "effect_size",
    "n_for_80_power",
    "test",
)
CSV_COMPARISON_FIELDS: tuple[str, ...] = ("delta", "p", "p_exact")


def to_markdown(rows: Sequence[Row]) -> str:
    """A GitHub markdown table with the same cells as the rich table; with a baseline, the
    comparison as a second table and how it was tested; then notes on mixed
    implementation settings and the failed runs."""
    lines = _markdown_table(*main_grid(rows))
    if has_baseline(rows):
        lines += ["", *_markdown_table(*comparison_grid(rows))]
        lines += ["", method_note(rows, lambda i, row: f"`{row.label}`") or ""]
    notes = row_notes(rows, lambda i, row: f"`{row.label}`")
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {note}" for note in notes]
    failed = failed_lines(rows)
    if failed:
        lines += ["", "Failed runs:", ""]
        lines += [f"- `{path}`: {error}" for path, error in failed]
    return "\n".join(lines) + "\n"


def _markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "--:|" * (len(header) - 1)]
    for cells in body:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def to_csv(rows: Sequence[Row]) -> str:
    """One line per group: its label, its config values (empty where its runs lack the key),
    counts, and every statistic in its own column (final_val_loss_mean, ...), full
    precision, for a spreadsheet or pandas; with a baseline, each result metric's
    difference from it, the t-test's p and the exact test's (final_val_loss_delta,
    final_val_loss_p, final_val_loss_p_exact; empty for the baseline itself)."""
    keys = rows[0].keys if rows else []
    metrics = metrics_of(rows)
    header = ["group", *keys, "n", "n_failed", "n_running", "n_unfinished", "seeds"]
    header += [f"{m.key}_{s}" for m in metrics for s in STAT_FIELDS]
    compared = compared_metrics(rows) if has_baseline(rows) else []
    header += [f"{m.key}_{f}" for m in compared for f in CSV_COMPARISON_FIELDS]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        stats = [row.stats[m.key] for m in metrics]
        writer.writerow(
            [
                row.label,
                *(_csv_value(row.group.get(k)) for k in keys),
                row.n,
                len(row.failed),
                len(row.running),
                len(row.unfinished),
                " ".join(format_value(s) for s in row.seeds),
                *(_csv_value(getattr(s, f)) for s in stats for f in STAT_FIELDS),
                *(
                    _csv_value(getattr(row.comparisons.get(m.key), f, None))
                    for m in compared
                    for f in CSV_COMPARISON_FIELDS
                ),
            ]
        )
    return buf.getvalue()


def _csv_value(value: Any) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def to_json(rows: Sequence[Row]) -> str:
    """A JSON list, one object per group (the documented shape; NaN and None -> null):

    {"group": {key: value}, "label": str, "n": int, "n_failed": int, "n_running": int,
     "n_unfinished": int, "n_duplicates": int, "seeds": [...], "impl_differs": {key: [values]},
     "<metric>": {"mean", "std", "median", "ci95", "n"}, ..., "failed": [{"path", "error"}]}

    ``group`` holds the full differing config keys; a key the group's runs lack is absent.
    With a baseline every row also has ``"baseline": bool``, and each result metric of a
    row other than the baseline gains ``"delta"``, ``"p"`` (the t-test's), ``"p_exact"``
    (the exact permutation test's, up to 10 seeds), ``"undefined"`` (why p is null although
    the t-test ran: "equal differences"), ``"effect_size"``, ``"n_for_80_power"`` and
    ``"test"`` ("paired t", "welch t" or null).
    """
    baseline = has_baseline(rows)
    out = []
    for row in rows:
        obj: dict[str, Any] = {
            "group": dict(row.group),
            "label": row.label,
            "n": row.n,
            "n_failed": len(row.failed),
            "n_running": len(row.running),
            "n_unfinished": len(row.unfinished),
            "n_duplicates": len(row.duplicates),
            "seeds": row.seeds,
            "impl_differs": row.impl_differs,
        }
        if baseline:
            obj["baseline"] = row.is_baseline
        for key, stat in row.stats.items():
            obj[key] = {f: getattr(stat, f) for f in STAT_FIELDS}
            if key in row.comparisons:
                comparison = row.comparisons[key]
                obj[key].update({f: getattr(comparison, f) for f in JSON_COMPARISON_FIELDS})
        obj["failed"] = [{"path": str(r.path), "error": r.error} for r in row.failed]
        out.append(json_safe(obj))
    return json.dumps(out, indent=2, allow_nan=False) + "\n"


# Text formats: each turns rows into a string. "table" prints instead (see render).
TEXT_FORMATS: dict[str, Callable[[Sequence[Row]], str]] = {
    "md": to_markdown,
    "csv": to_csv,
    "json": to_json,
    "latex": to_latex,
}
FORMATS: tuple[str, ...] = ("table", *TEXT_FORMATS)


def check_format(fmt: str) -> str:
    """Fail early, before reading anything, on a format we cannot write."""
    if fmt not in FORMATS:
        raise UserError(f"unknown report format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return fmt


def render(rows: Sequence[Row], fmt: str = "table", console: Console | None = None) -> str | None:
    """Print the table (and return None), or return the text of another format."""
    check_format(fmt)
    if fmt == "table":
        print_table(rows, console)
        return None
    return TEXT_FORMATS[fmt](rows)
