"""Real training runs, in this process: the run folder, determinism, faults, the core claim."""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
from helpers import TIMINGS, make_config, train_run

from dmx.common.errors import UserError
from dmx.common.run_folder import RunLock, read_metrics
from dmx.data.corpus import load_corpus
from dmx.data.tokenizer import MASK_ID, PAD_ID
from dmx.masking.diagnostics import MaskStats
from dmx.run.entry import closing_line as _closing_line
from dmx.run.train import train


def history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_train_writes_a_complete_run_folder(tmp_path: Path, cache_dir: Path) -> None:
    run = tmp_path / "run"
    summary = train_run(run, "mask=dynamic", "impl.profiler=simple")
    metrics = read_metrics(run)
    assert metrics == summary
    # Where the time went: the wait for the first step, and Lightning's profile of the loop.
    assert 0 < metrics["setup_s"] < metrics["wall_s"]
    assert metrics["train_s"] < metrics["wall_s"]
    profile = (run / "fit-profile.txt").read_text()
    assert "run_training_batch" in profile and "MLMModule.optimizer_step" in profile
    assert metrics["status"] == "done" and metrics["error"] is None
    assert metrics["mask_strategy"] == "dynamic"
    assert metrics["seed"] == 0 and metrics["precision"] == "32-true"
    # Steps and tokens follow from the corpus: every epoch covers every training sequence.
    train, _ = load_corpus(make_config().data, cache_dir).train.to_numpy()
    n_seq, real_tokens = train.shape[0], int((train != PAD_ID).sum())
    assert metrics["epochs"] == 2
    assert metrics["steps"] == 2 * math.ceil(n_seq / 16)
    assert metrics["tokens_seen"] == 2 * real_tokens
    assert metrics["best_val_loss"] == min(float(r["val_loss"]) for r in history(run))
    assert metrics["final_val_ppl"] == pytest.approx(math.exp(metrics["final_val_loss"]), rel=1e-5)
    assert {"torch", "lightning", "python"} <= metrics["versions"].keys()
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert [int(r["step"]) for r in rows] == [metrics["steps"] // 2, metrics["steps"]]
    assert float(rows[-1]["val_loss"]) == metrics["final_val_loss"]
    config = (run / "config.yaml").read_text()
    assert "copies: null" in config and "${" not in config  # resolved, no interpolations
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu")
    assert checkpoint["epoch"] == 1 and checkpoint["global_step"] == metrics["steps"]
    assert not list(run.rglob("*.tmp"))  # atomic writes leave no temporary files behind


@pytest.mark.slow
def test_impl_threads_sets_the_runs_cpu_threads_and_restores_them(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    metrics = train_run(tmp_path / "run", "impl.threads=1", "trainer.max_epochs=1")
    assert metrics["threads"] == 1 and torch.get_num_threads() == before


@pytest.mark.slow
def test_same_config_and_seed_give_identical_results(tmp_path: Path) -> None:
    first = train_run(tmp_path / "a", "mask=static", "seed=3")
    second = train_run(tmp_path / "b", "mask=static", "seed=3")
    strip = lambda m: {k: v for k, v in m.items() if k not in TIMINGS}  # noqa: E731
    assert strip(first) == strip(second)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "train_s"} for r in rows]  # noqa: E731
    assert drop(history(tmp_path / "a")) == drop(history(tmp_path / "b"))


@pytest.mark.slow
def test_strategies_share_data_order_and_init_but_not_masks(tmp_path: Path) -> None:
    """At one seed, static and dynamic differ only after the first epoch (same first mask)."""
    static = history_of(tmp_path / "s", "mask=static")
    dynamic = history_of(tmp_path / "d", "mask=dynamic")
    assert static[0]["val_loss"] == dynamic[0]["val_loss"]  # epoch 0: both use key 0
    assert static[1]["val_loss"] != dynamic[1]["val_loss"]  # epoch 1: key 0 vs key 1


def history_of(run: Path, *overrides: str) -> list[dict[str, str]]:
    train_run(run, *overrides)
    return history(run)


@pytest.mark.slow
def test_the_label_says_what_the_masker_does(tmp_path: Path) -> None:
    """mask=static with copies=null draws a fresh mask each epoch, so it is called dynamic."""
    summary = train_run(tmp_path / "r", "mask=static", "mask.copies=null", "trainer.max_steps=1")
    assert summary["mask_strategy"] == "dynamic"
    summary = train_run(tmp_path / "k", "mask=static", "mask.copies=10", "trainer.max_steps=1")
    assert summary["mask_strategy"] == "static(K=10)"


@pytest.mark.slow
def test_dynamic_masking_beats_static_when_data_is_reused_for_many_epochs(tmp_path: Path) -> None:
    """The effect dmx exists to measure, at a size a test can afford (about 15 s).

    With one fixed mask per sequence the model starts memorising its training targets
    and validation loss turns up; with a fresh mask each epoch it keeps falling.
    """
    shape = ["model.n_layers=2", "model.d_model=64", "model.d_ff=128", "trainer.max_epochs=20"]
    static = train_run(tmp_path / "static", "mask=static", *shape)
    dynamic = train_run(tmp_path / "dynamic", "mask=dynamic", *shape)
    assert dynamic["final_val_loss"] < static["final_val_loss"] - 0.05
    assert static["final_val_loss"] > static["best_val_loss"] + 0.02  # static overfits
    assert static["final_train_loss"] < dynamic["final_train_loss"]  # by memorising


def test_a_nan_loss_fails_the_run_with_the_reason_and_step(tmp_path: Path) -> None:
    run = tmp_path / "nan"
    with pytest.raises(FloatingPointError):
        train_run(run, "optim.lr=1e30", "optim.warmup_frac=0")
    metrics = read_metrics(run)
    assert metrics["status"] == "failed"
    assert metrics["error"].startswith("FloatingPointError: loss is nan at step")


@pytest.mark.slow
def test_a_fault_marks_the_run_failed_and_keeps_what_was_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    run = tmp_path / "run"
    with pytest.raises(NotADirectoryError):
        train_run(run, f"impl.cache_dir={blocker}/cache")
    metrics = read_metrics(run)
    assert metrics["status"] == "failed"
    assert metrics["error"].startswith("NotADirectoryError: ")
    assert "copies: 1" in (run / "config.yaml").read_text()


@pytest.mark.slow
def test_a_run_stopped_by_max_steps_is_still_validated(tmp_path: Path) -> None:
    run = tmp_path / "steps"
    metrics = train_run(run, "trainer.max_steps=3")
    assert metrics["status"] == "done" and metrics["steps"] == 3 and metrics["epochs"] == 1
    (row,) = history(run)
    assert (int(row["step"]), float(row["val_loss"])) == (3, metrics["final_val_loss"])


def test_a_folder_another_process_trains_in_is_refused_untouched(tmp_path: Path) -> None:
    run = tmp_path / "busy"
    lock = RunLock(run)
    lock.acquire()
    try:
        with pytest.raises(UserError, match=f"run folder {run} is in use by another dmx process"):
            train_run(run)
    finally:
        lock.release()
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written


@pytest.mark.slow
def test_wandb_offline_run_is_named_by_its_cell_and_says_how_to_sync(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from dmx.tracking.names import run_names
    from dmx.tracking.wandb_run import make_logger

    config = make_config("logger=wandb", "logger.mode=offline", "mask=static", "mask.copies=10")
    names = run_names(config, "static(K=10)")
    assert names == ("default/static(K=10)", "static(K=10)-s0")  # a single run: no sweep
    wandb_run = make_logger(config, tmp_path / "wb", "static(K=10)", names)
    assert wandb_run is not None and wandb_run.mode == "offline"
    experiment = wandb_run.lightning.experiment
    assert experiment.group == "default/static(K=10)"
    assert (experiment.name, experiment.job_type) == ("static(K=10)-s0", "pretrain")
    assert experiment.config["mask_strategy"] == "static(K=10)"
    assert experiment.config["mask"]["copies"] == 10
    with caplog.at_level(logging.INFO, logger="dmx"):
        wandb_run.close({"status": "done", "final_val_loss": 1.5})
    (offline,) = (tmp_path / "wb" / "wandb").glob("offline-run-*")
    assert list(offline.glob("*.wandb")), "no W&B log written"
    assert f"upload it with: dmx sync {tmp_path / 'wb'}" in caplog.text


@pytest.mark.slow
def test_a_full_run_with_wandb_offline_is_done_and_w_and_b_warns_of_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W&B's warnings are caught where W&B raises them (``wandb.termwarn``, which prints
    each only once a process): Lightning's logger used to hand wandb.init a deprecated
    ``anonymous`` setting, and every run printed W&B's deprecation line."""
    import wandb

    warned: list[str] = []
    monkeypatch.setattr(wandb, "termwarn", lambda message, *a, **k: warned.append(message))
    run = tmp_path / "wb"
    metrics = train_run(run, "logger=wandb", "logger.mode=offline", "trainer.max_epochs=1")
    assert metrics["status"] == "done"
    assert len(list((run / "wandb").glob("offline-run-*/*.wandb"))) == 1
    assert warned == []


def test_closing_line_reads_na_for_figures_never_measured() -> None:
    summary = {
        "mask_strategy": "static(K=1)",
        "final_val_loss": 5.6081,
        "best_val_loss": 5.6,
        "best_val_epoch": 3,
        "final_val_acc": 0.1401,
        "tokens_per_s": None,
    }
    assert _closing_line(summary, Path("runs/x")) == (
        "done: static(K=1), val loss 5.608 (best 5.600 at epoch 3), val acc 14.0%, "
        "n/a tokens/s; run folder: runs/x"
    )


def test_closing_line_adds_the_downstream_scores_and_says_when_pretraining_was_skipped() -> None:
    summary = {
        "mask_strategy": "dynamic",
        "pretrained": True,
        "final_val_loss": 5.6081,
        "best_val_loss": 5.6,
        "best_val_epoch": 3,
        "final_val_acc": 0.1401,
        "tokens_per_s": 1234.5,
        "finetune_task": "embedded",
        "finetune_acc": 0.8125,
        "finetune_f1": 0.79,
    }
    assert _closing_line(summary, Path("runs/x")) == (
        "done: dynamic, val loss 5.608 (best 5.600 at epoch 3), val acc 14.0%, 1,234 tokens/s; "
        "embedded: dev acc 81.2%, macro-F1 0.790; run folder: runs/x"
    )
    scratch = {
        "mask_strategy": "static(K=1)",
        "pretrained": False,
        "finetune_task": "tsv:train.tsv",
        "finetune_acc": None,
        "finetune_f1": 0.5,
    }
    assert _closing_line(scratch, Path("runs/y")) == (
        "done: static(K=1), no pretraining; tsv:train.tsv: dev acc n/a, macro-F1 0.500; "
        "run folder: runs/y"
    )


def test_closing_line_gives_the_glue_score_and_its_tasks() -> None:
    summary = {
        "mask_strategy": "dynamic",
        "final_val_loss": 5.61,
        "best_val_loss": 5.6,
        "best_val_epoch": 3,
        "final_val_acc": 0.14,
        "tokens_per_s": 1000.0,
        "glue_score": 0.4567,
        "glue_tasks": ["CoLA", "RTE"],
    }
    assert _closing_line(summary, Path("runs/g")) == (
        "done: dynamic, val loss 5.610 (best 5.600 at epoch 3), val acc 14.0%, 1,000 tokens/s; "
        "GLUE score 0.457 over CoLA, RTE; run folder: runs/g"
    )


def test_train_is_importable_without_hydra_running(tmp_path: Path) -> None:
    """``train`` needs a checked Config and a folder, nothing of Hydra's runtime."""
    summary = train(make_config("trainer.max_steps=1"), tmp_path / "direct")
    assert summary["status"] == "done"


@pytest.fixture
def corrupted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """What the training masks did to the tokens, counted from every masked batch the run's
    diagnostics see: the selected positions that read [MASK], that read another ordinary
    token than the original (a random replacement), and that read the original."""
    counts: Counter[str] = Counter()
    update = MaskStats.update

    def spy(self: MaskStats, masked, *args, **kwargs) -> None:
        ids, selected = masked.input_ids, masked.selected
        counts["eligible"] += int(masked.eligible.sum())
        counts["selected"] += int(selected.sum())
        counts["mask"] += int((selected & (ids == MASK_ID)).sum())
        counts["other"] += int((selected & (ids != MASK_ID) & (ids != masked.labels)).sum())
        counts["original"] += int((selected & (ids == masked.labels)).sum())
        return update(self, masked, *args, **kwargs)

    monkeypatch.setattr(MaskStats, "update", spy)
    return counts


def window_density(length: int, half: int) -> float:
    return sum(min(i + half, length - 1) - max(i - half, 0) + 1 for i in range(length)) / length**2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "strategy", "rate", "diversity", "attention"),
    [
        (["mask=static", "mask.copies=3"], "static(K=3)", 0.15, 2.0, None),
        (["mask=span"], "span dynamic", 5 / 31, 2.0, None),  # ceil(0.15 x 31) of 31
        (["mask=whole_word"], "whole_word dynamic", 0.15, 2.0, None),
        (["mask=dynamic", "mask.prob=0.4"], "dynamic", 0.4, 2.0, None),
        (["mask=dynamic", "mask.schedule=linear"], "dynamic", 0.225, 2.0, None),
        (["attention=window", "attention.window=16"], "static(K=1)", 0.15, 1.0, (16, 8)),
        (["attention=random_static"], "static(K=1)", 0.15, 1.0, 0.5 + 0.5 / 32),
        (["attention=random_dynamic"], "static(K=1)", 0.15, 1.0, 0.5 + 0.5 / 32),
        (["attention=learned_gate"], "static(K=1)", 0.15, 1.0, 0.5),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_every_strategy_trains_and_reports_what_its_masks_did(
    tmp_path: Path,
    corrupted: Counter[str],
    overrides: list[str],
    strategy: str,
    rate: float,
    diversity: float,
    attention: float | tuple[int, int] | None,
) -> None:
    """Two epochs at sequence length 32; the diagnostics are measured on the batches."""
    m = train_run(tmp_path / "run", *overrides)
    assert (m["status"], m["mask_strategy"]) == ("done", strategy)
    assert m["mask_rate"] == pytest.approx(rate, abs=0.015)
    assert m["mask_diversity"] == diversity
    assert m["mask_frac_mask"] == pytest.approx(0.8, abs=0.05)
    # The split equals what the batches show. A random replacement is drawn from the ordinary
    # tokens, never [MASK], and equals the original once in about 250 draws (vocab 256): at a
    # random share near 0.1 that moves "other" into "original" by about 0.0004 of the selected.
    selected = corrupted["selected"]
    assert selected > 0 and m["mask_rate"] == pytest.approx(selected / corrupted["eligible"])
    assert m["mask_frac_mask"] == pytest.approx(corrupted["mask"] / selected)
    assert m["mask_frac_random"] == pytest.approx(corrupted["other"] / selected, abs=0.002)
    assert m["mask_frac_random"] >= corrupted["other"] / selected
    assert m["mask_frac_kept"] == pytest.approx(corrupted["original"] / selected, abs=0.002)
    assert m["mask_frac_kept"] <= corrupted["original"] / selected + 1e-9
    assert 0 <= m["mask_time_share"] < 0.5
    if attention is None:
        assert m["attention_density"] is None
    elif isinstance(attention, tuple):
        assert m["attention_density"] == pytest.approx(window_density(32, attention[1]), abs=0.02)
    else:
        assert m["attention_density"] == pytest.approx(attention, abs=0.03)
