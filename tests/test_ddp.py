"""Data parallelism: N processes train the experiment one process trains.

data.batch_size is the global batch; each process gets its slice of every global batch,
masks are keyed by row index, the loss is scaled to the global batch's, and only rank 0
writes the run folder. The 2-process run is real (Lightning's DDP over gloo on the CPU).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from helpers import TINY, make_config, run_dmx, tiny, train_run

from dmx.common.errors import UserError
from dmx.common.run_folder import is_rank_zero
from dmx.data.datamodule import EpochKeyedSampler, MLMDataModule
from dmx.training.trainer import one_device_per_job


def _global_batches(n: int, batch: int, seed: int | None) -> list[list[int]]:
    order = list(EpochKeyedSampler(n, seed))
    return [order[i : i + batch] for i in range(0, n, batch)]


@pytest.mark.parametrize(
    ("n", "batch", "world"), [(64, 16, 2), (70, 16, 2), (65, 16, 4), (50, 12, 3)]
)
def test_ranks_split_every_global_batch_between_them(n: int, batch: int, world: int) -> None:
    for seed, drop_tiny in ((7, True), (None, False)):
        shares = []
        for rank in range(world):
            sampler = EpochKeyedSampler(n, seed, batch, rank, world, drop_tiny=drop_tiny)
            sampler.set_epoch(3)
            loader = torch.utils.data.DataLoader(
                range(n), batch_size=batch // world, sampler=sampler
            )
            shares.append([b.tolist() for b in loader])
            assert len(sampler) == sum(len(b) for b in shares[-1])
        single = EpochKeyedSampler(n, seed)
        single.set_epoch(3)
        order = list(single)
        expected = [order[i : i + batch] for i in range(0, n, batch)]
        if drop_tiny and len(expected[-1]) < world:
            expected = expected[:-1]
        if drop_tiny:  # training: every process takes the same number of steps
            assert len({len(s) for s in shares}) == 1
        for b, global_batch in enumerate(expected):
            parts = [s[b] for s in shares if b < len(s)]
            assert sum(parts, []) == global_batch  # rank r holds the r-th slice, in order


def test_a_final_batch_smaller_than_the_world_is_dropped_in_training_only() -> None:
    # 33 rows, batch 16, 4 processes: the last global batch has 1 row, too few for 4 ranks.
    train = [len(EpochKeyedSampler(33, 0, 16, r, 4)) for r in range(4)]
    val = [len(EpochKeyedSampler(33, None, 16, r, 4, drop_tiny=False)) for r in range(4)]
    assert train == [8, 8, 8, 8] and sum(val) == 33


def test_a_sample_gets_the_same_mask_in_any_process() -> None:
    config = make_config("mask=dynamic")

    def masks(rank: int, world: int) -> dict[int, torch.Tensor]:
        data = MLMDataModule(config.data, config.mask, config.seed)
        data.trainer = SimpleNamespace(global_rank=rank, world_size=world)
        data.setup("fit")
        loader = data.train_dataloader()
        loader.sampler.set_epoch(2)
        out = {}
        for batch in loader:
            masked = data.mask_batch(batch, epoch=2, progress=0.5)
            for i, index in enumerate(batch["index"].tolist()):
                out[index] = masked["input_ids"][i]
        return out

    single = masks(0, 1)
    split = {**masks(0, 2), **masks(1, 2)}
    assert split.keys() == single.keys()
    assert all(torch.equal(split[i], single[i]) for i in single)


def test_the_global_batch_must_divide_across_processes() -> None:
    config = make_config("data.batch_size=15")
    data = MLMDataModule(config.data, config.mask, config.seed)
    data.trainer = SimpleNamespace(global_rank=0, world_size=2)
    data.setup("fit")
    with pytest.raises(UserError, match=r"data.batch_size=15 is the global batch .* multiple of 2"):
        data.train_dataloader()


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        [],
        # AMLM's rate table: each process sees half the tokens of a step, and the window sums
        # are summed across them before every update, so both hold one process's table.
        ["mask=amlm", "mask.adapt_every=4"],
    ],
    ids=["uniform", "amlm"],
)
def test_two_processes_train_what_one_does(tmp_path: Path, extra: list[str]) -> None:
    """A real 2-process DDP run (gloo) against the same run in one process: the same steps,
    tokens and, without dropout, the same losses up to float summation order; one writer."""
    common = ["model.dropout=0", "impl.accelerator=cpu", "impl.checkpoint=false", *extra]
    single = train_run(tmp_path / "single", *common)
    run_dir = tmp_path / "ddp"
    run_dmx("train", *TINY, *common, "impl.devices=2", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    ddp = json.loads((run_dir / "metrics.json").read_text())
    assert ddp["status"] == "done"
    for key in ("steps", "epochs", "tokens_seen"):
        assert ddp[key] == single[key], key
    for key in ("final_val_loss", "final_train_loss", "final_val_acc"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-5), key
    # What the masks did, over both processes' rows: the masks are keyed by row, so the
    # counts are the one-process run's exactly (dynamic masking's diversity is the epoch
    # count, not the half of it that counting rank 0's rows over all rows gave).
    for key in (
        "mask_rate",
        "mask_rate_target",
        "mask_frac_mask",
        "mask_frac_random",
        "mask_frac_kept",
        "mask_diversity",
    ):
        assert ddp[key] == single[key], key
    if extra:
        assert ddp["adaptive_updates"] == single["adaptive_updates"] >= 2
        for key in ("adaptive_rate_std", "adaptive_rate_p05", "adaptive_rate_p95"):
            assert ddp[key] == pytest.approx(single[key], rel=1e-5), key
    assert (run_dir / "history.csv").read_text().count("\n") == single["epochs"] + 1
    # Rank 1 writes nothing but its own log.
    assert (run_dir / "adaptive_rates.json").exists() == bool(extra)
    files = {p.name for p in run_dir.iterdir()} - {"adaptive_rates.json"}
    assert files == {
        ".hydra",
        ".lock",
        "config.yaml",
        "encoder.pt",
        "encoder_best.pt",
        "history.csv",
        "metrics.json",
        "train.log",
        "train.rank1.log",
    }


def test_rank_zero_is_read_from_the_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert is_rank_zero()
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("LOCAL_RANK", "1")  # a child Lightning started inside a SLURM job
    assert not is_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "2")  # torchrun, node 1
    assert not is_rank_zero()


@pytest.mark.slow
def test_a_sweep_job_takes_one_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    with pytest.raises(UserError, match=r"impl.devices=2 in a sweep: .* dmx train"):
        one_device_per_job(make_config("impl.devices=2"), 0)
    monkeypatch.setenv("SLURM_NTASKS", "2")  # SLURM starts one process per device itself
    assert one_device_per_job(make_config("impl.devices=2"), 0).impl.devices == 2
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert one_device_per_job(make_config(), 4).impl.devices == [1]
    assert one_device_per_job(make_config("impl.accelerator=cpu"), 4).impl.devices == "auto"


@pytest.mark.slow
def test_a_data_parallel_run_stopped_mid_epoch_resumes_to_the_bit(tmp_path: Path) -> None:
    """Two 2-process runs, dropout on: one uninterrupted; one sent SIGTERM (rank 0 only, as
    ``kill`` does) in epoch 2, which both processes stop at one step with a checkpoint,
    then continued by the same command. Identical metrics and history: the data-parallel
    run is reproducible, and resumes mid-epoch exactly, its mask statistics and AMLM's
    half-filled window summed over both processes in the checkpoint."""
    from helpers import DMX, RESUME_FIELDS, TIMINGS

    args = tiny("impl.accelerator=cpu", "impl.devices=2", "trainer.max_epochs=3")
    args += ["mask=amlm", "mask.adapt_every=4", "impl.checkpoint_every_n_steps=20"]

    def result(run: Path) -> tuple[dict[str, Any], list[str]]:
        metrics = json.loads((run / "metrics.json").read_text())
        history = (run / "history.csv").read_text().splitlines()
        skip = TIMINGS | RESUME_FIELDS
        return {k: v for k, v in metrics.items() if k not in skip}, [
            row.rsplit(",", 1)[0]
            for row in history  # train_s aside
        ]

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    run_dmx("train", *args, f"hydra.run.dir={whole}", cwd=tmp_path)
    proc = subprocess.Popen(
        [DMX, "train", *args, f"hydra.run.dir={cut}"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while not (cut / "checkpoints" / "step-000000020.ckpt").exists():  # inside epoch 2
        assert proc.poll() is None and time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    stopped = json.loads((cut / "metrics.json").read_text())
    assert stopped["status"] == "interrupted"
    run_dmx("train", *args, f"hydra.run.dir={cut}", cwd=tmp_path)
    resumed = json.loads((cut / "metrics.json").read_text())
    # At step 20 or a little later (a busy machine): never earlier than the signal.
    assert resumed["status"] == "done" and resumed["resumed_from_step"] >= 20
    assert result(cut) == result(whole)
