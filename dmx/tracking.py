"""Weights & Biases, mirrored from the run folder: useful when there, never required.

mode=auto goes online only when credentials exist (WANDB_API_KEY, or `wandb login`'s
netrc entry) and otherwise writes an offline run that `wandb sync` uploads later. An
online start that fails (no network, bad key) falls back to offline after
``init_timeout_s`` instead of hanging. The report never reads W&B: the run folder is the
source of truth.
"""

from __future__ import annotations

import logging
import netrc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from dmx.config import Config
from dmx.errors import one_line

log = logging.getLogger("dmx")


def has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc(os.environ.get("NETRC")).hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return any("wandb" in host for host in hosts)


def resolve_mode(requested: str) -> str:
    """WANDB_MODE wins (W&B's own convention), then the config, with auto decided here."""
    env = os.environ.get("WANDB_MODE")
    if env in ("online", "offline", "disabled"):
        return env
    if requested == "auto":
        return "online" if has_credentials() else "offline"
    return requested


@dataclass
class WandbRun:
    lightning: Any  # lightning's WandbLogger
    mode: str

    @property
    def run_id(self) -> str | None:
        return getattr(self.lightning.experiment, "id", None)

    def close(self, summary: dict[str, Any]) -> None:
        """Copy the final metrics into W&B's summary, finish, and say how to upload."""
        import wandb

        run = wandb.run
        if run is None:
            return
        for key, value in summary.items():
            if isinstance(value, (int, float, str)) or value is None:
                run.summary[key] = value
        sync_dir = Path(run.dir).parent
        wandb.finish(exit_code=0 if summary.get("status") == "done" else 1)
        if self.mode == "offline":
            log.info("W&B run saved offline; upload it with: wandb sync %s", sync_dir)


def make_logger(
    config: Config, run_dir: Path, strategy: str, run_id: str | None = None
) -> WandbRun | None:
    """A W&B run grouped by the masking ``strategy`` label (what the masker does);
    ``run_id`` continues an earlier W&B run (a resumed run)."""
    if config.logger.name == "none":
        return None
    mode = resolve_mode(config.logger.mode)
    if mode == "disabled":
        return None
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    tags = list(
        dict.fromkeys([config.experiment_name, strategy, config.model.name, *config.logger.tags])
    )
    for attempt in (mode, "offline"):
        logger = WandbLogger(
            project=config.logger.project,
            entity=config.logger.entity,
            name=run_dir.name,
            group=strategy,
            tags=tags,
            save_dir=str(run_dir),
            config={
                **OmegaConf.to_container(OmegaConf.structured(config)),
                "mask_strategy": strategy,
            },
            mode=attempt,
            id=run_id,
            resume="allow" if run_id else None,
            settings=wandb.Settings(init_timeout=config.logger.init_timeout_s, silent=True),
        )
        try:
            _ = logger.experiment  # starts the W&B run now, so a failure is caught here
            return WandbRun(lightning=logger, mode=attempt)
        except Exception as err:
            if attempt == "offline":
                raise
            # W&B's message spans lines and names wandb.init's setting: one line, and dmx's.
            log.warning(
                "W&B online start failed (%s); logging offline instead (a slow network: "
                "raise logger.init_timeout_s)",
                one_line(err),
            )
    raise AssertionError("unreachable")
