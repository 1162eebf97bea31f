"""Every bad input caught: one line on stderr naming the fix, exit code 2, no traceback,
nothing marked done, nothing earlier lost.

A catalog of the mistakes the issue lists. Many are tested beside the code that catches
them; the rest are here. Where each one is tested:

1. unknown option (`dmx train --bogus`, `dmx report DIR --bogus`): here. Unknown group
   choice (mask=nonsense): test_cli.py, test_config.py. Unknown key (mask.nonsense=1): here;
   test_config.py (mask.unknown=1 and others).
2. out of range: mask.prob=0, mask.prob=1.5, mask.copies=0 in test_config.py (mask.prob=1.5
   also through the CLI in test_cli.py); trainer.max_epochs=-1 here.
3. data.seq_len above the model's maximum: here; test_config.py (data.seq_len=512).
4. corpus files: missing, empty, binary (a NUL byte), not UTF-8 (latin-1), smaller than one
   batch in test_corpora.py; unreadable, a PNG, and a bad corpus through `dmx train` here.
5. a TSV without its label column, or not UTF-8: here (test_finetune.py has the text
   column); a single class: test_finetune.py, also through a run.
6. experiment=nope: test_cli.py, test_config.py.
7. `dmx report` on a folder with no runs: test_cli.py, test_report.py; --baseline naming
   what no group has: test_report_stats.py (in process and through the CLI).
8. a corrupt metrics.json among good ones: test_report.py; through the CLI here.
9. W&B online without a network falls back to offline: here.
10. a GPU that is not there, more devices than are visible: here; test_config.py.
11. the disk filling mid-write (metrics.json, a checkpoint): here. A read-only output folder,
    or a file where it should be: the catalog (13).
12. a truncated or corrupt checkpoint: test_resume.py.
13. the catalog: 45 mistakes through train, sweep, report, bench, finetune and export, each
    with its exact line, exit 2 and nothing left behind (MISTAKES, at the end).
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import invoke_dmx, make_config, run_dmx, tiny, train_run

from dmx.common import run_folder as runs
from dmx.common.errors import UserError
from dmx.common.files import atomic_write_text, write_json
from dmx.common.run_folder import CONFIG_FILE, METRICS_FILE, read_metrics
from dmx.config.validate import check_overrides
from dmx.data.task_readers import read_tsv
from dmx.data.text_source import FORMATS_HINT


def one_error_line(result: Any) -> str:
    """The run failed as a user's mistake: exit code 2, one line, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("dmx: error: "), line
    return line.removeprefix("dmx: error: ")


# --- 1. unknown options, choices and keys, through the command ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--bogus"], "no such option: --bogus; see `dmx train --help`"),
        (["sweep", "--bogus"], "no such option: --bogus; see `dmx sweep --help`"),
        (
            ["train", "bogus"],
            "'bogus' is not an override; give key=value (e.g. mask=dynamic); "
            "see `dmx train --help`",
        ),
        (
            ["train", "--cfg", "nope"],
            "argument --cfg/-c: invalid choice: 'nope' (choose from 'job', 'hydra', 'all'); "
            "see `dmx train --help`",
        ),
        (
            ["train", "-m", "--cfg", "job"],
            "give only one of --run, --multirun, --cfg, --info and --shell-completion; "
            "see `dmx train --help`",
        ),
        (["report", ".", "--bogus"], "no such option: --bogus; see `dmx report --help`"),
        (["report"], "missing argument 'folder'; see `dmx report --help`"),
        (["--bogus"], "no such option: --bogus; see `dmx --help`"),
        (["nosuch"], "no such command 'nosuch'; see `dmx --help`"),
        (
            ["train", "+mask.nonsense=1"],
            "mask.nonsense is not a dmx setting; mask has: unit, copies, prob, count, "
            "mask_token_frac, random_token_frac, schedule, schedule_start, schedule_end, "
            "span_p, span_max, pmi_ngram_max, pmi_min_count, pmi_vocab_size, weighting, "
            "corpus_weight_by, corpus_window, informask_samples, weight_min, weight_max, "
            "adapt_every, adapt_smoothing, adapt_power, amlm_floor",
        ),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_bad_option_or_key_is_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    assert one_error_line(run_dmx(*args, cwd=tmp_path, check=False)) == message
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing written


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["mask.nonsense=1"],
            "mask.nonsense is not a dmx setting; mask has: unit, copies, prob, count, "
            "mask_token_frac, random_token_frac, schedule, schedule_start, schedule_end, "
            "span_p, span_max",
        ),
        (
            ["nonsense=1"],
            "nonsense is not a dmx setting; the config has: seed, resume, experiment_name, "
            "untrained_control, model, data, mask, attention, finetune, eval, optim, trainer, "
            "impl, logger",
        ),
        # Hydra's `+` adds a key the schema lacks; it must not be dropped without a word.
        (["++data.nonsense=1"], "data.nonsense is not a dmx setting; data has: source, name,"),
        # 2. and 3. values out of range
        (["trainer.max_epochs=-1"], "trainer.max_epochs must be >= 0, got -1"),
        (
            ["data.seq_len=256", "model.max_seq_len=128"],
            "data.seq_len (256) exceeds model.max_seq_len (128); lower data.seq_len or pick "
            "a larger model",
        ),
    ],
)
def test_unknown_keys_and_values_out_of_range_say_what_to_fix(
    overrides: list[str], message: str
) -> None:
    with pytest.raises(UserError) as caught:
        check_overrides(overrides, multirun=False)
    assert str(caught.value).startswith(message)


# --- 4. corpus files -------------------------------------------------------------------------


def text_corpus(path: Path) -> list[str]:
    return ["data=text", f"data.path={path}", "data.val_frac=0.2", "data.batch_size=2"]


@pytest.mark.slow
def test_a_png_as_the_corpus_fails_the_run_with_one_line(tmp_path: Path) -> None:
    png = tmp_path / "corpus.txt"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    run = tmp_path / "run"
    with pytest.raises(UserError) as caught:
        train_run(run, *text_corpus(png))
    assert str(caught.value) == (
        f"{png} is not UTF-8 text (a NUL byte at offset 8); convert it to UTF-8 or point "
        f"data.path at {FORMATS_HINT}"
    )
    assert not (run / METRICS_FILE).exists() and not (run / CONFIG_FILE).exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_corpus_is_one_line(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text\n\nmore text\n")
    corpus.chmod(0)
    try:
        with pytest.raises(UserError) as caught:
            train_run(tmp_path / "run", *text_corpus(corpus))
    finally:
        corpus.chmod(0o644)
    assert str(caught.value) == (
        f"{corpus} cannot be read (Permission denied); give dmx read permission (chmod +r) "
        "or point data.path at another file"
    )


def test_a_corpus_that_cannot_be_opened_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the test above, where root runs it: the file refuses to open."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text\n\nmore text\n")
    opened = Path.open

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == corpus:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return opened(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(UserError) as caught:
        train_run(tmp_path / "run", *text_corpus(corpus))
    assert str(caught.value) == (
        f"{corpus} cannot be read (Permission denied); give dmx read permission (chmod +r) "
        "or point data.path at another file"
    )


@pytest.mark.slow
def test_a_bad_corpus_through_dmx_train_is_one_line_and_no_run_is_done(tmp_path: Path) -> None:
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes("caf\u00e9 au lait\n\nune tarte\n".encode("latin-1"))
    run = tmp_path / "run"
    result = invoke_dmx(
        "train", *tiny(*text_corpus(corpus)), f"hydra.run.dir={run}", cwd=tmp_path, check=False
    )
    assert one_error_line(result) == (
        f"{corpus} is not UTF-8 text (invalid byte at offset 3); convert it to UTF-8 or point "
        f"data.path at {FORMATS_HINT}"
    )
    assert not run.exists()  # a mistake leaves no run folder behind
    # The corrected command, in the same folder, trains (no resume=false needed).
    corpus.write_text("café au lait\n\nune tarte\n\n" * 20, encoding="utf-8")
    invoke_dmx("train", *tiny(*text_corpus(corpus)), f"hydra.run.dir={run}", cwd=tmp_path)
    assert read_metrics(run)["status"] == "done"


# --- 5. fine-tuning data ---------------------------------------------------------------------


def test_a_tsv_without_its_label_column_fails_before_pretraining(tmp_path: Path) -> None:
    tsv = tmp_path / "train.tsv"
    tsv.write_text("sentence\tstars\na fine film\t5\na dull one\t1\n", encoding="utf-8")
    run = tmp_path / "run"
    with pytest.raises(UserError) as caught:
        train_run(run, "finetune=tsv", f"finetune.train_path={tsv}", f"finetune.dev_path={tsv}")
    assert str(caught.value) == (
        f"finetune.train_path: {tsv} has no column 'label' (columns: sentence, stars); set "
        "finetune.label_column=... to one of them"
    )
    assert not (run / METRICS_FILE).exists()  # checked before the run folder was opened
    assert not (run / "history.csv").exists()  # no pretraining was spent on it


def test_a_tsv_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    tsv = tmp_path / "dev.tsv"
    tsv.write_bytes("sentence\tlabel\ncaf\u00e9\tpos\n".encode("latin-1"))
    with pytest.raises(UserError) as caught:
        read_tsv(tsv, "sentence", "label", "dev_path")
    assert str(caught.value) == (
        f"finetune.dev_path: {tsv} is not UTF-8 text (invalid continuation byte); convert it "
        "to UTF-8"
    )


# --- 6. the corrected command, in the same folder -------------------------------------------


def _data_mistakes(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """Each kind of data mistake: its overrides and what its one line says."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x00\x01 not text")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    small = tmp_path / "small.txt"
    small.write_text("one document only\n")
    no_label = tmp_path / "no_label.tsv"
    no_label.write_text("sentence\tstars\na fine film\t5\n")
    return {
        "missing": (text_corpus(tmp_path / "missing.txt"), "does not exist; point data.path"),
        "binary": (text_corpus(binary), "is not UTF-8 text (a NUL byte at offset 0)"),
        "empty": (text_corpus(empty), "holds no documents (it is empty or only blank lines)"),
        "too small": (text_corpus(small), "the split leaves no validation document among 1"),
        "tsv": (
            ["finetune=tsv", f"finetune.train_path={no_label}", f"finetune.dev_path={no_label}"],
            "has no column 'label' (columns: sentence, stars)",
        ),
    }


@pytest.mark.slow
def test_after_each_data_mistake_the_corrected_command_trains_in_the_same_folder(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    for kind, (overrides, line) in _data_mistakes(tmp_path / "files").items():
        with pytest.raises(UserError) as caught:
            train_run(run, *overrides)
        assert line in str(caught.value) and "\n" not in str(caught.value), kind
        assert not (run / METRICS_FILE).exists(), kind
    metrics = train_run(run)  # the corrected command: no resume=false
    assert metrics["status"] == "done"


def test_an_old_failed_record_with_nothing_kept_is_replaced(tmp_path: Path) -> None:
    """Folders failed by earlier versions held config.yaml and a failed metrics.json from
    before any step: the corrected command replaces them too."""
    run = tmp_path / "run"
    run.mkdir()
    (run / CONFIG_FILE).write_text("seed: 0\ndata:\n  path: missing.txt\n")
    write_json(run / METRICS_FILE, {"status": "failed", "error": "UserError: no such file"})
    assert train_run(run, "trainer.max_epochs=1")["status"] == "done"
    # A failed run that kept something (its history) is still refused under another config.
    failed = tmp_path / "kept"
    failed.mkdir()
    (failed / CONFIG_FILE).write_text("seed: 0\n")
    write_json(failed / METRICS_FILE, {"status": "failed", "steps": 12})
    with pytest.raises(UserError, match="holds a run with another config"):
        train_run(failed)


# --- 8. a corrupt run among good ones, through the command -----------------------------------


@pytest.mark.slow
def test_the_report_skips_a_corrupt_metrics_json_with_one_warning(tmp_path: Path) -> None:
    for seed in range(3):
        run = tmp_path / f"s{seed}"
        write_json(run / METRICS_FILE, {"status": "done", "seed": seed, "final_val_loss": 2.0})
        atomic_write_text(run / CONFIG_FILE, f"seed: {seed}\nmask:\n  copies: 1\n")
    (tmp_path / "s1" / METRICS_FILE).write_text('{"status": "do', encoding="utf-8")
    result = run_dmx("report", str(tmp_path), "--format", "json", cwd=tmp_path)
    (row,) = json.loads(result.stdout)
    assert (row["n"], row["final_val_loss"]["mean"]) == (2, 2.0)
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"dmx: warning: skipped run {tmp_path / 's1'}: cannot read ")
    assert line.endswith("; rerun that run or move its folder out of the sweep")


# --- 9. W&B online with no network -----------------------------------------------------------


@pytest.mark.slow
def test_wandb_online_without_a_network_falls_back_to_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed port as W&B's server: the online start fails within logger.init_timeout_s
    and the run logs offline instead; it never hangs. In its own process: a failed online
    start leaves W&B's in-process state unfit for the tests after it."""
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    run = tmp_path / "run"
    started = time.monotonic()
    result = run_dmx(
        "train",
        *tiny("logger=wandb", "trainer.max_epochs=1"),
        "logger.mode=online",
        "logger.init_timeout_s=5",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    print(f"\nW&B online without a network: run done in {elapsed:.1f} s")
    assert json.loads((run / "metrics.json").read_text())["status"] == "done"
    assert len(list((run / "wandb").glob("offline-run-*/*.wandb"))) == 1
    (warning,) = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "W&B online start failed (" in line
    ]
    assert warning.endswith(
        "; logging offline instead (a slow network: raise logger.init_timeout_s)"
    )
    assert elapsed < 120


# --- 10. devices -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_four_gpus_where_there_is_none(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        check_overrides(["impl.devices=4", "impl.accelerator=gpu"], multirun=False)
    assert str(caught.value) == (
        "impl.accelerator=gpu but no CUDA GPU is visible; use impl.accelerator=auto (GPU when "
        "there is one, else CPU) or impl.accelerator=cpu"
    )


@pytest.mark.slow
def test_more_gpus_than_are_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError) as caught:
        check_overrides(["impl.devices=4", "impl.accelerator=gpu"], multirun=False)
    assert str(caught.value) == "impl.devices=4 but only 1 GPU(s) are visible; lower impl.devices"
    make_config("impl.devices=1", "impl.accelerator=gpu")  # what is there is fine


# --- 11. the disk filling mid-write ----------------------------------------------------------


def test_a_full_disk_mid_write_keeps_the_previous_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / METRICS_FILE
    write_json(path, {"status": "running", "step": 1})
    before = path.read_bytes()
    fdopen = os.fdopen

    class FullDisk:
        """The file object of a disk that fills after half of what is written."""

        def __init__(self, fd: int, *args: Any, **kwargs: Any) -> None:
            self.file = fdopen(fd, *args, **kwargs)

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> int:
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name: str) -> Any:
            return getattr(self.file, name)

    monkeypatch.setattr(runs.os, "fdopen", FullDisk)
    with pytest.raises(OSError) as caught:
        write_json(path, {"status": "done", "step": 2, "final_val_loss": 1.5})
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert json.loads(before) == {"status": "running", "step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [METRICS_FILE]  # no temporary left


@pytest.mark.slow
def test_a_disk_that_fills_while_a_checkpoint_is_written_keeps_the_last_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning.pytorch.plugins.io.torch_plugin import TorchCheckpointIO

    from dmx.run.train import train

    save = TorchCheckpointIO.save_checkpoint

    def filling(self: Any, checkpoint: dict[str, Any], path: Any, **kwargs: Any) -> None:
        if "step-000000012" in str(path):  # half a file, then the disk is full
            Path(path).write_bytes(b"\x80\x02" * 1000)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save(self, checkpoint, path, **kwargs)

    config = make_config("impl.checkpoint_every_n_steps=4")
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(TorchCheckpointIO, "save_checkpoint", filling)
        with pytest.raises(OSError, match="No space left on device"):
            train(config, run)
    metrics = read_metrics(run)  # intact, and says why the run stopped
    assert metrics["status"] == "failed" and "No space left on device" in metrics["error"]
    folder = run / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == [
        "last.ckpt",
        "step-000000004.ckpt",
        "step-000000008.ckpt",
    ]  # no half-written file under any name
    assert os.path.samefile(folder / "last.ckpt", folder / "step-000000008.ckpt")
    resumed = train(config, run)  # once there is room again: on from the last good one
    assert resumed["status"] == "done" and resumed["resumed_from_step"] == 8


def test_a_sweep_hydra_cannot_enumerate_is_one_line() -> None:
    with pytest.raises(UserError) as caught:
        check_overrides(["seed=interval(0,1)"], multirun=True)
    assert str(caught.value) == (
        "seed=interval(0,1): dmx sweep runs a grid and cannot enumerate this sweep; list the "
        "values (a,b,c) or use range(start,stop,step)"
    )


@pytest.mark.slow
def test_glob_over_a_config_group_lists_its_choices() -> None:
    # Checked run by run: mask=span first, each other choice once.
    assert check_overrides(["mask=glob(s*)"], multirun=True) == ["mask=span"]


# --- 13. the catalog: mistakes users make, through every command ------------------------------
#
# Each one through the command itself (in this process: every one is caught before a run
# starts, so no subprocess is needed): exit code 2, exactly this one line on stderr, nothing
# on stdout, and no folder or file left behind. {tmp} is the folder the command runs in,
# which holds afile.txt, adir/ (empty), ro/ (read-only), ok.tsv and run/ (a finished run).

MISTAKES: list[tuple[str, str]] = [
    # train: wrong types
    ("train mask.prob=abc", "mask.prob must be a number, got 'abc'"),
    ("train trainer.max_epochs=1.5", "trainer.max_epochs must be a whole number, got '1.5'"),
    ("train impl.compile=maybe", "impl.compile must be true or false, got 'maybe'"),
    ("train seed=first", "seed must be a whole number, got 'first'"),
    # train: typos and renamed choices
    (
        "train mask=dynamc",
        "unknown choice mask=dynamc; choose one of: amlm, corpus_weighted, dynamic, "
        "informask, loss_weighted, pmi, span, static, whole_word",
    ),
    (
        "train mask=adaptive",
        "mask=adaptive is now mask=loss_weighted: the new name says what it does",
    ),
    # train: values out of range
    ("train data.batch_size=0", "data.batch_size must be >= 1, got 0"),
    ("train impl.threads=0", "impl.threads must be >= 1 (or null: one per core), got 0"),
    (
        "train impl.profiler=fast",
        "impl.profiler must be one of none, simple, advanced, pytorch; got 'fast'",
    ),
    ("train mask=span mask.span_p=2", "mask.span_p must be in (0, 1], got 2.0"),
    ("train data.val_frac=1.5", "data.val_frac must be in (0, 1), got 1.5"),
    ("train optim.lr=-1", "optim.lr must be > 0, got -1.0"),
    ("train mask=static mask.copies=0", "mask.copies must be >= 1 (or null for dynamic), got 0"),
    (
        "train trainer.val_check_interval=1.5",
        "trainer.val_check_interval must be a fraction of an epoch in (0, 1] or a whole number "
        "of batches, got 1.5",
    ),
    (
        "train trainer.accumulate_grad_batches=0",
        "trainer.accumulate_grad_batches must be >= 1, got 0",
    ),
    # train: conflicting options
    (
        "train mask=static mask=dynamic",
        "mask is given twice (mask=static and mask=dynamic); keep one",
    ),
    (
        "train mask.prob=0.15,0.3",
        "mask.prob=0.15,0.3 asks for several runs; use `dmx sweep mask.prob=0.15,0.3` (or "
        "add --multirun)",
    ),
    # train: the output folder
    (
        "train hydra.run.dir=afile.txt",
        "hydra.run.dir=afile.txt is a file; give hydra.run.dir a folder",
    ),
    (
        "train hydra.run.dir=afile.txt/run",
        "hydra.run.dir=afile.txt/run lies under a file, {tmp}/afile.txt; give hydra.run.dir a "
        "folder",
    ),
    (
        "train hydra.run.dir=ro/run",
        "hydra.run.dir=ro/run: {tmp}/ro is not writable (permission denied); give "
        "hydra.run.dir a folder you can write to",
    ),
    # sweep
    ("sweep mask.prob=0.15,1.5", "mask.prob must be in (0, 1), got 1.5"),
    ("sweep seed=0,1 seed=2", "seed is given twice (seed=0,1 and seed=2); keep one"),
    (
        "sweep --format yaml",
        "unknown report format 'yaml'; choose one of: table, md, csv, json, latex",
    ),
    (
        "sweep hydra.sweep.dir=afile.txt",
        "hydra.sweep.dir=afile.txt is a file; give hydra.sweep.dir a folder",
    ),
    (
        "sweep experiment=static_vs_dynamc",
        "unknown choice experiment=static_vs_dynamc; choose one of: adaptive, "
        "attention_classify, attention_masks, dupe_factor, mask_rate, roberta_glue, "
        "roberta_table1, static_vs_dynamic, strategies",
    ),
    # report
    (
        "report nowhere",
        "no such folder: nowhere; pass a sweep or run folder, e.g. outputs/sweeps/<name>",
    ),
    (
        "report afile.txt",
        "afile.txt is a file, not a folder; pass a sweep or run folder, e.g. outputs/sweeps/<name>",
    ),
    (
        "report run --format yaml",
        "unknown report format 'yaml'; choose one of: table, md, csv, json, latex",
    ),
    (
        "report run --baseline static",
        "--baseline takes KEY=VALUE, e.g. --baseline mask=static or --baseline mask.copies=1; "
        "got 'static'",
    ),
    ("report run --baseline mask=nope", "no group has mask=nope; the groups are: all"),
    (
        "report run --plot afile.txt",
        "--plot wants a folder to write PNGs into; afile.txt is a file",
    ),
    # bench
    ("bench --model huge", "unknown choice model=huge; choose one of: base, small, tiny"),
    ("bench --precision fp8", "--precision must be one of fp32, bf16; got 'fp8'"),
    (
        "bench --steps 1",
        "invalid value for '--steps': Input should be greater than or equal to 2; see "
        "`dmx bench --help`",
    ),
    (
        "bench --masking --vs-hf",
        "--masking and --vs-hf are separate benchmarks; run them one at a time",
    ),
    (
        "bench --masking --data",
        "--masking and --data are separate benchmarks; run them one at a time",
    ),
    # finetune
    (
        "finetune nowhere finetune=embedded",
        "nowhere is not a folder; give a run's folder or a sweep's",
    ),
    (
        "finetune adir finetune=embedded",
        "adir holds no run with a kept encoder (encoder.pt); dmx finetune needs runs trained "
        "by dmx train to the end",
    ),
    (
        "finetune run finetune=sst2",
        "unknown choice finetune=sst2; choose one of: embedded, glue, hf, none, tsv",
    ),
    (
        "finetune run mask=dynamic",
        "mask=dynamic: dmx finetune changes only finetune and impl settings; the rest is the "
        "pretraining's (train another run for a different mask)",
    ),
    (
        "finetune run finetune.lrs=3e-4",
        "finetune.lrs must be a list in brackets (finetune.lrs=[a,b]), got '3e-4'",
    ),
    ("finetune run finetune=embedded finetune.epochs=0", "finetune.epochs must be >= 1, got 0"),
    (
        "finetune run finetune=tsv finetune.train_path=ok.tsv finetune.dev_path=adir",
        "finetune.dev_path: adir is a folder; give a TSV file with a header row",
    ),
    (
        "finetune run finetune=glue finetune.glue_dir=adir",
        "finetune.glue_dir: adir holds no GLUE task folder (CoLA, SST-2, MRPC, STS-B, QQP, "
        "MNLI, QNLI, RTE, WNLI); give the folder GLUE's download script leaves",
    ),
    # export
    ("export nowhere hf", "nowhere is not a folder; give a run's folder (it holds encoder.pt)"),
    (
        "export adir hf",
        "adir holds no pretrained encoder (encoder.pt); dmx export needs a run trained by dmx "
        "train to the end of pretraining",
    ),
    ("export run afile.txt", "afile.txt exists and is not an empty folder; give a new folder"),
]


def _user_folder(tmp_path: Path) -> Path:
    """What a user's working folder might hold when the mistakes are made."""
    from omegaconf import OmegaConf

    (tmp_path / "afile.txt").write_text("not a folder\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "ro").mkdir()
    (tmp_path / "ok.tsv").write_text("sentence\tlabel\na fine film\tpos\na dull one\tneg\n")
    run = tmp_path / "run"  # a finished run, as far as the checks before loading can tell
    run.mkdir()
    atomic_write_text(run / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.structured(make_config())))
    metrics = {"status": "done", "seed": 0, "mask_strategy": "dynamic", "final_val_loss": 5.0}
    write_json(run / METRICS_FILE, metrics)
    (run / "encoder.pt").write_bytes(b"")
    (run / ".lock").write_text("")  # every run folder keeps its lock file
    return tmp_path


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` and its bytes (a lock file's holder aside)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() and p.name != ".lock" else None
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(("command", "line"), MISTAKES, ids=[c for c, _ in MISTAKES])
def test_a_users_mistake_is_its_one_line_and_exit_2_and_leaves_nothing(
    command: str, line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dmx.cli import app

    folder = _user_folder(tmp_path)
    monkeypatch.chdir(folder)
    ro = str(folder / "ro")
    real_access = os.access  # this suite may run as root, whom no permission stops
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if str(p) == ro else real_access(p, mode)
    )
    before = _snapshot(folder)
    result = CliRunner().invoke(app, command.split(), prog_name="dmx")
    assert result.exit_code == 2, result.output
    assert result.stderr == f"dmx: error: {line.format(tmp=folder)}\n"
    assert result.stdout == ""
    assert _snapshot(folder) == before  # no run folder, no file, nothing changed


def test_the_catalog_holds_thirty_mistakes_across_every_command() -> None:
    by_command = {command.split()[0] for command, _ in MISTAKES}
    assert len(MISTAKES) >= 30
    assert by_command == {"train", "sweep", "report", "bench", "finetune", "export"}
