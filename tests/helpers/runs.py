"""The real config composed in-process and shrunk, and the installed ``dmx`` command.

Most tests train in this process: :func:`make_config` composes the real config with
Hydra's compose API (the same path ``dmx train`` takes), shrinks it, and the test calls
:func:`dmx.run.train.train` directly. Only tests of the command itself start ``dmx``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dmx.config import Config
from dmx.config.validate import compose_checked

# The real config, shrunk: a one-layer model on a small slice of the embedded corpus, so a
# complete run takes a second or two on a CPU.
TINY = [
    "model.n_layers=1",
    "model.d_model=32",
    "model.n_heads=2",
    "model.d_ff=64",
    "data.n_docs=60",
    "data.val_docs=10",
    "data.vocab_size=256",
    "data.seq_len=32",
    "data.batch_size=16",
    "trainer.max_epochs=2",
    # One cell of the fine-tuning protocol's grid, for the tests that fine-tune at all.
    "finetune.lrs=[5e-4]",
    "finetune.seeds=[0]",
    # A few pairs a paradigm, for the runs that score minimal pairs (the demo preset does);
    # the untrained control only where a test asks for it.
    "eval.pairs_per_paradigm=5",
    "untrained_control=false",
    "impl.progress_bar=false",
    "logger=none",
]

DMX = str(Path(sys.executable).with_name("dmx"))


def tiny(*overrides: str) -> list[str]:
    """TINY with ``overrides``: a key TINY sets takes the new value in its place (dmx
    refuses a key given twice), the others follow."""
    keys = {o.split("=", 1)[0].lstrip("+~"): o for o in overrides}
    kept = [t for t in TINY if t.split("=", 1)[0] not in keys]
    return [*kept, *overrides]


# Figures that measure the machine, not the experiment: they differ between identical runs.
TIMINGS = {
    "wall_s",
    "setup_s",
    "train_s",
    "tokens_per_s",
    "peak_mem_mb",
    "mask_time_s",
    "mask_time_share",
    "finetune_s",
    "model_tflops",
    "mfu",
}
# What differs between a resumed run and the same run trained at one go: where it resumed
# from, and how many attempts trained it.
RESUME_FIELDS = {"resumed_from_step", "attempts"}


def make_config(*overrides: str) -> Config:
    """The checked config ``dmx train`` would build from TINY plus ``overrides``."""
    return compose_checked([*TINY, *overrides])


def train_run(run_dir: Path, *overrides: str) -> dict[str, Any]:
    """Train one shrunk run in this process; returns its metrics.json content."""
    from dmx.run.train import train

    return train(make_config(*overrides), run_dir)


def invoke_dmx(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`dmx ARGS` from ``cwd`` in this process (typer's runner), answered as :func:`run_dmx`
    answers: exit code, stdout, stderr. For a command that needs no process of its own (no
    signal, no log line asserted): a new interpreter costs 10 s of imports."""
    from typer.testing import CliRunner

    from dmx.cli import app

    with contextlib.chdir(cwd):
        outcome = CliRunner().invoke(app, list(args), prog_name="dmx")
    if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception
    result = subprocess.CompletedProcess(
        ["dmx", *args], outcome.exit_code, outcome.stdout, outcome.stderr
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"dmx {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def run_dmx(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the installed `dmx` command, as a user would, from ``cwd``."""
    result = subprocess.run(
        [DMX, *args], cwd=cwd, env=os.environ.copy(), capture_output=True, text=True, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"dmx {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result
