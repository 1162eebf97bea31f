"""`dmx sweep` through Hydra's launchers: joblib (runs side by side on one machine),
submitit_local (runs as subprocesses) and dmx's SLURM preset (hydra/launcher=slurm).

A launcher decides where and when runs execute, never what they compute: each sweep here is
the same two-run grid, and every run must match its twin from the basic launcher bit for
bit. Each sweep gets its own empty corpus cache, so the parallel jobs also build it at the
same time, as the first parallel sweep on a new machine does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY, run_dmx

from dmx.common.errors import UserError
from dmx.common.run_folder import read_metrics
from dmx.config.validate import check_overrides, compose_config

# Two runs whose results differ (static masking reuses epoch 1's masks in epoch 2, dynamic
# draws new ones), so a run that picked up its twin's result or config would show.
GRID = [*TINY, "mask=static,dynamic", "seed=0"]
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def _sweep(root: Path, *launcher: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any], str]:
    """One `dmx sweep` of GRID into root/sweep: its runs' metrics by mask strategy, its
    closing report (as JSON) by group label, and everything it printed."""
    root.mkdir()
    folder = root / "sweep"
    result = run_dmx(
        "sweep",
        *GRID,
        *launcher,
        f"impl.cache_dir={root / 'cache'}",
        f"hydra.sweep.dir={folder}",
        "--format",
        "json",
        cwd=root,
    )
    # Hydra logs to stdout too; the report is all that follows the sweep folder's line.
    report = json.loads(result.stdout.split(f"sweep folder: {folder}\n", 1)[1])
    runs = [read_metrics(path.parent) for path in folder.rglob("metrics.json")]
    return (
        {run["mask_strategy"]: run for run in runs},
        {row["label"]: row for row in report},
        result.stdout + result.stderr,
    )


@pytest.fixture(scope="module")
def basic_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The grid run one run after another in the CLI's process: the reference."""
    runs, _, _ = _sweep(tmp_path_factory.mktemp("basic") / "basic")
    return runs


@pytest.mark.slow
@pytest.mark.parametrize(
    ("launcher", "log_line"),
    [
        (
            ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
            "Joblib.Parallel(n_jobs=2,",
        ),
        (
            ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"],
            "Submitit 'local' sweep output dir",
        ),
    ],
    ids=["joblib", "submitit_local"],
)
def test_a_parallel_sweep_finishes_every_run_with_the_basic_launchers_results(
    launcher: list[str],
    log_line: str,
    basic_sweep: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> None:
    runs, report, printed = _sweep(tmp_path / "parallel", *launcher)
    assert log_line in printed  # the launcher asked for ran the sweep, not the basic one
    assert sorted(runs) == sorted(basic_sweep) == ["dynamic", "static(K=1)"]
    assert sorted(report) == ["mask=dynamic", "mask=static(K=1)"]
    for strategy, run in runs.items():
        assert run["status"] == "done", run["error"]
        assert run["final_val_loss"] == basic_sweep[strategy]["final_val_loss"]
        row = report[f"mask={strategy}"]
        assert (row["n"], row["n_failed"]) == (1, 0)
        assert row["final_val_loss"]["mean"] == run["final_val_loss"]
    assert runs["static(K=1)"]["final_val_loss"] != runs["dynamic"]["final_val_loss"]


def test_the_slurm_preset_extends_submitit_slurm_with_one_gpu_per_run() -> None:
    from hydra.plugins.launcher import Launcher
    from hydra.utils import get_class

    cfg = compose_config(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], with_hydra=True)
    launcher = cfg.hydra.launcher
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "slurm"
    assert launcher._target_ == SLURM_LAUNCHER
    # Hydra's plugin scan may load the plugin's module a second time, so its classes are
    # compared by what they are, not by identity.
    cls = get_class(launcher._target_)
    assert issubclass(cls, Launcher) and cls._EXECUTOR == "slurm"
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (1, 1, 1)
    assert launcher.partition == "gpu"
    assert launcher.timeout_min > 0 and launcher.cpus_per_task > 0 and launcher.mem_gb > 0
    assert launcher.array_parallelism > 1
    # A run that reaches the time limit saves a checkpoint and is requeued (dmx.run.stops).
    assert launcher.max_num_timeout > 0 and launcher.signal_delay_s > 0
    assert launcher.name == "dmx_default"  # squeue names the experiment


@pytest.mark.slow
def test_a_slurm_sweep_submits_one_array_of_single_gpu_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path to the cluster without one: a stand-in `sbatch` keeps the script that
    dmx -> Hydra -> submitit hands it, then refuses the job, so nothing runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = tmp_path / "submitted.sh"
    for name, body in [("srun", "exit 0"), ("sbatch", f'cp "$1" {script}; exit 1')]:
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    run_dmx(
        "sweep",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "impl.accelerator=gpu",  # the login node need not have one
        "logger=none",
        "seed=0",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
        check=False,
    )
    lines = script.read_text().splitlines()
    for wanted in (
        "#SBATCH --array=0-1%2",  # static and dynamic, both at once (16 allowed)
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32GB",
        "#SBATCH --time=360",
        "#SBATCH --job-name=dmx_static_vs_dynamic",
        "#SBATCH --signal=USR2@120",  # what dmx.run.stops hands to submitit, for a requeue
    ):
        assert wanted in lines, script.read_text()


@pytest.mark.slow
def test_launcher_choices_and_settings_are_checked_before_anything_runs() -> None:
    first = check_overrides(
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "mask=static,dynamic"],
        multirun=True,
    )
    assert first == ["hydra/launcher=joblib", "mask=static"]
    check_overrides(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], multirun=True)
    with pytest.raises(UserError, match="unknown choice hydra/launcher=nope; choose one of: "):
        check_overrides(["hydra/launcher=nope"], multirun=True)
    with pytest.raises(UserError, match="Key 'n_jobz' not in 'JobLibLauncherConf'"):
        check_overrides(["hydra/launcher=joblib", "hydra.launcher.n_jobz=2"], multirun=True)
    for swept in ("hydra/launcher=joblib,basic", "hydra.launcher.n_jobs=1,2"):
        with pytest.raises(UserError, match="Hydra's own settings cannot be swept"):
            check_overrides(["hydra/launcher=joblib", swept], multirun=True)


@pytest.mark.slow
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_a_slurm_sweep_may_ask_for_a_gpu_this_machine_lacks() -> None:
    """A SLURM sweep is submitted from a login node without GPUs, to nodes with them; the
    same request with a launcher that runs here is still refused at start."""
    gpu = ["impl.accelerator=gpu", "seed=0,1"]
    check_overrides(["hydra/launcher=slurm", *gpu], multirun=True)
    for here in ("basic", "joblib", "submitit_local"):
        with pytest.raises(UserError, match="no CUDA GPU is visible"):
            check_overrides([f"hydra/launcher={here}", *gpu], multirun=True)
    with pytest.raises(UserError, match="no CUDA GPU is visible"):  # a single run runs here
        check_overrides(["hydra/launcher=slurm", "impl.accelerator=gpu"], multirun=False)


@pytest.mark.slow
def test_a_misspelt_launcher_setting_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_dmx(
        "sweep", "hydra/launcher=joblib", "hydra.launcher.n_jobz=2", cwd=tmp_path, check=False
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("dmx: error: Could not override 'hydra.launcher.n_jobz'"), line
    assert list(tmp_path.iterdir()) == []
