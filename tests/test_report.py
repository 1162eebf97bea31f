"""The report: grouping, labels, statistics and every output format, on fake run folders."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.cells import cell_len
from rich.console import Console

from dmx import report as rep
from dmx.common.errors import UserError
from dmx.common.files import atomic_write_text, write_json
from dmx.common.run_folder import CONFIG_FILE, METRICS_FILE, RunLock
from dmx.report.cells import CAPTION
from dmx.report.labels import short_names
from dmx.report.table import PIPE_WIDTH, default_console

T_975_DF2 = 4.302652729911275  # Student's t, 97.5% quantile, 2 degrees of freedom


def make_config(
    seed: int, mask: str = "static", copies: int | None = 1, project: str = "dmx"
) -> dict[str, Any]:
    """An older run's config: the strategy named by mask.name, no impl. group."""
    return {
        "seed": seed,
        "model": {"name": "tiny", "n_layers": 2, "d_model": 128},
        "data": {"name": "embedded", "seq_len": 64},
        "mask": {"name": mask, "copies": copies, "prob": 0.15},
        "trainer": {"max_epochs": 30, "lr": 1e-3},
        "logger": {"name": "wandb", "project": project, "mode": "offline"},
    }


def new_config(seed: int, copies: int | None = 1, **impl: Any) -> dict[str, Any]:
    """A current run's config: no mask.name, implementation settings under impl."""
    return {
        "seed": seed,
        "model": {"name": "tiny", "n_layers": 2, "d_model": 128, "n_heads": 2},
        "data": {"name": "embedded", "seq_len": 64},
        "mask": {"copies": copies, "prob": 0.15},
        "trainer": {"max_epochs": 30, "lr": 1e-3},
        "impl": {"accelerator": "cpu", "num_workers": 0, "progress_bar": False, **impl},
        "logger": {"name": "none"},
    }


def strategy(copies: int | None) -> str:
    return "dynamic" if copies is None else f"static(K={copies})"


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
    """Older runs: static K=1 (3 seeds), dynamic (2 seeds), static K=2 (1 done, 1 failed,
    1 left "running" by a process that is gone).

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
        error="RuntimeError: loss is nan\n  at step 120",
    )
    write_run(root / "static2/s2", make_config(2, copies=2), status="running")
    return root


def rows_by_label(root: Path) -> dict[str, rep.Row]:
    return {row.label: row for row in rep.summarize(rep.collect(root))}


def printed(rows: list[rep.Row], width: int) -> str:
    console = Console(record=True, width=width)
    rep.render(rows, "table", console)
    return console.export_text()


def cells_of(line: str) -> list[str]:
    """A table line split into its cells (columns are two or more spaces apart)."""
    return re.split(r"\s{2,}", line.strip())


# ---------------------------------------------------------------------------- collect, group


def test_collect_flattens_config(sweep: Path) -> None:
    runs = rep.collect(sweep)
    assert len(runs) == 8
    static1 = next(r for r in runs if r.path == sweep / "static1/s0")
    assert static1.config["mask.copies"] == 1
    assert static1.config["logger.project"] == "p0"
    assert static1.config["model.n_layers"] == 2


def test_groups_by_differing_keys_ignoring_seed_and_logger(sweep: Path) -> None:
    runs = rep.collect(sweep)
    assert rep.differing_keys(runs) == ["mask.name", "mask.copies"]
    rows = rep.summarize(runs)
    assert [row.group for row in rows] == [
        {"mask.name": "dynamic", "mask.copies": None},
        {"mask.name": "static", "mask.copies": 1},
        {"mask.name": "static", "mask.copies": 2},
    ]
    # Older runs recorded no mask strategy: their labels fall back to the config keys.
    assert [row.label for row in rows] == [
        "mask.name=dynamic, mask.copies=null",
        "mask.name=static, mask.copies=1",
        "mask.name=static, mask.copies=2",
    ]
    assert rows[0].short_label == "mask=dynamic, copies=null"
    assert [row.seeds for row in rows] == [[0, 1], [0, 1, 2], [0]]


def test_impl_settings_never_split_groups_and_are_noted(tmp_path: Path) -> None:
    runs = [
        (0, None, {"num_workers": 0}, "32-true"),
        (1, None, {"num_workers": 2}, "bf16-mixed"),
        (2, None, {"num_workers": 0, "cache_dir": "/scratch"}, "32-true"),
        (0, 1, {"accelerator": "gpu", "devices": 1}, "32-true"),
        (1, 1, {"accelerator": "gpu", "devices": 1}, "32-true"),
    ]
    for seed, copies, impl, precision in runs:
        write_run(
            tmp_path / f"{strategy(copies)}_s{seed}",
            new_config(seed, copies, **impl),
            mask_strategy=strategy(copies),
            precision=precision,
            **done_metrics(2.0),
        )
    rows = rep.summarize(rep.collect(tmp_path))
    assert [row.group for row in rows] == [{"mask.copies": None}, {"mask.copies": 1}]
    assert [row.n for row in rows] == [3, 2]
    # cache_dir is set in one run only: like any key older runs lack, it is no difference.
    assert rows[0].impl_differs == {
        "impl.num_workers": [0, 2],
        "precision": ["32-true", "bf16-mixed"],
    }
    assert rows[1].impl_differs == {}

    note = (
        "mixes implementation settings: impl.num_workers ∈ {0, 2}; "
        "precision ∈ {32-true, bf16-mixed}"
    )
    lines = [line.rstrip() for line in printed(rows, 200).splitlines()]
    assert lines[-1] == f"note: mask=dynamic {note}"
    assert not any("mask=static(K=1) mixes" in line for line in lines)
    assert f"- `mask=dynamic` {note}" in rep.to_markdown(rows).splitlines()
    data = json.loads(rep.to_json(rows))
    assert data[0]["impl_differs"] == {
        "impl.num_workers": [0, 2],
        "precision": ["32-true", "bf16-mixed"],
    }
    assert data[1]["impl_differs"] == {}


def test_legacy_impl_keys_are_impl_settings(tmp_path: Path) -> None:
    for seed, (accelerator, workers) in enumerate([("cpu", 0), ("gpu", 4), ("gpu", 4)]):
        config = make_config(seed)
        config["trainer"].update(
            accelerator=accelerator, devices=1, precision="auto", progress_bar=seed == 0
        )
        config["trainer"]["checkpoint"] = seed == 0
        config["data"].update(num_workers=workers, cache_dir=f"/cache/{seed}")
        write_run(tmp_path / f"s{seed}", config, **done_metrics(1.0))
    runs = rep.collect(tmp_path)
    assert rep.differing_keys(runs) == []
    (row,) = rep.summarize(runs)
    assert (row.label, row.n) == ("all", 3)
    assert row.impl_differs == {
        "impl.accelerator": ["cpu", "gpu"],
        "impl.progress_bar": [False, True],
        "impl.checkpoint": [False, True],
        "impl.num_workers": [0, 4],
        "impl.cache_dir": ["/cache/0", "/cache/1", "/cache/2"],
    }


def test_legacy_and_new_names_of_a_setting_compare_as_one(tmp_path: Path) -> None:
    old = make_config(0)
    old["data"]["num_workers"] = 4
    write_run(tmp_path / "old", old, **done_metrics(1.0))
    new = make_config(1)
    new["impl"] = {"num_workers": 0}
    write_run(tmp_path / "new", new, **done_metrics(1.0))
    (row,) = rep.summarize(rep.collect(tmp_path))
    assert row.impl_differs == {"impl.num_workers": [0, 4]}


def test_a_paths_key_splits_groups_where_hydra_and_logger_keys_do_not(tmp_path: Path) -> None:
    """``paths`` was once ignored like ``hydra``: runs reading different data under paths.*
    are different experiments; where Hydra and the logger put things is not."""
    for where, loss in (("a", 1.0), ("b", 2.0)):
        for seed in range(2):
            config = new_config(seed)
            config["paths"] = {"data_dir": f"/data/{where}"}
            config["hydra"] = {"run": {"dir": f"outputs/{where}{seed}"}}
            config["logger"] = {"name": "wandb", "project": f"p{seed}"}
            write_run(tmp_path / f"{where}/s{seed}", config, **done_metrics(loss + seed / 10))
    runs = rep.collect(tmp_path)
    assert rep.differing_keys(runs) == ["paths.data_dir"]
    rows = rows_by_label(tmp_path)
    assert {label: (row.n, row.stats["final_val_loss"].mean) for label, row in rows.items()} == {
        "paths.data_dir=/data/a": (2, pytest.approx(1.05)),
        "paths.data_dir=/data/b": (2, pytest.approx(2.05)),
    }


def test_a_finetune_seed_tied_to_the_seed_is_a_replicate_not_a_group(tmp_path: Path) -> None:
    for seed in range(3):
        config = make_config(seed)
        config["finetune"] = {"name": "embedded", "seed": seed}
        write_run(tmp_path / f"s{seed}", config, **done_metrics(1.0 + seed / 10))
    (row,) = rep.summarize(rep.collect(tmp_path))
    assert row.stats["final_val_loss"].n == 3


def test_key_missing_from_older_runs_does_not_split_groups(tmp_path: Path) -> None:
    for seed in range(2):
        write_run(tmp_path / f"old/s{seed}", make_config(seed), **done_metrics(1.0))
    for seed in range(2, 4):  # other seeds: the same seed would be a rerun, one replicate
        config = make_config(seed)
        config["model"]["n_heads"] = 4  # a key added to the schema since
        write_run(tmp_path / f"new/s{seed}", config, **done_metrics(2.0))
    runs = rep.collect(tmp_path)
    assert rep.differing_keys(runs) == []
    (row,) = rep.summarize(runs)
    assert (row.label, row.n, row.stats["final_val_loss"].mean) == ("all", 4, 1.5)


def test_key_missing_from_older_runs_shows_as_dash_when_others_disagree(tmp_path: Path) -> None:
    write_run(tmp_path / "old", make_config(0), **done_metrics(1.0))
    for heads in (None, 4, 8):  # None: an explicit null is a value, not a missing key
        config = make_config(0)
        config["model"]["n_heads"] = heads
        write_run(tmp_path / f"heads{heads}", config, **done_metrics(2.0))
    rows = rep.summarize(rep.collect(tmp_path))
    assert [row.label for row in rows] == [
        "model.n_heads=–",
        "model.n_heads=null",
        "model.n_heads=4",
        "model.n_heads=8",
    ]
    assert [row.short_label for row in rows] == [
        "n_heads=–",
        "n_heads=null",
        "n_heads=4",
        "n_heads=8",
    ]
    data = json.loads(rep.to_json(rows))
    assert [r["group"] for r in data] == [
        {},
        {"model.n_heads": None},
        {"model.n_heads": 4},
        {"model.n_heads": 8},
    ]
    assert [r["model.n_heads"] for r in csv.DictReader(io.StringIO(rep.to_csv(rows)))] == [
        "",
        "",
        "4",
        "8",
    ]


# ---------------------------------------------------------------------------- labels


def test_strategy_labels_replace_the_keys_they_spell_out(tmp_path: Path) -> None:
    for copies, seed in itertools.product([1, 10, None], range(2)):
        write_run(
            tmp_path / f"{strategy(copies)}_s{seed}",
            new_config(seed, copies),
            mask_strategy=strategy(copies),
            **done_metrics(2.0),
        )
    rows = rep.summarize(rep.collect(tmp_path))
    assert [row.label for row in rows] == ["mask=dynamic", "mask=static(K=1)", "mask=static(K=10)"]
    assert [row.short_label for row in rows] == [row.label for row in rows]
    data = json.loads(rep.to_json(rows))
    assert [(r["group"], r["label"]) for r in data] == [
        ({"mask.copies": None}, "mask=dynamic"),
        ({"mask.copies": 1}, "mask=static(K=1)"),
        ({"mask.copies": 10}, "mask=static(K=10)"),
    ]
    assert [r["group"] for r in csv.DictReader(io.StringIO(rep.to_csv(rows)))] == [
        "mask=dynamic",
        "mask=static(K=1)",
        "mask=static(K=10)",
    ]
    assert "| mask=static(K=10) | 2 | 0 | 0 | 0 | 2.000 ± 0.000 |" in rep.to_markdown(rows)


def test_strategy_keeps_the_keys_it_does_not_tell_apart(tmp_path: Path) -> None:
    """Dynamic masking ignores copies; hiding it would give two groups one label."""
    for copies in (1, 10):
        write_run(
            tmp_path / f"d{copies}",
            new_config(0, copies),
            mask_strategy="dynamic",
            **done_metrics(2.0),
        )
    rows = rep.summarize(rep.collect(tmp_path))
    assert [row.label for row in rows] == [
        "mask=dynamic, mask.copies=1",
        "mask=dynamic, mask.copies=10",
    ]


def test_older_runs_without_a_strategy_fall_back_to_their_keys(tmp_path: Path) -> None:
    write_run(tmp_path / "old", make_config(0, copies=2), **done_metrics(1.0))
    write_run(
        tmp_path / "new",
        make_config(0, "dynamic", None),
        mask_strategy="dynamic",
        **done_metrics(1.0),
    )
    rows = rep.summarize(rep.collect(tmp_path))
    assert [row.label for row in rows] == ["mask=dynamic", "mask.name=static, mask.copies=2"]
    assert [row.short_label for row in rows] == ["mask=dynamic", "mask.name=static, copies=2"]


def test_short_names_drop_prefixes_only_when_unambiguous() -> None:
    keys = ["model.name", "model.n_layers", "model.dropout", "data.dropout", "data.path"]
    assert short_names(keys) == {
        "model.name": "model",
        "model.n_layers": "n_layers",
        "model.dropout": "model.dropout",
        "data.dropout": "data.dropout",
        "data.path": "path",
    }


# ---------------------------------------------------------------------------- statistics


def test_mean_std_median_ci_match_hand_computation(sweep: Path) -> None:
    rows = rows_by_label(sweep)
    static = rows["mask.name=static, mask.copies=1"].stats
    loss = static["final_val_loss"]
    assert loss.n == 3
    assert loss.mean == pytest.approx(2.2)
    assert loss.median == pytest.approx(2.2)
    assert loss.std == pytest.approx(0.2)  # sqrt((0.2² + 0 + 0.2²) / 2)
    assert loss.ci95 == pytest.approx(T_975_DF2 * 0.2 / math.sqrt(3))
    assert static["final_val_acc"].mean == pytest.approx(0.5)
    assert static["tokens_per_s"].mean == pytest.approx(1100)
    assert static["tokens_per_s"].std == pytest.approx(100)

    dynamic = rows["mask.name=dynamic, mask.copies=null"].stats["final_val_loss"]
    assert (dynamic.mean, dynamic.median, dynamic.std) == pytest.approx((1.5, 1.5, math.sqrt(0.5)))


def test_median_and_n_per_metric_in_json_and_csv(tmp_path: Path) -> None:
    for seed, loss in enumerate([1.0, 2.0, 6.0]):
        metrics = done_metrics(loss)
        if seed == 2:
            del metrics["tokens_per_s"]  # an older run that did not record it
        write_run(tmp_path / f"s{seed}", make_config(seed), **metrics)
    (row,) = json.loads(rep.report(tmp_path, "json") or "")
    assert row["final_val_loss"] == pytest.approx(
        {
            "mean": 3.0,
            "std": math.sqrt(7),
            "median": 2.0,
            "ci95": T_975_DF2 * math.sqrt(7 / 3),
            "n": 3,
        }
    )
    assert list(row["final_val_loss"]) == ["mean", "std", "median", "ci95", "n"]
    assert row["tokens_per_s"] == {
        "mean": 1000.0,
        "std": 0.0,
        "median": 1000.0,
        "ci95": 0.0,
        "n": 2,
    }
    (line,) = csv.DictReader(io.StringIO(rep.report(tmp_path, "csv") or ""))
    assert (line["final_val_loss_median"], line["final_val_loss_n"]) == ("2.0", "3")
    assert (line["tokens_per_s_median"], line["tokens_per_s_n"]) == ("1000.0", "2")


# ---------------------------------------------------------------------------- statuses


def test_failed_and_unfinished_counted_and_excluded_from_stats(sweep: Path) -> None:
    row = rows_by_label(sweep)["mask.name=static, mask.copies=2"]
    assert (row.n, len(row.failed), len(row.running), len(row.unfinished)) == (1, 1, 0, 1)
    assert row.unfinished[0].status == "unfinished"
    loss = row.stats["final_val_loss"]
    assert (loss.n, loss.mean, loss.std, loss.median, loss.ci95) == (1, 3.0, None, 3.0, None)


def test_running_only_while_its_lock_is_held(tmp_path: Path) -> None:
    live = write_run(tmp_path / "live", make_config(0), status="running")
    killed = write_run(tmp_path / "killed", make_config(1), status="running")
    lock = RunLock(killed)
    lock.acquire()
    lock.release()  # a lock file nobody holds: its process is gone, as after a SIGKILL
    lock = RunLock(live)
    lock.acquire()
    try:
        runs = {run.path.name: run.status for run in rep.collect(tmp_path)}
        (data,) = json.loads(rep.report(tmp_path, "json") or "")
    finally:
        lock.release()
    assert runs == {"killed": "unfinished", "live": "running"}
    assert (data["n"], data["n_running"], data["n_unfinished"]) == (0, 1, 1)
    assert [run.status for run in rep.collect(tmp_path)] == ["unfinished", "unfinished"]


# ---------------------------------------------------------------------------- formats


def test_table_shows_counts_numbers_and_errors(sweep: Path) -> None:
    console = Console(record=True, width=200)
    assert rep.report(sweep, "table", console) is None
    lines = console.export_text().splitlines()
    # No run is live, so no running column; failed and unfinished have counts.
    assert cells_of(lines[0]) == [
        "group",
        "n",
        "failed",
        "unfinished",
        "val loss",
        "best val loss",
        "val acc",
        "train loss",
        "tokens/s",
    ]
    static1 = next(cells_of(line) for line in lines if line.startswith("mask=static, copies=1"))
    assert static1 == [
        "mask=static, copies=1",
        "3",
        "0",
        "0",
        "2.200 ± 0.200",
        "2.100 ± 0.200",
        "50.00% ± 10.00%",
        "2.300 ± 0.200",
        "1,100 ± 100",
    ]
    static2 = next(cells_of(line) for line in lines if line.startswith("mask=static, copies=2"))
    assert static2[:4] == ["mask=static, copies=2", "1", "1", "1"]  # n, failed, unfinished
    assert f"failed: {sweep / 'static2/s1'}: RuntimeError: loss is nan at step 120" in lines


def test_table_shows_only_the_counts_that_are_not_all_zero(tmp_path: Path) -> None:
    for seed in range(2):
        write_run(tmp_path / f"s{seed}", make_config(seed), **done_metrics(1.0 + seed))
    header = cells_of(printed(rep.summarize(rep.collect(tmp_path)), 100).splitlines()[0])
    assert header[:3] == ["group", "n", "val loss"]


def test_json_has_documented_shape(sweep: Path) -> None:
    data = json.loads(rep.report(sweep, "json") or "")
    assert isinstance(data, list) and len(data) == 3
    static1, static2 = data[1], data[2]
    assert static1["group"] == {"mask.name": "static", "mask.copies": 1}
    assert static1["label"] == "mask.name=static, mask.copies=1"
    assert (
        static1["n"],
        static1["n_failed"],
        static1["n_running"],
        static1["n_unfinished"],
    ) == (3, 0, 0, 0)
    assert static1["seeds"] == [0, 1, 2]
    assert static1["impl_differs"] == {}
    for metric in rep.METRICS:
        assert set(static1[metric.key]) == {"mean", "std", "median", "ci95", "n"}
    assert static1["final_val_loss"]["mean"] == pytest.approx(2.2)
    assert static1["final_val_loss"]["std"] == pytest.approx(0.2)
    assert static2["final_val_loss"] == {
        "mean": 3.0,
        "std": None,
        "median": 3.0,
        "ci95": None,
        "n": 1,
    }
    assert (
        static2["n"],
        static2["n_failed"],
        static2["n_running"],
        static2["n_unfinished"],
    ) == (1, 1, 0, 1)
    assert static2["failed"] == [
        {"path": str(sweep / "static2/s1"), "error": "RuntimeError: loss is nan\n  at step 120"}
    ]


def test_json_writes_nan_as_null(tmp_path: Path) -> None:
    write_run(tmp_path / "a", make_config(0), **done_metrics(float("nan")))
    text = rep.report(tmp_path, "json") or ""
    assert "NaN" not in text
    assert json.loads(text)[0]["final_val_loss"]["mean"] is None


def test_csv_has_one_column_per_stat(sweep: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(rep.report(sweep, "csv") or "")))
    assert [r["group"] for r in rows] == [
        "mask.name=dynamic, mask.copies=null",
        "mask.name=static, mask.copies=1",
        "mask.name=static, mask.copies=2",
    ]
    static1 = rows[1]
    assert (static1["mask.name"], static1["mask.copies"]) == ("static", "1")
    assert float(static1["final_val_loss_mean"]) == pytest.approx(2.2)
    assert float(static1["final_val_loss_std"]) == pytest.approx(0.2)
    assert float(static1["final_val_loss_median"]) == pytest.approx(2.2)
    assert float(static1["final_val_loss_ci95"]) == pytest.approx(T_975_DF2 * 0.2 / math.sqrt(3))
    assert static1["final_val_loss_n"] == "3"
    assert static1["seeds"] == "0 1 2"
    counts = ("n", "n_failed", "n_running", "n_unfinished")
    assert tuple(rows[2][c] for c in counts) == ("1", "1", "0", "1")
    assert rows[2]["final_val_loss_std"] == ""


def test_markdown_has_numbers_and_failed_runs(sweep: Path) -> None:
    text = rep.report(sweep, "md") or ""
    assert text.startswith("| group | n | failed | running | unfinished | val loss |")
    assert "| mask.name=static, mask.copies=1 | 3 | 0 | 0 | 0 | 2.200 ± 0.200 |" in text
    assert f"- `{sweep / 'static2/s1'}`: RuntimeError: loss is nan at step 120" in text.splitlines()


def test_single_group_is_labelled_all(tmp_path: Path) -> None:
    for seed in range(2):
        write_run(tmp_path / f"s{seed}", make_config(seed), **done_metrics(1.0 + seed))
    rows = rep.summarize(rep.collect(tmp_path))
    assert len(rows) == 1
    assert (rows[0].group, rows[0].label, rows[0].n) == ({}, "all", 2)
    assert json.loads(rep.to_json(rows))[0]["group"] == {}
    line = printed(rows, 100).splitlines()[2]
    assert cells_of(line)[:3] == ["all", "2", "1.500 ± 0.707"]


def test_one_run_folder_reports_itself(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", make_config(0), **done_metrics(1.25))
    (row,) = rep.summarize(rep.collect(run))
    assert (row.label, row.stats["final_val_loss"].mean) == ("all", 1.25)


def test_corrupt_files_are_skipped_with_a_warning(sweep: Path) -> None:
    (sweep / "static1/s0" / METRICS_FILE).write_text("{not json", encoding="utf-8")
    (sweep / "static2/s0" / CONFIG_FILE).write_text("mask: [unclosed", encoding="utf-8")
    with pytest.warns(rep.SkippedRunWarning) as record:
        text = rep.report(sweep, "md") or ""
    messages = [str(w.message) for w in record]
    assert any(str(sweep / "static1/s0") in m and METRICS_FILE in m for m in messages)
    assert any(str(sweep / "static2/s0") in m and CONFIG_FILE in m for m in messages)
    assert all("\n" not in m for m in messages)
    assert "| mask.name=static, mask.copies=1 | 2 | 0 | 0 | 0 | 2.300 ± 0.141 |" in text


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
    """The report reads files only: importing it pulls in no training stack, no scipy, and
    no rich until a table is printed; no statsmodels until a baseline is compared, no
    matplotlib until a plot is drawn."""
    heavy = ["torch", "lightning", "hydra", "scipy", "wandb", "rich", "matplotlib", "statsmodels"]
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


# ---------------------------------------------------------------------------- readable at any width

MODELS = {"tiny": (2, 128, 2), "small": (4, 256, 4)}
CORPORA = {"embedded": "dmx/data/embedded.txt", "text": "/datasets/wikitext-103/train.txt"}
# Metrics later changes will add, recorded by the wide sweep's runs but not in METRICS.
LATER_METRICS = {
    "finetune_acc": "finetune acc",
    "finetune_f1": "finetune F1",
    "delta_val_loss": "Δ val loss vs static(K=1)",
    "p_value": "p-value",
}


@pytest.fixture
def wide_sweep(tmp_path: Path) -> Path:
    """Runs that differ in many keys: 2 models x 2 corpora x 3 strategies x 2 mask.prob,
    3 seeds each (24 groups); one group's val loss is 2.0, 2.2, 2.4."""
    root = tmp_path / "wide"
    grid = itertools.product(MODELS, CORPORA, [1, 10, None], [0.15, 0.3])
    for g, (model, corpus, copies, prob) in enumerate(grid):
        n_layers, d_model, n_heads = MODELS[model]
        for seed in range(3):
            config = new_config(seed, copies)
            config["model"] = {
                "name": model,
                "n_layers": n_layers,
                "d_model": d_model,
                "n_heads": n_heads,
            }
            config["data"] = {"name": corpus, "path": CORPORA[corpus], "seq_len": 64}
            config["mask"]["prob"] = prob
            loss = 2.0 + 0.2 * seed if g == 0 else 3.0 + 0.01 * g + 0.1 * seed
            write_run(
                root / f"g{g}/s{seed}",
                config,
                mask_strategy=strategy(copies),
                **done_metrics(loss, acc=0.3 + 0.01 * seed, tps=12_000 + 1_000 * seed),
                **{key: 0.5 + 0.01 * seed for key in LATER_METRICS},
            )
    return root


def expected_short_labels() -> set[str]:
    """What each group's short label must say: every key that separates groups, shortened,
    and no key a preset implies (n_layers comes with model=small, path with data=text)."""
    return {
        f"model={model}, data={corpus}, mask={strategy(copies)}, prob={prob}"
        for model, corpus, copies, prob in itertools.product(
            MODELS, CORPORA, [1, 10, None], [0.15, 0.3]
        )
    }


def legend(text: str) -> dict[str, str]:
    """The legend below the tables: G<i> -> its label, continuation lines joined."""
    lines = text.splitlines()
    entries: dict[str, str] = {}
    last = ""
    for line in lines[lines.index(CAPTION) + 1 :]:
        if not line.strip():
            if entries:
                break
            continue
        match = re.match(r"(G\d+)\s+(.*)", line)
        if match:
            last = match[1]
            entries[last] = match[2].strip()
        else:
            entries[last] += " " + line.strip()
    return entries


@pytest.mark.slow
@pytest.mark.parametrize("width", [100, 80])
def test_wide_sweep_stays_readable(wide_sweep: Path, width: int) -> None:
    rows = rep.summarize(rep.collect(wide_sweep))
    assert len(rows) == 24
    assert {row.short_label for row in rows} == expected_short_labels()
    assert rows[0].label == (
        "model.name=small, model.n_layers=4, model.d_model=256, model.n_heads=4, "
        "data.name=embedded, data.path=dmx/data/embedded.txt, mask=dynamic, mask.prob=0.15"
    )
    text = printed(rows, width)
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= width

    # Every metric header in full, each table repeating group and n.
    headers = [cells_of(line) for line in lines if line.startswith("group")]
    assert all(h[:2] == ["group", "n"] for h in headers)
    assert [label for h in headers for label in h[2:]] == [m.label for m in rep.METRICS]

    # Every cell of every row, unbroken, next to its group's number.
    names = [f"G{i + 1}" for i in range(len(rows))]
    body = [cells_of(line) for line in lines if re.match(r"G\d+\s+\d+\s", line)]
    for name, row in zip(names, rows, strict=True):
        row_cells = [c for cells in body if cells[0] == name for c in cells[2:]]
        assert row_cells == [rep.cell(row.stats[m.key], m) for m in rep.METRICS]
    assert "2.200 ± 0.200" in {c for cells in body for c in cells}

    assert legend(text) == {name: row.short_label for name, row in zip(names, rows, strict=True)}


def test_wide_sweep_keeps_labels_when_they_fit(wide_sweep: Path) -> None:
    rows = rep.summarize(rep.collect(wide_sweep))
    text = printed(rows, PIPE_WIDTH)
    first_cells = [cells_of(line)[0] for line in text.splitlines()[2:26]]
    assert first_cells == [row.short_label for row in rows]
    assert legend(text) == {}


def test_simple_sweep_at_100_columns_shows_strategy_labels(tmp_path: Path) -> None:
    for copies, seed in itertools.product([1, None], range(3)):
        write_run(
            tmp_path / f"{strategy(copies)}_s{seed}",
            new_config(seed, copies),
            mask_strategy=strategy(copies),
            **done_metrics(2.0 + 0.2 * seed),
        )
    lines = printed(rep.summarize(rep.collect(tmp_path)), 100).splitlines()
    assert max(cell_len(line) for line in lines) <= 100
    assert [cells_of(line)[:3] for line in lines[2:4]] == [
        ["mask=dynamic", "3", "2.200 ± 0.200"],
        ["mask=static(K=1)", "3", "2.200 ± 0.200"],
    ]
    assert lines[4:] == [CAPTION]


@pytest.mark.slow
def test_many_metrics_are_stacked_in_tables_not_squeezed(wide_sweep: Path) -> None:
    extra = [rep.Metric(key, label, ".3f") for key, label in LATER_METRICS.items()]
    metrics = [*rep.METRICS, *extra]
    rows = rep.summarize(rep.collect(wide_sweep), metrics=metrics)
    text = printed(rows, 80)
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    headers = [cells_of(line) for line in lines if line.startswith("group")]
    assert len(headers) >= 3
    assert [label for h in headers for label in h[2:]] == [m.label for m in metrics]


def test_pipes_get_a_wide_console_unless_columns_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.delenv("COLUMNS", raising=False)
    assert default_console().width == PIPE_WIDTH
    monkeypatch.setenv("COLUMNS", "93")
    assert default_console().width == 93


def test_mask_diagnostics_appear_only_when_runs_recorded_them(tmp_path: Path) -> None:
    write_run(tmp_path / "old", new_config(0), **done_metrics(1.0))
    rows = rep.summarize(rep.collect(tmp_path))
    assert [m.key for m in rows[0].metrics] == [m.key for m in rep.METRICS]
    write_run(
        tmp_path / "new",
        new_config(1),
        **done_metrics(2.0),
        mask_rate=0.152,
        mask_diversity=3.0,
        attention_density=None,
    )
    (row,) = rep.summarize(rep.collect(tmp_path))
    keys = [m.key for m in row.metrics]
    assert keys == [*(m.key for m in rep.METRICS), "mask_rate", "mask_diversity"]
    assert (row.stats["mask_rate"].n, row.stats["mask_rate"].mean) == (1, 0.152)
    data = json.loads(rep.to_json([row]))[0]
    assert data["mask_diversity"] == {"mean": 3.0, "std": None, "median": 3.0, "ci95": None, "n": 1}


def test_the_attention_pattern_is_labelled_like_its_group(tmp_path: Path) -> None:
    for pattern in ("full", "window"):
        config = {**new_config(0), "attention": {"pattern": pattern, "window": 16}}
        write_run(tmp_path / pattern, config, **done_metrics(1.0))
    rows = rep.summarize(rep.collect(tmp_path))
    assert [r.short_label for r in rows] == ["attention=full", "attention=window"]
    assert [r.label for r in rows] == ["attention.pattern=full", "attention.pattern=window"]


def test_glue_figures_are_columns_with_statistics_and_a_paired_p_value(tmp_path: Path) -> None:
    """A static-vs-dynamic sweep of finetune=glue runs: glue_score and each task's figures
    reported with mean, CI and, against the static baseline, a paired p-value."""
    root = tmp_path / "glue"
    for copies in (1, None):
        for seed in range(3):
            gain = 0.0 if copies == 1 else 0.05 + 0.01 * seed  # dynamic ahead at every seed
            write_run(
                root / f"{strategy(copies)}-{seed}",
                new_config(seed, copies),
                mask_strategy=strategy(copies),
                **done_metrics(3.0),
                glue_cola_mcc=0.20 + 0.02 * seed + gain,
                glue_rte_acc=0.55 + gain,
                glue_score=0.375 + 0.01 * seed + gain,
                glue_tasks=["CoLA", "RTE"],
            )
    rows = json.loads(rep.render(rep.load(root, baseline=["mask.copies=1"]), "json"))
    dynamic = next(r for r in rows if r["group"]["mask.copies"] is None)
    assert dynamic["glue_score"]["mean"] == pytest.approx(0.385 + 0.06)
    assert dynamic["glue_cola_mcc"]["n"] == 3 and dynamic["glue_cola_mcc"]["ci95"] is not None
    # paired by seed: differences 0.05, 0.06, 0.07 -> t = 0.06 / (0.01 / sqrt 3)
    assert dynamic["glue_score"]["delta"] == pytest.approx(0.06)
    t = 0.06 / (0.01 / math.sqrt(3))
    assert dynamic["glue_score"]["p"] == pytest.approx(2 * stats_t_sf(t, 2))
    table = rep.render(rep.load(root), "md")
    assert "GLUE score" in table and "CoLA mcc" in table and "RTE acc" in table
    assert "SST-2 acc" not in table  # a task no run recorded has no column


def stats_t_sf(t: float, df: int) -> float:
    from scipy import stats

    return float(stats.t.sf(t, df))


def test_short_labels_leave_out_mask_settings_the_strategy_already_says() -> None:
    """InforMask's all-[MASK] corruption and AMLM's smoothing come with their presets: the
    strategy names them. A setting that splits one strategy's groups stays."""
    from dmx.report.labels import label_groups

    keys = ["mask.weighting", "mask.mask_token_frac", "mask.adapt_smoothing"]
    groups = [
        {"mask.weighting": "uniform", "mask.mask_token_frac": 0.8, "mask.adapt_smoothing": 0.3},
        {"mask.weighting": "informask", "mask.mask_token_frac": 1.0, "mask.adapt_smoothing": 0.3},
        {"mask.weighting": "amlm", "mask.mask_token_frac": 0.8, "mask.adapt_smoothing": 0.8},
    ]
    strategies = ["dynamic", "informask dynamic", "amlm dynamic"]
    full, short = label_groups(groups, keys, strategies)
    assert short == ["mask=dynamic", "mask=informask dynamic", "mask=amlm dynamic"]
    assert full[1] == (
        "mask=informask dynamic, mask.mask_token_frac=1.0, mask.adapt_smoothing=0.3"
    )  # files keep every differing key
    # Two AMLM groups that differ in smoothing: the setting separates them, so it stays.
    groups.append({**groups[2], "mask.adapt_smoothing": 0.5})
    _, short = label_groups(groups, keys, [*strategies, "amlm dynamic"])
    assert short[2:] == [
        "mask=amlm dynamic, adapt_smoothing=0.8",
        "mask=amlm dynamic, adapt_smoothing=0.5",
    ]
