"""How a run runs (``impl``) and what it records (``logger``): never what it computes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dmx.common.choices import ACCELERATORS, LOGGER_MODES, LOGGERS, PRECISIONS, PROFILERS
from dmx.config.checks import check, check_choice


@dataclass
class ImplConfig:
    """How a run is executed, never what it computes (cramming's ``impl``).

    Each setting changes speed, memory or where files go, and the result at most by
    floating-point noise, so the report pools runs that differ only here (and says so).
    Precision belongs here by that rule: bf16 autocast changes the arithmetic, not the
    experiment, and ``auto`` picks it per machine (bf16 on a GPU, fp32 on a CPU); runs
    record the precision they actually used, and the report notes a group that mixes them.
    """

    accelerator: str = "auto"
    # Devices per machine; more than one trains with DDP (data.batch_size stays global).
    devices: Any = "auto"
    # Machines, for a multi-node run started by torchrun or SLURM.
    num_nodes: int = 1
    # auto: bf16 mixed precision on a GPU that has it, fp32 on the CPU.
    precision: str = "auto"
    num_workers: int = 0
    # A progress bar on a terminal (never in a log file or a pipe).
    progress_bar: bool = True
    # Tokenized corpora are cached here (null: $DMX_CACHE_DIR, else ~/.cache/dmx).
    cache_dir: str | None = None
    # Save checkpoints at the end of every epoch (checkpoints/last.ckpt is the newest), and
    # every N optimiser steps when checkpoint_every_n_steps > 0; keep the newest few.
    checkpoint: bool = True
    checkpoint_every_n_steps: int = 0
    keep_checkpoints: int = 2
    # torch.compile each encoder block (state_dict keys unchanged). Worth it on a GPU; on
    # the 2-core CPU it made bf16 steps slower, so it is off by default.
    compile: bool = False
    # torch.use_deterministic_algorithms (Lightning's deterministic=True): on a GPU, the same
    # config and seed give the same numbers where PyTorch allows it, at some cost in speed.
    # A CPU run is reproducible without it.
    deterministic: bool = False
    # Lightning's profiler over pretraining (simple: time per hook and action; advanced:
    # cProfile per action; pytorch: operator traces), written to the run folder as
    # fit-profile.txt: where a step's time goes besides the model's arithmetic.
    profiler: str = "none"
    # CPU threads a run's torch uses (torch.set_num_threads); null: torch's default, one per
    # core. Two runs at once on a 2-core machine (hydra/launcher=joblib) want 1 each.
    threads: int | None = None

    def __post_init__(self) -> None:
        check_choice("impl.accelerator", self.accelerator, ACCELERATORS)
        check_choice("impl.profiler", self.profiler, PROFILERS)
        check(
            self.threads is None or self.threads >= 1,
            f"impl.threads must be >= 1 (or null: one per core), got {self.threads}",
        )
        check_choice("impl.precision", self.precision, PRECISIONS)
        check(self.num_workers >= 0, f"impl.num_workers must be >= 0, got {self.num_workers}")
        check(self.num_nodes >= 1, f"impl.num_nodes must be >= 1, got {self.num_nodes}")
        check(
            self.checkpoint_every_n_steps >= 0,
            f"impl.checkpoint_every_n_steps must be >= 0, got {self.checkpoint_every_n_steps}",
        )
        check(
            self.keep_checkpoints >= 1,
            f"impl.keep_checkpoints must be >= 1, got {self.keep_checkpoints}",
        )


@dataclass
class LoggerConfig:
    name: str = "wandb"
    project: str = "dmx"
    entity: str | None = None
    # auto: online when W&B credentials are present, offline otherwise (never waits on a network).
    mode: str = "auto"
    tags: list[str] = field(default_factory=list)
    init_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        check(
            self.name in LOGGERS,
            f"logger.name must be {' or '.join(LOGGERS)}, got {self.name!r}",
        )
        check_choice("logger.mode", self.mode, LOGGER_MODES)
