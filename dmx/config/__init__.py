"""Typed schema of every setting, so a wrong type or value fails before any training.

One dataclass per config group, each in the file of its concern: what is trained
(:mod:`~dmx.config.model`), what is read (:mod:`~dmx.config.data`), how tokens are masked
(:mod:`~dmx.config.mask`), how a run runs and what it records (:mod:`~dmx.config.impl`).
Ranges are checked in ``__post_init__``, which runs when :func:`to_config`
(:mod:`~dmx.config.loading`, the Hydra glue) turns the composed DictConfig into these
dataclasses; that happens at start, in the CLI and in the task. :mod:`~dmx.config.validate`
composes overrides with Hydra and checks them before anything runs.

Layer 8 of 9: imports only dmx.common (and Hydra, OmegaConf). A new setting is one field
here, one YAML line under conf/, and the code that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dmx.common.choices import RESUME
from dmx.config.checks import check
from dmx.config.data import DataConfig, FinetuneConfig
from dmx.config.eval import EvalConfig
from dmx.config.impl import ImplConfig, LoggerConfig
from dmx.config.mask import MaskConfig
from dmx.config.model import AttentionConfig, ModelConfig, OptimConfig, TrainerConfig


@dataclass
class Config:
    seed: int = 0
    # auto: continue a run folder's unfinished run from its newest checkpoint, and train
    # nothing for a finished one; true: the same, but a folder with nothing to resume is an
    # error; false: start over, replacing what the folder holds.
    resume: str = "auto"
    # Names the experiment in run folders and W&B; presets in experiments/ set it.
    experiment_name: str = "default"
    # dmx sweep only: after the grid, one run per seed of the same encoder never pretrained
    # (trainer.max_epochs=0), scored by the same downstream tasks: the control the report
    # labels `untrained`, showing how far pretraining got above it. dmx train ignores it.
    untrained_control: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    impl: ImplConfig = field(default_factory=ImplConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        check(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        check(
            str(self.resume).lower() in RESUME,
            f"resume must be one of {', '.join(RESUME)}; got {self.resume!r}",
        )
        self.resume = str(self.resume).lower()
        check(
            self.data.seq_len <= self.model.max_seq_len,
            f"data.seq_len ({self.data.seq_len}) exceeds model.max_seq_len "
            f"({self.model.max_seq_len}); lower data.seq_len or pick a larger model",
        )
        check(
            (self.finetune.max_len or self.data.seq_len) <= self.model.max_seq_len,
            f"finetune.max_len ({self.finetune.max_len}) exceeds model.max_seq_len "
            f"({self.model.max_seq_len}); lower finetune.max_len or pick a larger model",
        )
        check(
            self.trainer.max_epochs > 0 or self.finetune.name != "none" or self.eval.name != "none",
            "trainer.max_epochs=0 skips pretraining, which leaves nothing to do without a "
            "downstream task; add eval=embedded or finetune=embedded (or blimp, tsv, hf), or "
            "train for some epochs",
        )
        check(
            not self.untrained_control or self.finetune.name != "none" or self.eval.name != "none",
            "untrained_control=true adds runs that are only scored downstream; add eval=embedded "
            "(or eval=blimp, finetune=...), or set untrained_control=false",
        )
        # PLL reads every other token of the sentence; an encoder that learned under a
        # pattern hiding some of them would be scored on inputs it never saw.
        check(
            self.eval.name == "none" or self.attention.pattern in ("full", "learned_gate"),
            f"eval={self.eval.name} scores sentences with full attention, but this encoder "
            f"is pretrained under attention={self.attention.pattern}; evaluate runs "
            "pretrained with attention=full (or learned_gate)",
        )


# The Hydra glue needs Config, so it is imported after it.
from dmx.config.loading import to_config, unknown_key  # noqa: E402

__all__ = [
    "AttentionConfig",
    "Config",
    "DataConfig",
    "EvalConfig",
    "FinetuneConfig",
    "ImplConfig",
    "LoggerConfig",
    "MaskConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainerConfig",
    "to_config",
    "unknown_key",
]
