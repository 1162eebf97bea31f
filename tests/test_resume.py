"""Crash and resume: a run stopped part-way and started again ends exactly where an
uninterrupted run ends, to the bit on a CPU; a finished run trains nothing; checkpoints
load safely or not at all."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import DMX, RESUME_FIELDS, TIMINGS, invoke_dmx, make_config, run_dmx, tiny

from dmx.common.errors import UserError
from dmx.common.run_folder import RunLock, read_metrics, step_checkpoints
from dmx.run.callbacks import RunFolder
from dmx.run.stops import Stop
from dmx.run.train import train

EVERY = "impl.checkpoint_every_n_steps=4"
LONGER = "trainer.max_epochs=3"  # 18 steps per epoch at TINY's corpus and batch


class Crash(Exception):
    pass


def _crash_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """A fault right after optimiser step ``step`` (its checkpoint, if due, is written)."""
    original = RunFolder.on_train_batch_end

    def crashing(self: RunFolder, trainer: Any, *args: Any) -> None:
        original(self, trainer, *args)
        if trainer.global_step == step:
            raise Crash(f"simulated fault at step {step}")

    monkeypatch.setattr(RunFolder, "on_train_batch_end", crashing)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    skip = TIMINGS | RESUME_FIELDS
    return {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip
    }


def _history(run: Path) -> list[str]:
    # Every column but the last (train_s, a timing).
    return [line.rsplit(",", 1)[0] for line in (run / "history.csv").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "crash"),
    [
        (["mask=dynamic"], 10),  # mid-epoch: resumes from step 8, inside epoch 1
        (["mask=dynamic", "impl.num_workers=2"], 11),  # the loader's workers start again
        # Validation within the epoch (at steps 9, 18, ...): from step 8, before one.
        (["mask=dynamic", "trainer.val_check_interval=0.5"], 10),
        # Two batches per step (9 steps an epoch): saved only between steps, at step 4.
        (["mask=dynamic", "trainer.accumulate_grad_batches=2"], 5),
        (["mask=dynamic"], 19),  # just past an epoch: resumes from its end (step 18)
        (["mask=static", "mask.copies=2", "attention=random_dynamic"], 21),
        (["mask=span", "rate=ankner_linear"], 30),
        (["attention=learned_gate", "finetune=embedded", "finetune.epochs=1"], 10),
        # AMLM's rate table and its half-filled window come back from step 8.
        (["mask=amlm", "mask.adapt_every=3"], 10),
        (["mask=pmi", "mask.pmi_min_count=3", "mask.copies=2"], 21),
    ],
)
def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str], crash: int
) -> None:
    config = make_config(EVERY, LONGER, *overrides)
    whole = train(config, tmp_path / "whole")
    with monkeypatch.context() as patch:
        _crash_at(patch, crash)
        with pytest.raises(Crash):
            train(config, tmp_path / "cut")
    assert read_metrics(tmp_path / "cut")["status"] == "failed"
    resumed = train(config, tmp_path / "cut")
    assert resumed["status"] == "done"
    assert resumed["resumed_from_step"] == max(s for s in (crash // 4 * 4, 18) if s <= crash)
    assert whole["resumed_from_step"] == 0
    assert (resumed["attempts"], whole["attempts"]) == (2, 1)
    assert _same(resumed, whole)
    assert _history(tmp_path / "cut") == _history(tmp_path / "whole")


def _signal_at(monkeypatch: pytest.MonkeyPatch, step: int, *signums: int) -> None:
    """``signums`` sent to this process as the step after optimiser step ``step`` begins."""
    original = RunFolder.on_train_batch_start

    def signalling(self: RunFolder, trainer: Any, *args: Any) -> None:
        if trainer.global_step == step:
            for signum in signums:
                os.kill(os.getpid(), signum)
        original(self, trainer, *args)

    monkeypatch.setattr(RunFolder, "on_train_batch_start", signalling)


def test_a_signal_waits_for_the_step_inside_the_loop_and_stops_at_once_outside_it() -> None:
    from dmx.run import stops

    before = signal.getsignal(signal.SIGTERM)
    with stops.catching():
        stops.defer(True)  # inside the training loop
        os.kill(os.getpid(), signal.SIGTERM)
        assert stops.pending() == signal.SIGTERM  # asked, not raised
        with pytest.raises(Stop):  # again: the user insists
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before and stops.pending() is None
    # What SIGINT does before depends on how the tests were started (a job started in the
    # background by a shell ignores it): the handler is given back, whatever it was.
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(Stop) as stopped, stops.catching():
        os.kill(os.getpid(), signal.SIGINT)  # outside the loop nothing is lost by stopping
    assert stopped.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) == before


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_epoch_stops_at_that_step_and_the_run_continues_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    config = make_config(LONGER)  # no periodic checkpoints: the stop saves its own
    whole = train(config, tmp_path / "whole")
    before = signal.getsignal(signum)
    with monkeypatch.context() as patch:
        _signal_at(patch, 22, signum)  # in epoch 2 (18 steps an epoch)
        with pytest.raises(Stop) as stopped:
            train(config, tmp_path / "cut")
    assert stopped.value.signum == signum and stopped.value.exit_code == 128 + signum
    assert signal.getsignal(signum) == before  # the handlers are given back
    cut = read_metrics(tmp_path / "cut")
    assert cut["status"] == "interrupted"
    assert cut["error"] == f"Stop: stopped by {signal.Signals(signum).name}"
    # The step under way finished and was saved: nothing trained is lost.
    assert [p.name for p in step_checkpoints(tmp_path / "cut")] == [
        "step-000000023.ckpt",
        "step-000000018.ckpt",
    ]
    resumed = train(config, tmp_path / "cut")
    assert resumed["status"] == "done" and resumed["resumed_from_step"] == 23
    assert _same(resumed, whole)
    assert _history(tmp_path / "cut") == _history(tmp_path / "whole")


@pytest.mark.slow
def test_a_second_signal_stops_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        _signal_at(patch, 22, signal.SIGINT, signal.SIGINT)
        with pytest.raises(Stop):
            train(make_config(LONGER), tmp_path / "cut")
    assert read_metrics(tmp_path / "cut")["status"] == "interrupted"
    # Stopped inside step 23, before it ended: the last checkpoint is epoch 1's.
    assert [p.name for p in step_checkpoints(tmp_path / "cut")] == ["step-000000018.ckpt"]


@pytest.mark.slow
def test_submitits_timeout_signal_saves_the_step_then_hands_over_to_submitit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under submitit, USR2 before the time limit: the step's checkpoint first, then
    submitit's own handler (which requeues the job and exits), called once."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    calls: list[int] = []

    def submitit_handler(signum: int, frame: Any) -> None:  # as submitit's: requeue, exit
        calls.append(signum)
        raise SystemExit(-1)

    previous = signal.signal(signal.SIGUSR2, submitit_handler)
    try:
        with monkeypatch.context() as patch:
            _signal_at(patch, 5, signal.SIGUSR2)
            with pytest.raises(SystemExit) as exited:
                train(make_config(), tmp_path / "run")
        assert signal.getsignal(signal.SIGUSR2) is submitit_handler
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert exited.value.code == -1 and calls == [signal.SIGUSR2]
    assert read_metrics(tmp_path / "run")["status"] == "interrupted"
    assert [p.name for p in step_checkpoints(tmp_path / "run")] == ["step-000000006.ckpt"]
    assert train(make_config(), tmp_path / "run")["resumed_from_step"] == 6  # the requeued job


@pytest.mark.slow
def test_kill_term_mid_epoch_exits_143_and_the_printed_command_finishes_it(
    tmp_path: Path,
) -> None:
    """Through the CLI, as a scheduler stops a job: exit 143 (128 + SIGTERM), a checkpoint
    at the step it stopped, the command that continues it; that command finishes the run
    exactly as an uninterrupted one. (SIGKILL, which nothing can catch, is the sweep test's.)"""
    run_dir = tmp_path / "run"
    args = tiny(LONGER, "mask=dynamic", "impl.checkpoint_every_n_steps=20")
    proc = subprocess.Popen(
        [DMX, "train", *args, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "step-000000020.ckpt").exists():  # inside epoch 2
        assert proc.poll() is None and time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output
    cut = read_metrics(run_dir)
    assert cut["status"] == "interrupted"
    step = int(step_checkpoints(run_dir)[0].stem.split("-")[1])
    assert step >= 20  # at step 20 or a little later (a busy machine)
    line = next(line for line in output.splitlines() if "continue it with:" in line)
    assert f"stopped by SIGTERM: run {run_dir} interrupted at step {step} (checkpoint" in line
    command = line.split("continue it with: ", 1)[1].split()
    assert command[:2] == ["dmx", "train"] and command[-1] == f"hydra.run.dir={run_dir}"
    run_dmx(*command[1:], cwd=tmp_path)
    resumed = read_metrics(run_dir)
    whole = train(make_config(LONGER, "mask=dynamic"), tmp_path / "whole")
    assert resumed["status"] == "done" and resumed["resumed_from_step"] == step
    assert _same(resumed, whole)
    assert _history(run_dir) == _history(tmp_path / "whole")


@pytest.mark.slow
def test_a_finished_run_started_again_trains_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config()
    first = train(config, tmp_path / "run")
    stamp = (tmp_path / "run" / "metrics.json").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="dmx"):
        again = train(config, tmp_path / "run")
    assert again == first
    assert (tmp_path / "run" / "metrics.json").stat().st_mtime_ns == stamp
    assert "holds a finished run; nothing to train" in caplog.text
    fresh = train(make_config("resume=false"), tmp_path / "run")  # trains it again
    assert fresh["resumed_from_step"] == 0 and _same(fresh, first)


@pytest.mark.slow
def test_checkpoints_keep_the_newest_few(tmp_path: Path) -> None:
    train(make_config("impl.checkpoint_every_n_steps=2", "impl.keep_checkpoints=3"), tmp_path)
    folder = tmp_path / "checkpoints"
    steps = sorted(p.name for p in folder.glob("step-*.ckpt"))
    assert steps == ["step-000000032.ckpt", "step-000000034.ckpt", "step-000000036.ckpt"]
    assert os.path.samefile(folder / "last.ckpt", folder / "step-000000036.ckpt")
    assert not list(folder.glob(".*"))  # no temporary file left behind


def test_resume_true_with_nothing_to_resume_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"resume=true but .* holds no checkpoint"):
        train(make_config("resume=true"), tmp_path / "run")


@pytest.mark.slow
def test_another_experiment_is_not_resumed_into_a_folder(tmp_path: Path) -> None:
    train(make_config(), tmp_path / "run")
    with pytest.raises(UserError, match=r"holds a run with another config; .* resume=false"):
        train(make_config("mask.prob=0.3"), tmp_path / "run")
    # How a run executes is not the experiment: another impl setting is the same run.
    assert train(make_config("impl.num_workers=0", "impl.keep_checkpoints=5"), tmp_path / "run")


def _cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    with monkeypatch.context() as patch:
        _crash_at(patch, 10)
        with pytest.raises(Crash):
            train(make_config(EVERY, LONGER), tmp_path / "cut")
    return tmp_path / "cut" / "checkpoints"


@pytest.mark.slow
def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _cut(tmp_path, monkeypatch)
    newest = folder / "step-000000008.ckpt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    resumed = train(make_config(EVERY, LONGER), tmp_path / "cut")
    assert resumed["status"] == "done" and resumed["resumed_from_step"] == 4


@pytest.mark.slow
def test_no_loadable_checkpoint_is_one_line_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _cut(tmp_path, monkeypatch)
    for path in folder.glob("step-*.ckpt"):
        path.write_bytes(b"not a checkpoint")
    before = {p.name: p.read_bytes() for p in (tmp_path / "cut").rglob("*") if p.is_file()}
    with pytest.raises(UserError, match=r"no checkpoint in .* loads .* add resume=false"):
        train(make_config(EVERY, LONGER), tmp_path / "cut")
    after = {p.name: p.read_bytes() for p in (tmp_path / "cut").rglob("*") if p.is_file()}
    assert after == before


class _Exploit:
    """A pickle that runs code when unpickled, as a crafted checkpoint would."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_a_crafted_checkpoint_cannot_run_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _cut(tmp_path, monkeypatch)
    marker = tmp_path / "pwned"
    crafted = folder / "step-000000099.ckpt"  # the newest: tried first
    with crafted.open("wb") as f:
        pickle.dump({"global_step": 99, "state_dict": _Exploit(marker)}, f)
    resumed = train(make_config(EVERY, LONGER), tmp_path / "cut")
    assert not marker.exists()
    assert resumed["resumed_from_step"] == 8  # it was skipped as unloadable


@pytest.mark.slow
def test_resume_is_recorded_in_metrics_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cut(tmp_path, monkeypatch)
    train(make_config(EVERY, LONGER), tmp_path / "cut")
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 8


@pytest.mark.slow
def test_a_sweep_started_again_trains_only_what_did_not_finish(tmp_path: Path) -> None:
    """Killed during its second run, the same `dmx sweep` command leaves the finished run
    alone, resumes the other from its checkpoint, and reports both; --force trains all."""
    args = tiny("seed=0", "impl.checkpoint_every_n_steps=3", "trainer.max_epochs=6")
    proc = subprocess.Popen(
        [DMX, "sweep", *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    sweeps = tmp_path / "outputs" / "sweeps"
    deadline = time.monotonic() + 180

    def checkpointed_runs() -> int:
        return len({p.parent.parent for p in sweeps.rglob("checkpoints/step-*.ckpt")})

    while checkpointed_runs() < 2:  # the second run has written a checkpoint
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended first"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (folder,) = sweeps.iterdir()
    runs = sorted(p.parent for p in folder.rglob("metrics.json"))
    assert sorted(read_metrics(r)["status"] for r in runs) == ["done", "running"]
    finished = next(r for r in runs if read_metrics(r)["status"] == "done")
    stamp = (finished / "metrics.json").stat().st_mtime_ns

    result = run_dmx("sweep", *args, cwd=tmp_path)
    assert f"sweep folder: outputs/sweeps/{folder.name}" in result.stdout
    assert (finished / "metrics.json").stat().st_mtime_ns == stamp  # not trained again
    after = {r: read_metrics(r) for r in runs}
    assert all(m["status"] == "done" for m in after.values())
    assert [m["resumed_from_step"] > 0 for r, m in after.items() if r != finished] == [True]
    assert "mask=dynamic" in result.stdout and "static(K=1)" in result.stdout

    run_dmx("sweep", *args, "--force", cwd=tmp_path)
    assert (finished / "metrics.json").stat().st_mtime_ns != stamp
    assert all(read_metrics(r)["resumed_from_step"] == 0 for r in runs)
    assert list(sweeps.iterdir()) == [folder]  # --force trains in the same folder


@pytest.mark.slow
def test_two_sweeps_into_one_folder_train_each_run_once(tmp_path: Path) -> None:
    """The same `dmx sweep` in two terminals at once: however the two processes interleave,
    each run is trained by exactly one of them, once, and both reports show the whole
    sweep. (Which process trains which run, and whether one ever finds a run the other
    holds, depends on scheduling: the test below makes that case happen on purpose.)"""
    args = tiny("seed=0,1", "trainer.max_epochs=3", "hydra.sweep.dir=sweep")
    procs = [
        subprocess.Popen(
            [DMX, "sweep", *args],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    runs = sorted(p.parent for p in (tmp_path / "sweep").rglob("metrics.json"))
    assert len(runs) == 4
    for run in runs:
        metrics = read_metrics(run)
        # One process trained it, at one go: the other found it busy or finished.
        assert (metrics["status"], metrics["attempts"], metrics["resumed_from_step"]) == (
            "done",
            1,
            0,
        ), run
    for out in outputs:  # each report has every run: 2 groups of n = 2
        assert re.search(r"^mask=dynamic +2 ", out, re.MULTILINE), out
        assert re.search(r"^mask=static\(K=1\) +2 ", out, re.MULTILINE), out


@pytest.mark.slow
def test_a_sweep_leaves_a_run_another_process_holds_and_waits_for_it(tmp_path: Path) -> None:
    """A run of the sweep that another process holds (its lock taken, here by the test) is
    left to it with one warning; the sweep goes on, then waits for the lock before it
    reports. Sequenced by what the sweep prints, not by time."""
    args = tiny("seed=0,1", "hydra.sweep.dir=sweep")
    invoke_dmx("sweep", *args, cwd=tmp_path)
    runs = sorted(p.parent for p in (tmp_path / "sweep").rglob("metrics.json"))
    held, before = runs[0], {run: read_metrics(run) for run in runs}
    lock = RunLock(held)
    lock.acquire()
    proc = subprocess.Popen(
        [DMX, "sweep", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("waiting for 1 run(s) another dmx process is training here"):
                break
    finally:
        lock.release()
    rest, _ = proc.communicate(timeout=300)
    output = "".join(seen) + rest
    assert proc.returncode == 0, output
    assert f"run {held} is being trained by another dmx process; this sweep goes on" in output
    assert {run: read_metrics(run) for run in runs} == before  # nothing trained again
    assert re.search(r"^mask=dynamic +2 ", output, re.MULTILINE), output


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides",
    [
        ["mask=dynamic"],
        ["mask=span"],
        ["mask=whole_word", "mask.count=fixed"],
        ["rate=ankner_linear"],
        *([f"attention={p}"] for p in ("causal", "window", "block_sparse", "random_static")),
        ["attention=random_dynamic"],
        ["attention=learned_gate"],
        ["finetune=embedded", "finetune.epochs=1"],
        ["mask=pmi", "mask.pmi_min_count=3"],
        ["mask=informask"],
        ["mask=loss_weighted", "mask.adapt_every=4"],
        ["mask=amlm", "mask.adapt_every=4"],
    ],
)
def test_the_same_config_and_seed_give_the_same_numbers(
    tmp_path: Path, overrides: list[str]
) -> None:
    config = make_config("seed=1", *overrides)
    first, second = train(config, tmp_path / "a"), train(config, tmp_path / "b")
    assert _same(first, second)
    assert _history(tmp_path / "a") == _history(tmp_path / "b")


@pytest.mark.slow
def test_a_run_records_what_makes_it_reproducible(tmp_path: Path, cache_dir: Path) -> None:
    import yaml

    from dmx.data.corpus import load_corpus

    summary = train(make_config(), tmp_path / "run")
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["seed"] == 0 and config["resume"] == "auto"  # the resolved config
    assert summary["corpus_fingerprint"] == load_corpus(make_config().data, cache_dir).fingerprint
    assert {"torch", "lightning", "dmx"} <= summary["versions"].keys()
    git = summary["git"]  # this checkout is a git repository
    assert re.fullmatch(r"[0-9a-f]{40}", git["commit"]) and isinstance(git["dirty"], bool)
    assert summary["hardware"]["cpu_cores"] == os.cpu_count() and summary["hardware"]["cpu"]


@pytest.mark.slow
def test_a_resumed_run_logs_into_the_same_wandb_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(EVERY, LONGER, "logger=wandb")
    with monkeypatch.context() as patch:
        _crash_at(patch, 10)
        with pytest.raises(Crash):
            train(config, tmp_path / "cut")
    first_id = read_metrics(tmp_path / "cut")["wandb_id"]
    resumed = train(config, tmp_path / "cut")
    assert resumed["status"] == "done" and resumed["wandb_id"] == first_id
    runs = sorted(p.name for p in (tmp_path / "cut" / "wandb").glob("offline-run-*"))
    # offline-run-<time>-<id>, and W&B adds "-1" when both started within one second.
    assert len(runs) == 2 and all(f"-{first_id}" in name for name in runs)
