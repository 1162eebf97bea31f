"""The fine-tuning protocol: its choice on planted numbers, its cells as files, resuming
between cells, and ``dmx finetune`` on a finished run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers import invoke_dmx, make_config, run_dmx, train_run
from omegaconf import OmegaConf

from dmx.common.errors import UserError
from dmx.config.validate import finetune_config
from dmx.downstream.finetune.grid import Cell, read_cell, write_cell
from dmx.downstream.finetune.protocol import best_epoch, choose, median

# --- the choice, on planted numbers -------------------------------------------------------


def test_the_best_epoch_is_the_highest_main_figure_and_the_earliest_on_a_tie() -> None:
    epochs = [{"acc": 0.5}, {"acc": 0.7}, {"acc": 0.7}, {"acc": 0.6}]
    assert best_epoch(epochs, ["acc"]) == 1
    # MRPC: F1 and accuracy count half each
    pairs = [{"f1": 0.9, "acc": 0.5}, {"f1": 0.8, "acc": 0.7}]
    assert best_epoch(pairs, ["f1", "acc"]) == 1
    assert best_epoch([{"mcc": math.nan}, {"mcc": -0.1}], ["mcc"]) == 1  # NaN ranks lowest
    with pytest.raises(ValueError):
        best_epoch([], ["acc"])


def test_the_median_ranks_nan_lowest() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert median([math.nan, 0.4, 0.6]) == 0.4  # one diverged seed of three
    assert math.isnan(median([math.nan, math.nan, 0.6]))


def test_each_lr_takes_the_median_over_seeds_and_the_best_lr_wins() -> None:
    cells = {
        # lr 1e-4: one lucky seed (0.90) would win a max; its median is 0.60
        (1e-4, 0): {"acc": 0.90, "loss": 0.3},
        (1e-4, 1): {"acc": 0.60, "loss": 0.6},
        (1e-4, 2): {"acc": 0.50, "loss": 0.7},
        # lr 3e-4: steadier, median 0.70
        (3e-4, 0): {"acc": 0.70, "loss": 0.5},
        (3e-4, 1): {"acc": 0.72, "loss": 0.4},
        (3e-4, 2): {"acc": 0.65, "loss": 0.55},
    }
    choice = choose(cells, [1e-4, 3e-4], [0, 1, 2], ["acc"])
    assert choice.lr == 3e-4
    assert choice.per_lr == {1e-4: pytest.approx(0.60), 3e-4: pytest.approx(0.70)}
    # every metric is its own median over the winning lr's seeds
    assert choice.scores == {"acc": pytest.approx(0.70), "loss": pytest.approx(0.5)}
    assert choice.seed_figures == [0.70, 0.72, 0.65]
    assert choice.seed_spread == pytest.approx(0.07)


def test_a_two_figure_task_is_judged_by_their_mean_and_a_tie_goes_to_the_first_lr() -> None:
    cells = {
        (2e-4, 0): {"f1": 0.80, "acc": 0.60},  # mean 0.70
        (5e-4, 0): {"f1": 0.70, "acc": 0.70},  # mean 0.70: a tie
        (1e-3, 0): {"f1": 0.90, "acc": 0.40},  # mean 0.65: the best F1 alone
    }
    choice = choose(cells, [2e-4, 5e-4, 1e-3], [0], ["f1", "acc"])
    assert choice.lr == 2e-4 and choice.scores == {"f1": 0.80, "acc": 0.60}
    with pytest.raises(ValueError, match="not fine-tuned yet"):
        choose(cells, [2e-4, 3e-3], [0], ["f1", "acc"])


# --- cells as files -----------------------------------------------------------------------

SETTINGS = {"task": "RTE", "epochs": 2, "max_len": 64}


def test_a_cell_is_written_once_and_read_back(tmp_path: Path) -> None:
    cell = Cell("rte", 5e-4, 1)
    assert cell.path(tmp_path) == tmp_path / "finetune" / "rte" / "lr=0.0005,seed=1.json"
    assert read_cell(tmp_path, cell, SETTINGS) is None
    epochs = [{"epoch": 1, "step": 4, "acc": 0.5}, {"epoch": 2, "step": 8, "acc": 0.75}]
    written = write_cell(tmp_path, cell, SETTINGS, epochs, 1, 8, 1.25)
    assert read_cell(tmp_path, cell, SETTINGS) == written
    assert written["best"] == {"acc": 0.75} and written["best_epoch"] == 2


def test_a_cell_made_with_other_settings_stops_the_run_naming_the_fix(tmp_path: Path) -> None:
    cell = Cell("rte", 5e-4, 0)
    write_cell(tmp_path, cell, SETTINGS, [{"epoch": 1, "step": 4, "acc": 0.5}], 0, 4, 1.0)
    with pytest.raises(UserError) as err:
        read_cell(tmp_path, cell, {**SETTINGS, "epochs": 3})
    assert str(err.value) == (
        f"{cell.path(tmp_path)} was fine-tuned with epochs=2, not 3; remove "
        f"{tmp_path / 'finetune' / 'rte'} to fine-tune rte again with these settings"
    )


def test_a_torn_cell_file_counts_as_not_fine_tuned(tmp_path: Path) -> None:
    cell = Cell("rte", 5e-4, 0)
    cell.path(tmp_path).parent.mkdir(parents=True)
    cell.path(tmp_path).write_text('{"task": "rte", "be')
    assert read_cell(tmp_path, cell, SETTINGS) is None


# --- dmx finetune's config ----------------------------------------------------------------


def saved(*overrides: str) -> object:
    return OmegaConf.structured(make_config(*overrides))


def test_finetune_overrides_change_only_the_fine_tuning(tmp_path: Path) -> None:
    run = saved("finetune=glue", "finetune.glue_dir=/data/glue", "finetune.tasks=[RTE]")
    # the same task: its settings are kept, the overrides change them
    config = finetune_config(run, ["finetune=glue", "finetune.lrs=[1e-4,2e-4]"], where="c")
    assert config.finetune.glue_dir == "/data/glue" and config.finetune.tasks == ["RTE"]
    assert config.finetune.lrs == [1e-4, 2e-4]
    # another task starts from its preset
    config = finetune_config(run, ["finetune=embedded", "impl.num_workers=1"], where="c")
    assert config.finetune.name == "embedded" and config.finetune.glue_dir is None
    assert config.impl.num_workers == 1 and config.model.d_model == 32


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("mask.prob=0.3", "mask.prob=0.3: dmx finetune changes only finetune and impl settings"),
        ("finetune.epoch=3", "finetune.epoch is not a dmx setting; finetune has: name,"),
        ("finetune.epochs=many", "finetune.epochs must be a whole number, got 'many'"),
        ("finetune.seeds=[0,0]", "finetune.seeds has a seed twice: [0, 0]"),
        ("finetune=nosuch", "unknown choice finetune=nosuch; choose one of: embedded, glue"),
    ],
)
def test_a_bad_finetune_override_is_one_line(override: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        finetune_config(saved(), [override], where="c")
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


# --- fine-tuning runs: resume between cells, dmx finetune ---------------------------------

SMALL_TASK = (
    "finetune=embedded",
    "finetune.n_train=64",
    "finetune.n_dev=32",
    "finetune.batch_size=16",
    "finetune.epochs=2",
    "finetune.lrs=[5e-4,2e-3]",
    "finetune.seeds=[0,1]",
    "trainer.max_epochs=1",
)


class CountFits:
    """Counts the cells fine-tuned, and stops the run at one of them if asked."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop_at: int | None = None) -> None:
        import dmx.downstream.finetune as finetune

        self.cells: list[Cell] = []
        real = finetune._fit

        def fit(config, encoder, labelled, run_dir, cell):  # type: ignore[no-untyped-def]
            self.cells.append(cell)
            if stop_at is not None and len(self.cells) == stop_at:
                raise KeyboardInterrupt("stopped by the test")
            return real(config, encoder, labelled, run_dir, cell)

        monkeypatch.setattr(finetune, "_fit", fit)


def cell_files(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "finetune" / "embedded").glob("*.json"))


@pytest.mark.slow
def test_the_reported_score_is_the_protocols_choice_from_the_cell_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = train_run(run, *SMALL_TASK)
    assert cell_files(run) == [
        "lr=0.0005,seed=0.json",
        "lr=0.0005,seed=1.json",
        "lr=0.002,seed=0.json",
        "lr=0.002,seed=1.json",
    ]
    cells = {}
    for name in cell_files(run):
        record = json.loads((run / "finetune" / "embedded" / name).read_text())
        assert [e["epoch"] for e in record["epochs"]] == [1, 2]
        cells[record["lr"], record["seed"]] = record["best"]
    choice = choose(cells, [5e-4, 2e-3], [0, 1], ["acc"])
    assert summary["finetune_lr"] == choice.lr
    assert summary["finetune_acc"] == pytest.approx(choice.scores["acc"])
    assert summary["finetune_f1"] == pytest.approx(choice.scores["f1"])
    assert summary["finetune_seed_spread"] == pytest.approx(choice.seed_spread)
    assert summary["finetune_protocol"] == {
        "lrs": [5e-4, 2e-3],
        "seeds": [0, 1],
        "epochs": 2,
        "cells": 4,
    }


@pytest.mark.slow
def test_a_run_stopped_while_fine_tuning_resumes_at_the_first_missing_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = train_run(tmp_path / "whole", *SMALL_TASK)
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        stopped = CountFits(patch, stop_at=3)
        with pytest.raises(KeyboardInterrupt):
            train_run(run, *SMALL_TASK)
    assert len(stopped.cells) == 3 and len(cell_files(run)) == 2
    history = (run / "history.csv").read_text()
    resumed = CountFits(monkeypatch)
    summary = train_run(run, *SMALL_TASK)
    # pretraining is not done again, and only the two missing cells are fine-tuned
    assert (run / "history.csv").read_text() == history
    assert [(c.lr, c.seed) for c in resumed.cells] == [(2e-3, 0), (2e-3, 1)]
    assert summary["status"] == "done"
    for key in ("finetune_acc", "finetune_f1", "finetune_lr", "final_val_loss"):
        assert summary[key] == whole[key], key  # as if it had never stopped


@pytest.mark.slow
def test_dmx_finetune_adds_a_task_to_a_finished_run_and_trains_nothing_the_second_time(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    pretrained = train_run(run, "trainer.max_epochs=1")
    assert "finetune_acc" not in pretrained
    args = ["finetune", str(run), *SMALL_TASK[:-1]]
    first = run_dmx(*args, cwd=tmp_path)
    assert "fine-tuning embedded: cell 4 of 4 (lr=0.002, seed 1)" in first.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["final_val_loss"] == pretrained["final_val_loss"]  # pretraining's kept
    assert first.stdout.strip() == (
        f"done: embedded: dev acc {metrics['finetune_acc']:.1%}, macro-F1 "
        f"{metrics['finetune_f1']:.3f} (median of 2 seed(s) at the best of 2 lr(s)); {run}"
    )
    stamps = {p: p.stat().st_mtime_ns for p in (run / "finetune").rglob("*.json")}
    second = run_dmx(*args, cwd=tmp_path)
    assert "cell" not in second.stderr and second.stdout == first.stdout
    assert {p: p.stat().st_mtime_ns for p in (run / "finetune").rglob("*.json")} == stamps


@pytest.mark.slow
def test_dmx_finetune_refuses_what_it_cannot_do_in_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_run(run, "trainer.max_epochs=1")
    cases = [
        ([str(run), "mask=static"], "mask=static: dmx finetune changes only finetune and impl"),
        ([str(run)], "nothing to fine-tune: give finetune=glue"),
        ([str(tmp_path / "nosuch"), "finetune=embedded"], "is not a folder"),
        ([str(run / "finetune"), "finetune=embedded"], "holds no run with a kept encoder"),
        (
            [str(run), "finetune=glue", f"finetune.glue_dir={tmp_path}", "finetune.tasks=[RTE]"],
            f"finetune.glue_dir: RTE needs {tmp_path / 'RTE' / 'train.tsv'}, which is missing",
        ),
    ]
    (run / "finetune").mkdir()
    for args, message in cases:
        result = invoke_dmx("finetune", *args, cwd=tmp_path, check=False)
        assert result.returncode == 2, args
        assert result.stderr.startswith("dmx: error: ") and message in result.stderr, args
        assert result.stderr.count("\n") == 1, result.stderr


@pytest.mark.slow
def test_a_users_pair_task_fine_tunes_with_segments(tmp_path: Path) -> None:
    rows = ["question\tanswer\tlabel"] + [
        f"is the {w} red\tthe {w} is {'red' if i % 2 else 'blue'}\t{i % 2}"
        for i, w in enumerate(["goat", "cow", "farmer", "baker", "bread", "milk"] * 4)
    ]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.tsv").write_text("\n".join(rows[:9]) + "\n")
    summary = train_run(
        tmp_path / "run",
        "finetune=tsv",
        f"finetune.train_path={tmp_path / 'train.tsv'}",
        f"finetune.dev_path={tmp_path / 'dev.tsv'}",
        "finetune.text_column=question",
        "finetune.text_pair_column=answer",
        "finetune.batch_size=8",
        "trainer.max_epochs=1",
    )
    assert summary["finetune_task"] == "tsv:train.tsv" and summary["finetune_train_examples"] == 24
    assert summary["finetune_steps"] == 9  # 24 pairs in batches of 8, 3 epochs
    assert 0.0 <= summary["finetune_acc"] <= 1.0
