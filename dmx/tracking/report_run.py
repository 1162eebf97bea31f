"""The report as a W&B run (job_type "report"): the table, and the plots as images.

Like training, it is offline unless credentials exist or WANDB_MODE says otherwise
(:func:`dmx.tracking.wandb_run.resolve_mode`), so ``--wandb`` never waits on a network and never
fails for the lack of one: the offline run is uploaded later with ``wandb sync``. An
online start that fails falls back to offline after INIT_TIMEOUT_S, as training does.
The run folder stays the source of truth; this is a copy for sharing.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmx.report.cells import compared_metrics, has_baseline, metrics_of
from dmx.report.plots import write_plots
from dmx.report.summary import Row

DEFAULT_PROJECT = "dmx"
JOB_TYPE = "report"
INIT_TIMEOUT_S = 20.0  # as logger.init_timeout_s: an online start that hangs goes offline
TABLE_STATS: tuple[str, ...] = ("mean", "std", "ci95")
TABLE_COMPARISON: tuple[str, ...] = ("delta", "p")


@dataclass(frozen=True)
class LoggedReport:
    """Where the report's W&B run went."""

    mode: str  # online | offline
    folder: Path  # the run's local folder, what `wandb sync` uploads
    url: str | None  # online only

    @property
    def sync_command(self) -> str:
        return f"wandb sync {self.folder}"


def log_report(
    rows: Sequence[Row],
    root: Path,
    plots: Sequence[Path] | None = None,
    baseline: Sequence[str] = (),
) -> LoggedReport | None:
    """Log the rows as a wandb.Table and ``plots`` (made here in a temporary folder when
    None) as images; None when WANDB_MODE=disabled.

    The run is written under WANDB_DIR when set, else next to the runs it reports on,
    in ``<root>/wandb`` (which the report never reads as a run).
    """
    from dmx.tracking.wandb_run import resolve_mode

    mode = resolve_mode("auto")
    if mode == "disabled":
        return None
    if plots is not None:
        return _log(rows, Path(root), list(plots), list(baseline), mode)
    with tempfile.TemporaryDirectory(prefix="dmx-report-plots-") as folder:
        made = write_plots(rows, Path(folder), Path(root).resolve().name)
        return _log(rows, Path(root), made, list(baseline), mode)


def _log(
    rows: Sequence[Row], root: Path, plots: list[Path], baseline: list[str], mode: str
) -> LoggedReport:
    import wandb

    run = _start(rows, root, baseline, mode)
    # Online, the report run's own URL ends in runs/<its id>: the training runs' pages are
    # beside it (same project and entity).
    runs_url = run.url.rsplit("/", 1)[0] + "/" if run.settings.mode == "online" else None
    run.log(
        {
            "report": table(rows, runs_url),
            **{path.stem: wandb.Image(str(path), caption=path.name) for path in plots},
        }
    )
    run.summary["groups"] = len(rows)
    run.summary["runs_done"] = sum(row.n for row in rows)
    folder = Path(run.dir).parent
    url = run.url if run.settings.mode == "online" else None
    logged = LoggedReport(mode=run.settings.mode, folder=folder, url=url)
    run.finish()
    return logged


def _start(rows: Sequence[Row], root: Path, baseline: list[str], mode: str) -> Any:
    import wandb

    from dmx.tracking.wandb_run import start_run

    project, entity = _destination(rows)
    options: dict[str, Any] = dict(
        project=project,
        entity=entity,
        job_type=JOB_TYPE,
        name=f"report {root.resolve().name}",
        config={
            "folder": str(root.resolve()),
            "baseline": " ".join(baseline) or None,
            "groups": [row.label for row in rows],
        },
        reinit="create_new",  # a process may report twice (tests); each run is its own
        settings=wandb.Settings(init_timeout=INIT_TIMEOUT_S, silent=True),
    )
    if not os.environ.get("WANDB_DIR"):
        options["dir"] = str(root)
    return start_run(mode, "the report", **options)


def _destination(rows: Sequence[Row]) -> tuple[str, str | None]:
    """The project and entity most of the runs logged to, so the report sits with them."""
    configs = [run.config for row in rows for run in row.runs]
    projects = Counter(c["logger.project"] for c in configs if c.get("logger.project"))
    entities = Counter(c["logger.entity"] for c in configs if c.get("logger.entity"))
    project = projects.most_common(1)[0][0] if projects else DEFAULT_PROJECT
    entity = entities.most_common(1)[0][0] if entities else None
    return str(project), None if entity is None else str(entity)


def table_columns(rows: Sequence[Row]) -> list[str]:
    """label, n, each metric's mean/std/ci95, then with a baseline each result metric's
    delta and p: the csv's names, so a W&B table and a spreadsheet read alike."""
    columns = ["label", "n"]
    columns += [f"{m.key}_{s}" for m in metrics_of(rows) for s in TABLE_STATS]
    if has_baseline(rows):
        columns.append("baseline")
        columns += [f"{m.key}_{f}" for m in compared_metrics(rows) for f in TABLE_COMPARISON]
    columns.append(RUNS_COLUMN)
    return columns


# The W&B runs a row summarises (their ids, from each run's metrics.json), so the report
# run links to the training runs it was computed from; online, as links to their pages.
RUNS_COLUMN = "wandb_runs"


def run_ids(row: Row) -> list[str]:
    return [str(run.metrics["wandb_id"]) for run in row.done if run.metrics.get("wandb_id")]


def table_data(rows: Sequence[Row], runs_url: str | None = None) -> list[list[Any]]:
    """The table's rows; ``runs_url`` (``https://.../<entity>/<project>/runs/``) turns the
    run ids into links."""
    baseline = has_baseline(rows)
    data = []
    for row in rows:
        values: list[Any] = [row.label, row.n]
        values += [getattr(row.stats[m.key], s) for m in metrics_of(rows) for s in TABLE_STATS]
        if baseline:
            values.append(row.is_baseline)
            values += [
                getattr(row.comparisons.get(m.key), f, None)
                for m in compared_metrics(rows)
                for f in TABLE_COMPARISON
            ]
        ids = run_ids(row)
        values.append(" ".join(f"{runs_url}{i}" for i in ids) if runs_url else " ".join(ids))
        data.append(values)
    return data


def table(rows: Sequence[Row], runs_url: str | None = None) -> Any:
    import wandb

    return wandb.Table(columns=table_columns(rows), data=table_data(rows, runs_url))
