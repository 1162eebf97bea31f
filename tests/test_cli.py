"""The `dmx` command itself, as a user runs it: a few true end-to-end tests.

Training behaviour is tested in-process (test_train.py); what only a real process shows
is here: exit codes and one-line errors, Hydra's multirun through `dmx sweep`, the sweep
folder the CLI reports on, and a run killed by SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import DMX, TINY, invoke_dmx, run_dmx, tiny

from dmx.common.run_folder import RunLock, read_metrics


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "mask=nonsense"],
            "unknown choice mask=nonsense; choose one of: amlm, corpus_weighted, dynamic, "
            "informask, loss_weighted, pmi, span, static, whole_word",
        ),
        (["train", "mask.prob=1.5"], "mask.prob must be in (0, 1), got 1.5"),
        (["train", "seed=0,1"], "seed=0,1 asks for several runs; use `dmx sweep seed=0,1`"),
        (["sweep", "mask=static,nonsense"], "unknown choice mask=nonsense"),
        (["sweep", "experiment=nope"], "unknown choice experiment=nope; choose one of: "),
        (["report", "no/such/folder"], "no such folder: no/such/folder"),
        (["report", "."], "no runs in ."),
        (["sweep", "--format", "xlsx"], "unknown report format 'xlsx'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = invoke_dmx(*args, cwd=tmp_path, check=False)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"dmx: error: {message}"), line
    assert "Traceback" not in result.stdout
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cfg_job_prints_the_composed_config(tmp_path: Path) -> None:
    result = invoke_dmx("train", "mask=dynamic", "impl.num_workers=2", "--cfg", "job", cwd=tmp_path)
    assert "  copies: null" in result.stdout.splitlines()
    assert "  num_workers: 2" in result.stdout.splitlines()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_version_and_help_show_examples(tmp_path: Path) -> None:
    from dmx import __version__

    assert run_dmx("--version", cwd=tmp_path).stdout == f"dmx {__version__}\n"
    for command in ("train", "sweep", "report"):
        out = run_dmx(command, "--help", cwd=tmp_path).stdout
        assert "Examples" in out and f"dmx {command}" in out


@pytest.mark.slow
def test_default_sweep_is_static_vs_dynamic_over_three_seeds(tmp_path: Path) -> None:
    result = invoke_dmx("sweep", "--cfg", "hydra", "-p", "hydra.sweeper.params", cwd=tmp_path)
    lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert lines == ["mask: static,dynamic", "seed: 0,1,2"]


@pytest.mark.slow
def test_sweep_runs_the_grid_into_its_named_folder_and_reports_failures(tmp_path: Path) -> None:
    """The default experiment (mask in {static, dynamic}) x two cache folders, one of which
    cannot be created: the runs there fail, the others finish, the report (impl.* never
    splits groups) counts one done and one failed run per strategy, and the sweep exits 1
    naming the failed runs, so a script or CI notices."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    result = run_dmx(
        "sweep",
        *tiny("trainer.max_epochs=1"),
        "seed=0",
        f"impl.cache_dir={blocker}/cache,{tmp_path}/cache",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    (folder,) = (tmp_path / "outputs" / "sweeps").iterdir()
    assert folder.name.startswith("static_vs_dynamic_")
    assert f"sweep folder: outputs/sweeps/{folder.name}" in result.stdout
    assert "mask=static(K=1)" in result.stdout  # the report, printed before the exit
    runs = sorted(p.parent for p in folder.rglob("metrics.json"))
    statuses = sorted(read_metrics(r)["status"] for r in runs)
    assert statuses == ["done", "done", "failed", "failed"]
    failed = sorted(
        str(r.relative_to(tmp_path)) for r in runs if read_metrics(r)["status"] == "failed"
    )
    # Where the sweep was, as each run started (console and sweep.log), then its end.
    progress = [line.split(" ", 2)[2] for line in (folder / "sweep.log").read_text().splitlines()]
    assert progress[0] == "sweep: run 1 of 4 (0 done, 0 failed, 4 left)"
    assert [p.split(" (")[0] for p in progress[1:4]] == [f"sweep: run {n} of 4" for n in (2, 3, 4)]
    assert "about " in progress[3] and progress[3].endswith(" left)")
    assert progress[4].startswith("sweep: finished in ")
    assert progress[4].endswith(": 2 done, 2 failed")
    assert "sweep: run 1 of 4 (0 done, 0 failed, 4 left)" in result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"dmx: 2 run(s) of this sweep failed: {', '.join(failed)}; fix the cause and run the "
        "same command again (finished runs are kept)"
    )
    report = run_dmx("report", str(folder), "--format", "json", cwd=tmp_path)
    rows = {r["label"]: r for r in json.loads(report.stdout)}
    assert sorted(rows) == ["mask=dynamic", "mask=static(K=1)"]
    for label, row in rows.items():
        done = next(
            read_metrics(r)
            for r in runs
            if read_metrics(r)["status"] == "done"
            and label.endswith(read_metrics(r)["mask_strategy"])
        )
        assert (row["n"], row["n_failed"]) == (1, 1)
        assert row["final_val_loss"]["mean"] == done["final_val_loss"]
        assert row["failed"][0]["error"].startswith("NotADirectoryError: ")


@pytest.mark.slow
def test_a_run_killed_by_sigkill_is_reported_unfinished(tmp_path: Path) -> None:
    run = tmp_path / "killed"
    process = subprocess.Popen(
        [DMX, "train", *tiny("trainer.max_epochs=500"), f"hydra.run.dir={run}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "history.csv").exists():  # it has trained and validated an epoch
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.2)
        live = json.loads(run_dmx("report", str(run), "--format", "json", cwd=tmp_path).stdout)
        assert (live[0]["n_running"], live[0]["n_unfinished"]) == (1, 0)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert read_metrics(run)["status"] == "running"  # nothing could say otherwise
    dead = json.loads(run_dmx("report", str(run), "--format", "json", cwd=tmp_path).stdout)
    assert (dead[0]["n"], dead[0]["n_running"], dead[0]["n_unfinished"]) == (0, 0, 1)


@pytest.mark.slow
def test_training_into_a_busy_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    run = tmp_path / "busy"
    with RunLock(run):
        result = invoke_dmx("train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path, check=False)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        f"dmx: error: run folder {run} is in use by another dmx process; wait for it to "
        "finish or train into another folder (hydra.run.dir=...)"
    )
    assert not (run / "metrics.json").exists()


def test_train_and_sweep_help_list_every_config_group_with_hydras_own_choices() -> None:
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from typer.testing import CliRunner

    from dmx.cli import app
    from dmx.cli.groups import GROUPS, choices

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="dmx.conf", version_base="1.3"):
            loader = GlobalHydra.instance().config_loader()
            hydras = {group: sorted(loader.get_group_options(group)) for group in GROUPS}
    finally:
        GlobalHydra.instance().clear()
    for group in GROUPS:
        assert choices(group) == hydras[group], group  # the files and the plugins, as Hydra sees
    for command in ("train", "sweep"):
        result = CliRunner().invoke(app, [command, "--help"], prog_name="dmx")
        assert result.exit_code == 0
        text = " ".join(result.stdout.split())  # rich wraps long lines
        assert "Config groups (pick one with group=option, e.g. mask=span):" in text
        for group in GROUPS:
            assert f"{group} {', '.join(choices(group))}" in text, (command, group)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("dmx tr", ["train"]),
        ("dmx train mask=dyn", ["mask=dynamic"]),
        ("dmx sweep hydra/launcher=sub", ["hydra/launcher=submitit_local",
                                         "hydra/launcher=submitit_slurm"]),
        ("dmx train experiment=static_", ["experiment=static_vs_dynamic"]),
        ("dmx train mask.pr", ["mask.prob="]),
        ("dmx sweep model.n_", ["model.n_layers=", "model.n_heads="]),
        ("dmx sweep mo", ["model=", "model.name=", "model.n_layers=", "model.d_model=",
                         "model.n_heads=", "model.d_ff=", "model.max_seq_len=", "model.dropout=",
                         "model.attn_dropout="]),
    ],
)  # fmt: skip
def test_shell_completion_completes_commands_groups_choices_and_settings(
    words: str, expected: list[str]
) -> None:
    """As bash asks for it: the words typed so far, the index of the one to complete."""
    from typer.testing import CliRunner

    from dmx.cli import app

    env = {
        "_DMX_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    result = CliRunner().invoke(app, [], env=env, prog_name="dmx")
    assert result.exit_code == 0
    assert result.stdout.split() == expected
    script = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="dmx")
    assert "complete -o default -F _dmx_completion dmx" in script.stdout


def test_the_progress_line_counts_the_grid_and_estimates_the_time_left(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from dmx.common.files import write_json
    from dmx.run.sweep_progress import grid_size, line, progress

    config = OmegaConf.create(
        {
            "hydra": {
                "overrides": {"task": ["seed=0,1,2", "trainer.max_epochs=2"]},
                "sweeper": {"params": {"mask": "static,dynamic"}},
            }
        }
    )
    assert grid_size(config) == 6
    started = 0.0  # every metrics.json below was written after it
    write_json(tmp_path / "a" / "metrics.json", {"status": "done", "wall_s": 30.0})
    write_json(tmp_path / "b" / "metrics.json", {"status": "failed", "wall_s": 10.0})
    write_json(tmp_path / "c" / "metrics.json", {"status": "running"})
    p = progress(tmp_path, 6, started)
    assert (p.done, p.failed, p.left) == (1, 1, 4)
    assert line(4, p) == "sweep: run 4 of 6 (1 done, 1 failed, 4 left; about 1 min 20 s left)"
    assert line(1, progress(tmp_path / "empty", 6, started)) == (
        "sweep: run 1 of 6 (0 done, 0 failed, 6 left)"
    )


@pytest.mark.slow
def test_impl_threads_leaves_the_run_folders_names_alone(tmp_path: Path) -> None:
    """How many threads a run used changes its speed, not which run it is: a sweep run two at
    a time with a thread each fills the same folders as one run at a time."""
    names = []
    for extra in ([], ["impl.threads=1"]):
        folder = tmp_path / f"sweep{len(extra)}"
        args = tiny("trainer.max_epochs=1", "mask=static,dynamic", "seed=0", *extra)
        invoke_dmx("sweep", *args, f"hydra.sweep.dir={folder}", cwd=tmp_path)
        names.append(sorted(p.parent.name for p in folder.rglob("metrics.json")))
        assert len(names[-1]) == 2
    assert names[0] == names[1]
    ran = [read_metrics(p.parent)["threads"] for p in (tmp_path / "sweep1").rglob("metrics.json")]
    assert ran == [1, 1]


@pytest.mark.parametrize(
    "command", ["train", "sweep", "finetune", "report", "bench", "sync", "export"]
)
def test_help_wraps_cleanly_at_80_columns(command: str) -> None:
    """What `dmx COMMAND --help` shows in an 80-column terminal: no line past 80; prose
    wrapped by width only, so no line of a paragraph ends where its next word would fit (the
    docstring's own line ends re-broken by rich left "not" alone on a line); every example
    on one line, or continued with a backslash."""
    from typer.testing import CliRunner

    from dmx.cli import app

    result = CliRunner().invoke(
        app, [command, "--help"], prog_name="dmx", env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"}
    )
    assert result.exit_code == 0
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert max(len(line) for line in lines) <= 80
    description = lines[: next(i for i, line in enumerate(lines) if line.startswith("╭─"))]
    paragraphs: list[list[str]] = [[]]
    for line in description:
        if line.strip():
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    checked = 0
    for paragraph in (p for p in paragraphs if p and not p[0].startswith("Usage:")):
        if paragraph[0].startswith("dmx "):  # an example
            assert all(line.endswith("\\") for line in paragraph[:-1]), paragraph
        else:
            # A line ends only where the next word would not have fitted (78 columns of text).
            for line, after in zip(paragraph, paragraph[1:], strict=False):
                assert len(line) + 1 + len(after.split()[0]) > 78, (line, after)
            checked += 1
    assert checked >= 1
