"""The report: grouping, statistics and every output format, on fake run folders."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from dmx import report as rep
from dmx.errors import UserError
from dmx.runs import CONFIG_FILE, METRICS_FILE, atomic_write_text, write_json

T_975_DF2 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom


def make_config(
    seed: int, mask: str = "static", copies: int | None = 1, project: str = "dmx"
) -> dict[str, Any]:
    return {
        "seed": seed,
        "model": {"name": "tiny", "n_layers": 2, "d_model": 128},
        "data": {"name": "embedded", "seq_len": 64},
        "mask": {"name": mask, "copies": copies, "prob": 0.15},
        "trainer": {"max_epochs": 30, "lr": 1e-3},
        "logger": {"name": "wandb", "project": project, "mode": "offline"},
    }


def write_run(path: Path, config: dict[str, Any], status: str = "done", **metrics: Any) -> Path:
    write_json(
        path / METRICS_FILE, {"status": status, "seed": config["seed"], "error": None, **metrics}
    )
    atomic_write_text(path / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    return path


def done_metrics(loss: float, acc: float = 0.5, tps: float = 1000.0) -> dict[str, Any]:
    return {
        "final_val_loss": loss,
        "best_val_loss": loss - 0.1,
        "final_val_acc": acc,
        "final_train_loss": loss + 0.1,
        "tokens_per_s": tps,
    }


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """static K=1 (3 seeds), dynamic (2 seeds), static K=2 (1 done, 1 failed, 1 running).

    The logger project differs between runs, but logger.* never defines a group.
    """
    root = tmp_path / "sweep"
    for seed, loss in enumerate([2.0, 2.2, 2.4]):
        write_run(
            root / f"static1/s{seed}",
            make_config(seed, project=f"p{seed}"),
            **done_metrics(loss, acc=0.4 + 0.1 * seed, tps=1000 + 100 * seed),
        )
    for seed, loss in enumerate([1.0, 2.0]):
        write_run(
            root / f"nested/dynamic/s{seed}",
            make_config(seed, "dynamic", None),
            **done_metrics(loss),
        )
    write_run(root / "static2/s0", make_config(0, copies=2), **done_metrics(3.0))
    write_run(
        root / "static2/s1",
        make_config(1, copies=2),
        status="failed",
        error="RuntimeError: loss is nan at step 120",
    )
    write_run(root / "static2/s2", make_config(2, copies=2), status="running")
    return root


def rows_by_label(root: Path) -> dict[str, rep.Row]:
    return {row.label: row for row in rep.summarize(rep.collect(root))}


def test_collect_flattens_config(sweep: Path) -> None:
    runs = rep.collect(sweep)
    assert len(runs) == 8
    assert runs[0].config["mask.copies"] in (1, 2, None)
    assert {"seed", "model.n_layers", "logger.project"} <= set(runs[0].config)


def test_groups_by_differing_keys_ignoring_seed_and_logger(sweep: Path) -> None:
    runs = rep.collect(sweep)
    assert rep.differing_keys(runs) == ["mask.name", "mask.copies"]
    rows = rep.summarize(runs)
    assert [row.group for row in rows] == [
        {"mask.name": "dynamic", "mask.copies": None},
        {"mask.name": "static", "mask.copies": 1},
        {"mask.name": "static", "mask.copies": 2},
    ]
    assert rows[0].label == "mask.name=dynamic, mask.copies=null"
    assert [row.seeds for row in rows] == [[0, 1], [0, 1, 2], [0]]


def test_mean_std_ci_match_hand_computation(sweep: Path) -> None:
    rows = rows_by_label(sweep)
    static = rows["mask.name=static, mask.copies=1"].stats
    loss = static["final_val_loss"]
    assert loss.n == 3
    assert loss.mean == pytest.approx(2.2)
    assert loss.std == pytest.approx(0.2)  # sqrt((0.2² + 0 + 0.2²) / 2)
    assert loss.ci95 == pytest.approx(T_975_DF2 * 0.2 / math.sqrt(3))
    assert static["final_val_acc"].mean == pytest.approx(0.5)
    assert static["tokens_per_s"].mean == pytest.approx(1100)
    assert static["tokens_per_s"].std == pytest.approx(100)

    dynamic = rows["mask.name=dynamic, mask.copies=null"].stats["final_val_loss"]
    assert (dynamic.mean, dynamic.std) == pytest.approx((1.5, math.sqrt(0.5)))


def test_failed_and_running_counted_and_excluded_from_stats(sweep: Path) -> None:
    row = rows_by_label(sweep)["mask.name=static, mask.copies=2"]
    assert (row.n, len(row.failed), len(row.unfinished)) == (1, 1, 1)
    loss = row.stats["final_val_loss"]
    assert (loss.n, loss.mean, loss.std, loss.ci95) == (1, 3.0, None, None)


def test_table_shows_counts_numbers_and_errors(sweep: Path) -> None:
    console = Console(record=True, width=200)
    assert rep.report(sweep, "table", console) is None
    text = console.export_text()
    assert "mask.name=static, mask.copies=1" in text
    assert "2.200 ± 0.200" in text
    assert "50.00% ± 10.00%" in text
    assert "1,100 ± 100" in text
    assert "RuntimeError: loss is nan at step 120" in text
    assert str(sweep / "static2/s1") in text
    static2 = next(line for line in text.splitlines() if "mask.copies=2" in line)
    assert [c.strip() for c in static2.split("│")[2:5]] == ["1", "1", "1"]  # n, failed, running


def test_json_has_documented_shape(sweep: Path) -> None:
    data = json.loads(rep.report(sweep, "json"))
    assert isinstance(data, list) and len(data) == 3
    static1, static2 = data[1], data[2]
    assert static1["group"] == {"mask.name": "static", "mask.copies": 1}
    assert (static1["n"], static1["n_failed"], static1["n_running"]) == (3, 0, 0)
    assert static1["seeds"] == [0, 1, 2]
    for metric in rep.METRICS:
        assert set(static1[metric.key]) == {"mean", "std", "ci95"}
    assert static1["final_val_loss"]["mean"] == pytest.approx(2.2)
    assert static1["final_val_loss"]["std"] == pytest.approx(0.2)
    assert static2["final_val_loss"] == {"mean": 3.0, "std": None, "ci95": None}
    assert (static2["n"], static2["n_failed"], static2["n_running"]) == (1, 1, 1)
    assert static2["failed"] == [
        {"path": str(sweep / "static2/s1"), "error": "RuntimeError: loss is nan at step 120"}
    ]


def test_json_writes_nan_as_null(tmp_path: Path) -> None:
    write_run(tmp_path / "a", make_config(0), **done_metrics(float("nan")))
    text = rep.report(tmp_path, "json")
    assert "NaN" not in text
    assert json.loads(text)[0]["final_val_loss"]["mean"] is None


def test_csv_has_one_column_per_stat(sweep: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(rep.report(sweep, "csv"))))
    assert [r["group"] for r in rows] == [
        "mask.name=dynamic, mask.copies=null",
        "mask.name=static, mask.copies=1",
        "mask.name=static, mask.copies=2",
    ]
    static1 = rows[1]
    assert (static1["mask.name"], static1["mask.copies"]) == ("static", "1")
    assert float(static1["final_val_loss_mean"]) == pytest.approx(2.2)
    assert float(static1["final_val_loss_std"]) == pytest.approx(0.2)
    assert float(static1["final_val_loss_ci95"]) == pytest.approx(T_975_DF2 * 0.2 / math.sqrt(3))
    assert static1["seeds"] == "0 1 2"
    assert (rows[2]["n"], rows[2]["n_failed"], rows[2]["n_running"]) == ("1", "1", "1")
    assert rows[2]["final_val_loss_std"] == ""


def test_markdown_has_numbers_and_failed_runs(sweep: Path) -> None:
    text = rep.report(sweep, "md")
    assert text.startswith("| group | n | failed | running | val loss |")
    assert "| mask.name=static, mask.copies=1 | 3 | 0 | 0 | 2.200 ± 0.200 |" in text
    assert "RuntimeError: loss is nan at step 120" in text


def test_single_group_is_labelled_all(tmp_path: Path) -> None:
    for seed in range(2):
        write_run(tmp_path / f"s{seed}", make_config(seed), **done_metrics(1.0 + seed))
    rows = rep.summarize(rep.collect(tmp_path))
    assert len(rows) == 1
    assert (rows[0].group, rows[0].label, rows[0].n) == ({}, "all", 2)
    assert json.loads(rep.to_json(rows))[0]["group"] == {}
    console = Console(record=True, width=200)
    rep.render(rows, "table", console)
    assert "all" in console.export_text()


def test_one_run_folder_reports_itself(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", make_config(0), **done_metrics(1.25))
    (row,) = rep.summarize(rep.collect(run))
    assert (row.label, row.stats["final_val_loss"].mean) == ("all", 1.25)


def test_corrupt_files_are_skipped_with_a_warning(sweep: Path) -> None:
    (sweep / "static1/s0" / METRICS_FILE).write_text("{not json", encoding="utf-8")
    (sweep / "static2/s0" / CONFIG_FILE).write_text("mask: [unclosed", encoding="utf-8")
    with pytest.warns(rep.SkippedRunWarning) as record:
        text = rep.report(sweep, "md")
    messages = [str(w.message) for w in record]
    assert any(str(sweep / "static1/s0") in m and METRICS_FILE in m for m in messages)
    assert any(str(sweep / "static2/s0") in m and CONFIG_FILE in m for m in messages)
    assert "| mask.name=static, mask.copies=1 | 2 | 0 | 0 | 2.300 ± 0.141 |" in text


def test_all_runs_unreadable_raises(tmp_path: Path) -> None:
    write_run(tmp_path / "a", make_config(0), **done_metrics(1.0))
    (tmp_path / "a" / METRICS_FILE).write_text("[]", encoding="utf-8")
    with pytest.warns(rep.SkippedRunWarning), pytest.raises(UserError, match="could be read"):
        rep.collect(tmp_path)


def test_empty_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="metrics.json") as info:
        rep.report(tmp_path)
    assert str(tmp_path) in str(info.value) and "dmx sweep" in str(info.value)


def test_missing_folder_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(UserError, match="no such folder") as info:
        rep.report(missing, "json")
    assert str(missing) in str(info.value) and "outputs/sweeps" in str(info.value)


def test_unknown_format_raises_with_choices(sweep: Path) -> None:
    with pytest.raises(UserError, match="table, md, csv, json"):
        rep.report(sweep, "xlsx")


def test_import_is_cheap() -> None:
    """The report reads files only: importing it pulls in no training stack and no scipy."""
    heavy = ["torch", "lightning", "hydra", "scipy", "wandb"]
    code = f"import sys, dmx.report; print([m for m in {heavy!r} if m in sys.modules])"
    root = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_per_seed_keeps_each_seed_in_its_own_row(sweep: Path) -> None:
    rows = json.loads(rep.report(sweep, "json", per_seed=True) or "")
    static1 = [r for r in rows if r["group"].get("mask.copies") == 1]
    assert sorted(r["group"]["seed"] for r in static1) == [0, 1, 2]
    assert sorted(r["final_val_loss"]["mean"] for r in static1) == [2.0, 2.2, 2.4]
    assert all(r["n"] == 1 for r in static1)
