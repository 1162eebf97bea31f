"""What the W&B dashboard shows of dmx's runs, read offline from the runs' transaction logs
as W&B's own reader would: groups per experiment cell, job types, names, the history's
keys and x axis, the summary; and `dmx sync`, which uploads a folder's offline runs."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import invoke_dmx, tiny, train_run
from helpers.wandb_records import read_run
from typer.testing import CliRunner

from dmx.cli import app
from dmx.tracking.sync import offline_runs


@pytest.mark.slow
def test_a_sweep_logs_each_cell_as_one_group_and_prints_one_upload_command(
    tmp_path: Path,
) -> None:
    args = tiny("logger=wandb", "mask=static,dynamic", "seed=0,1", "hydra.sweep.dir=sweep")
    result = invoke_dmx("sweep", *args, cwd=tmp_path)
    logs = sorted((tmp_path / "sweep").rglob("offline-run-*/*.wandb"))
    assert len(logs) == 4
    runs = [read_run(log) for log in logs]
    # The seeds of one cell form one group, named after the sweep and the cell.
    assert Counter(r.group for r in runs) == {"sweep/static(K=1)": 2, "sweep/dynamic": 2}
    assert sorted(r.name for r in runs) == [
        "dynamic-s0",
        "dynamic-s1",
        "static(K=1)-s0",
        "static(K=1)-s1",
    ]
    for run in runs:
        assert run.job_type == "pretrain"
        assert {"static_vs_dynamic", "tiny"} <= set(run.tags)
        assert {
            "train/loss",
            "train/lr",
            "train/tokens_seen",
            "train/mask_rate",
            "val/loss",
            "val/acc",
            "val/tokens_seen",
        } <= run.history_keys
        # Plotted against tokens seen by default.
        assert run.step_metrics["train/*"] == "train/tokens_seen"
        assert run.step_metrics["val/*"] == "val/tokens_seen"
        every_train_row = [row for row in run.history if "train/loss" in row]
        assert every_train_row and all("train/tokens_seen" in row for row in every_train_row)
        rates = [row["train/mask_rate"] for row in every_train_row]
        assert all(0.05 < rate < 0.3 for rate in rates)  # the realised rate, about 15%
        # The summary holds metrics.json's final figures.
        assert run.summary["status"] == "done"
        assert {"final_val_loss", "best_val_loss", "tokens_seen", "mask_rate"} <= set(run.summary)
    # One upload command for the sweep, not one per run.
    lines = (result.stdout + result.stderr).splitlines()
    assert "W&B: 4 run(s) saved offline; upload them with: dmx sync sweep" in lines
    assert not any("wandb sync" in line for line in lines)


@pytest.mark.slow
def test_dmx_finetune_logs_a_finetune_run_in_the_pretraining_runs_group(tmp_path: Path) -> None:
    run = tmp_path / "run"
    pretrained = train_run(run, "logger=wandb", "trainer.max_epochs=1")
    task = ["finetune=embedded", "finetune.n_train=32", "finetune.n_dev=16", "finetune.epochs=1"]
    task += ["finetune.lrs=[5e-4]", "finetune.seeds=[0]"]
    result = CliRunner().invoke(app, ["finetune", str(run), *task])
    assert result.exit_code == 0, result.output
    runs = {r.job_type: r for r in map(read_run, sorted(run.rglob("offline-run-*/*.wandb")))}
    assert set(runs) == {"pretrain", "finetune"}
    pre, ft = runs["pretrain"], runs["finetune"]
    assert pre.run_id == pretrained["wandb_id"]
    assert pretrained["wandb_group"] == pre.group == ft.group
    assert ft.name == f"{pretrained['wandb_name']}-finetune"
    metrics = json.loads((run / "metrics.json").read_text())
    assert ft.summary["finetune_acc"] == metrics["finetune_acc"]
    assert "cells/_type" in ft.history_keys  # the protocol's cells as a table


def _offline_run(run_dir: Path, stamp: str, run_id: str) -> Path:
    folder = run_dir / "wandb" / f"offline-run-{stamp}-{run_id}"
    folder.mkdir(parents=True)
    (folder / f"run-{run_id}.wandb").write_bytes(b":W&B")
    return folder


@pytest.fixture
def offline_sweep(tmp_path: Path) -> Path:
    """Two runs saved offline, the first resumed once (a second folder, same id)."""
    sweep = tmp_path / "sweep"
    _offline_run(sweep / "a", "20261130_020000", "aaaa1111")  # resumed: later folder
    _offline_run(sweep / "a", "20261130_010000", "aaaa1111")
    _offline_run(sweep / "b", "20261130_015000", "bbbb2222")
    return sweep


def test_offline_runs_group_a_resumed_runs_folders_in_start_order(offline_sweep: Path) -> None:
    runs = offline_runs(offline_sweep)
    assert [(r.run_id, [f.name for f in r.folders]) for r in runs] == [
        (
            "aaaa1111",
            ["offline-run-20261130_010000-aaaa1111", "offline-run-20261130_020000-aaaa1111"],
        ),
        ("bbbb2222", ["offline-run-20261130_015000-bbbb2222"]),
    ]


@pytest.fixture
def wandb_server() -> Iterator[str]:
    """A local HTTP server standing in for W&B's, so the reachability probe passes."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_dmx_sync_uploads_each_run_once_with_its_id_and_skips_it_after(
    offline_sweep: Path,
    tmp_path: Path,
    wandb_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    stand_in = bin_dir / "wandb"  # records its arguments, then marks the run uploaded as wandb does
    stand_in.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        'shift 3\nfor f in "$@"; do for w in "$f"/*.wandb; do touch "$w.synced"; done; done\n'
    )
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", wandb_server)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    result = CliRunner().invoke(app, ["sync", str(offline_sweep)], prog_name="dmx")
    assert result.exit_code == 0, result.output
    a, b = offline_runs(offline_sweep)
    assert calls.read_text().splitlines() == [
        f"sync --id aaaa1111 {a.folders[0]} {a.folders[1]}",
        f"sync --id bbbb2222 {b.folders[0]}",
    ]
    assert result.stdout.splitlines() == [
        "uploaded aaaa1111 (2 folders)",
        "uploaded bbbb2222 (1 folder)",
        "2 run(s) uploaded, 0 uploaded before, 0 failed",
    ]
    again = CliRunner().invoke(app, ["sync", str(offline_sweep)], prog_name="dmx")
    assert again.stdout.splitlines() == ["0 run(s) uploaded, 2 uploaded before, 0 failed"]
    assert len(calls.read_text().splitlines()) == 2  # nothing uploaded twice


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"WANDB_API_KEY": None},
            "no W&B API key: run `wandb login` or set WANDB_API_KEY, then dmx sync again; "
            "nothing was uploaded",
        ),
        (
            {"WANDB_API_KEY": "0" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"},
            "cannot reach W&B at http://127.0.0.1:9 ([Errno 111] Connection refused); nothing "
            "was uploaded; run dmx sync again when online",
        ),
    ],
    ids=["no key", "no network"],
)
def test_dmx_sync_without_a_key_or_a_network_is_one_line_and_exit_2(
    offline_sweep: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str | None],
    line: str,
) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["sync", str(offline_sweep)], prog_name="dmx")
    assert result.exit_code == 2
    assert result.stderr == f"dmx: error: {line}\n"
    assert not any(offline_sweep.rglob("*.synced"))
