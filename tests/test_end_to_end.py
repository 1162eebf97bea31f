"""Real runs through the installed `dmx` command: a run folder, a sweep, its report, W&B."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from conftest import TINY, run_dmx

from dmx.runs import read_metrics

SUMMARY_KEYS = {
    "status",
    "final_val_loss",
    "best_val_loss",
    "final_val_acc",
    "final_val_ppl",
    "final_train_loss",
    "epochs",
    "steps",
    "tokens_seen",
    "wall_s",
    "tokens_per_s",
    "peak_mem_mb",
    "device",
    "seed",
    "versions",
}
TIMINGS = {"wall_s", "train_s", "tokens_per_s", "peak_mem_mb"}


def history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def train(tmp_path: Path, name: str, *overrides: str) -> Path:
    run = tmp_path / name
    run_dmx("train", *TINY, "logger=none", *overrides, f"hydra.run.dir={run}", cwd=tmp_path)
    return run


def sweep(tmp_path: Path, *overrides: str) -> tuple[Path, str]:
    """A one-epoch tiny sweep into tmp_path/sweep; returns the folder and what dmx printed."""
    folder = tmp_path / "sweep"
    result = run_dmx(
        "sweep",
        *overrides,
        *TINY,
        "trainer.max_epochs=1",
        "logger=none",
        f"hydra.sweep.dir={folder}",
        cwd=tmp_path,
    )
    return folder, result.stdout


def test_train_writes_a_complete_run_folder(tmp_path: Path) -> None:
    run = train(tmp_path, "run", "mask=dynamic")
    metrics = read_metrics(run)
    assert SUMMARY_KEYS <= metrics.keys()
    assert metrics["status"] == "done" and metrics["error"] is None
    assert metrics["epochs"] == 2 and metrics["steps"] > 0 and metrics["tokens_seen"] > 0
    assert metrics["best_val_loss"] <= metrics["final_val_loss"]
    assert (
        abs(metrics["final_val_ppl"] - torch.tensor(metrics["final_val_loss"]).exp().item()) < 1e-2
    )
    assert {"torch", "lightning", "python"} <= metrics["versions"].keys()
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[-1]["val_loss"]) == metrics["final_val_loss"]
    config = (run / "config.yaml").read_text()
    assert "name: dynamic" in config and "${" not in config  # resolved, no interpolations
    checkpoint = torch.load(
        run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    assert checkpoint["epoch"] == 1 and any(
        k.startswith("model.") for k in checkpoint["state_dict"]
    )
    assert not list(run.rglob("*.tmp"))  # atomic writes leave no temporary files behind


def test_same_config_and_seed_give_identical_results(tmp_path: Path) -> None:
    first = train(tmp_path, "a", "mask=static", "seed=3")
    second = train(tmp_path, "b", "mask=static", "seed=3")
    strip = lambda m: {k: v for k, v in m.items() if k not in TIMINGS}  # noqa: E731
    assert strip(read_metrics(first)) == strip(read_metrics(second))
    drop = lambda rows: [{k: v for k, v in r.items() if k != "train_s"} for r in rows]  # noqa: E731
    assert drop(history(first)) == drop(history(second))


def test_strategies_share_data_order_and_init_but_not_masks(tmp_path: Path) -> None:
    """At one seed, static and dynamic differ only after the first epoch (same first mask)."""
    static = history(train(tmp_path, "s", "mask=static"))
    dynamic = history(train(tmp_path, "d", "mask=dynamic"))
    assert static[0]["val_loss"] == dynamic[0]["val_loss"]  # epoch 0: both use key 0
    assert static[1]["val_loss"] != dynamic[1]["val_loss"]  # epoch 1: key 0 vs key 1


def test_sweep_runs_the_grid_and_reports_it(tmp_path: Path) -> None:
    folder, printed = sweep(tmp_path, "mask=static,dynamic", "seed=0")
    runs = sorted(p.parent for p in folder.rglob("metrics.json"))
    assert len(runs) == 2
    assert {read_metrics(r)["status"] for r in runs} == {"done"}
    assert "mask.name=static" in printed and "mask.name=dynamic" in printed
    rows = json.loads(run_dmx("report", str(folder), "--format", "json", cwd=tmp_path).stdout)
    assert sorted(r["group"]["mask.name"] for r in rows) == ["dynamic", "static"]
    assert all(r["n"] == 1 and r["final_val_loss"]["mean"] > 0 for r in rows)
    out = tmp_path / "table.csv"
    run_dmx("report", str(folder), "--format", "csv", "-o", str(out), cwd=tmp_path)
    assert out.read_text().startswith("group,")


def test_default_sweep_is_static_vs_dynamic_over_three_seeds(tmp_path: Path) -> None:
    result = run_dmx("sweep", "--cfg", "hydra", "-p", "hydra.sweeper.params", cwd=tmp_path)
    assert "mask: static,dynamic" in result.stdout and "seed: 0,1,2" in result.stdout


def test_wandb_offline_run_is_written_and_sync_command_shown(tmp_path: Path) -> None:
    run = tmp_path / "wb"
    result = run_dmx(
        "train",
        *TINY,
        "trainer.max_epochs=1",
        "logger=wandb",
        "logger.mode=offline",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert list(offline[0].glob("*.wandb")), "no W&B log written"
    assert f"wandb sync {offline[0]}" in result.stdout + result.stderr
    assert read_metrics(run)["status"] == "done"


def test_a_failing_run_is_marked_failed_and_the_sweep_goes_on(tmp_path: Path) -> None:
    """A fault mid-sweep (here: a cache folder that cannot be created) fails those runs only.

    The default experiment also sweeps mask in {static, dynamic}: 2 x 2 runs.
    """
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    folder, printed = sweep(tmp_path, f"data.cache_dir={blocker}/cache,{tmp_path}/cache", "seed=0")
    statuses = sorted(read_metrics(p.parent)["status"] for p in folder.rglob("metrics.json"))
    assert statuses == ["done", "done", "failed", "failed"]
    failed = next(p.parent for p in folder.rglob("metrics.json") if "not-a-folder" in str(p))
    metrics = read_metrics(failed)
    assert metrics["status"] == "failed"
    assert "NotADirectoryError" in metrics["error"]
    assert (failed / "config.yaml").exists()  # what was written before the fault stays
    assert "failed" in printed and "NotADirectoryError" in printed


def test_dynamic_masking_beats_static_when_data_is_reused_for_many_epochs(tmp_path: Path) -> None:
    """The effect dmx exists to measure, at a size a test can afford (about 30 s).

    With one fixed mask per sequence the model starts memorising its training targets
    and validation loss turns up; with a fresh mask each epoch it keeps falling.
    """
    shape = ["model.n_layers=2", "model.d_model=64", "model.d_ff=128", "trainer.max_epochs=20"]
    static = read_metrics(train(tmp_path, "static", "mask=static", *shape))
    dynamic = read_metrics(train(tmp_path, "dynamic", "mask=dynamic", *shape))
    assert dynamic["final_val_loss"] < static["final_val_loss"] - 0.05
    assert static["final_val_loss"] > static["best_val_loss"] + 0.02  # static overfits
    assert static["final_train_loss"] < dynamic["final_train_loss"]  # by memorising


def test_a_nan_loss_fails_the_run_with_the_reason_and_step(tmp_path: Path) -> None:
    run = tmp_path / "nan"
    result = run_dmx(
        "train",
        *TINY,
        "logger=none",
        "optim.lr=1e30",
        "optim.warmup_frac=0",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    metrics = read_metrics(run)
    assert metrics["status"] == "failed"
    assert metrics["error"].startswith("FloatingPointError: loss is nan at step")


def test_a_run_stopped_by_max_steps_is_still_validated(tmp_path: Path) -> None:
    run = train(tmp_path, "steps", "trainer.max_steps=3")
    metrics = read_metrics(run)
    assert metrics["status"] == "done" and metrics["steps"] == 3 and metrics["epochs"] == 1
    assert metrics["final_val_loss"] > 0
    assert len(history(run)) == 1
