"""Weights & Biases, mirrored from the run folder: useful when there, never required.

mode=auto goes online only when credentials exist (WANDB_API_KEY, or `wandb login`'s
netrc entry) and otherwise writes an offline run that `wandb sync` uploads later. An
online start that fails (no network, bad key) falls back to offline after
``init_timeout_s`` instead of hanging. The report never reads W&B: the run folder is the
source of truth.
"""

from __future__ import annotations

import json
import logging
import netrc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from dmx.common.errors import one_line
from dmx.config import Config

log = logging.getLogger("dmx")


def has_credentials() -> bool:
    """Whether W&B has an API key: WANDB_API_KEY, a ``wandb login`` (its session file or
    netrc entry for the configured host), or W&B's settings; asked the way wandb.api.api_key
    asks, without its deprecation warning."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib import wbauth

        settings = wandb_setup.singleton().settings
        host = settings.base_url
        found = wbauth.session_credentials(host=host) or wbauth.read_netrc_auth(host=host)
        return bool(found or settings.api_key)
    except Exception:  # noqa: BLE001 - wandb moved its internals: any netrc entry for W&B
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
    run_dir: Path

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
        wandb.finish(exit_code=0 if summary.get("status") == "done" else 1)
        if self.mode == "offline" and not in_sweep():  # a sweep says it once, at its end
            log.info("W&B run saved offline; upload it with: dmx sync %s", self.run_dir)


def in_sweep() -> bool:
    """Whether this run is one job of a Hydra multirun (dmx sweep, dmx-train -m)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


# What a run's history is plotted against by default: tokens seen, the one axis on which
# runs of any batch size, sequence length or device count compare.
STEP_METRICS = {"train/*": "train/tokens_seen", "val/*": "val/tokens_seen"}
JOB_TYPE = "pretrain"
FINETUNE_JOB_TYPE = "finetune"


def make_logger(
    config: Config,
    run_dir: Path,
    strategy: str,
    names: tuple[str, str],
    run_id: str | None = None,
) -> WandbRun | None:
    """A W&B run with ``names``' group and name (dmx.tracking.names: the experiment cell, and
    the cell and seed); ``run_id`` continues an earlier W&B run (a resumed run)."""
    if config.logger.name == "none":
        return None
    mode = resolve_mode(config.logger.mode)
    if mode == "disabled":
        return None
    from lightning.pytorch.loggers import WandbLogger

    tags = list(
        dict.fromkeys([config.experiment_name, strategy, config.model.name, *config.logger.tags])
    )
    group, name = names
    for attempt in (mode, "offline"):
        logger = WandbLogger(
            project=config.logger.project,
            entity=config.logger.entity,
            name=name,
            group=group,
            job_type=JOB_TYPE,
            tags=tags,
            save_dir=str(run_dir),
            config={
                **OmegaConf.to_container(OmegaConf.structured(config)),
                "mask_strategy": strategy,
            },
            mode=attempt,
            id=run_id,
            resume="allow" if run_id else None,
            settings=_settings(config),
        )
        # Lightning's logger always hands wandb.init ``anonymous=None``, which W&B (0.19 on)
        # answers with a deprecation line on every run; dmx never asks for anonymous runs.
        logger._wandb_init.pop("anonymous", None)
        try:
            run = logger.experiment  # starts the W&B run now, so a failure is caught here
            # The epoch's training loss is logged with validation, beside val/tokens_seen.
            run.define_metric("train/epoch_loss", step_metric="val/tokens_seen")
            for pattern, step in STEP_METRICS.items():
                run.define_metric(step)
                run.define_metric(pattern, step_metric=step)
            return WandbRun(lightning=logger, mode=attempt, run_dir=run_dir)
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


def _settings(config: Config) -> Any:
    import wandb

    return wandb.Settings(init_timeout=config.logger.init_timeout_s, silent=True)


def log_finetuning(config: Config, run_dir: Path, metrics: dict[str, Any]) -> None:
    """``dmx finetune``'s W&B run (job type finetune) in the pretraining run's group, so a
    cell's pretraining and its later fine-tunings sit together: every protocol cell the run
    folder holds as a table, the reported figures in the summary."""
    if config.logger.name == "none":
        return
    mode = resolve_mode(config.logger.mode)
    if mode == "disabled":
        return
    import wandb

    from dmx.common.run_folder import FINETUNE_DIR

    strategy = metrics.get("mask_strategy", "?")
    group = metrics.get("wandb_group") or f"{config.experiment_name}/{strategy}"
    name = metrics.get("wandb_name") or f"{strategy}-s{config.seed}"
    cells = sorted((run_dir / FINETUNE_DIR).glob("*/*.json"))
    records = [json.loads(path.read_text()) for path in cells]
    figures = sorted({k for r in records for k in r.get("best", {})})
    table = wandb.Table(columns=["task", "lr", "seed", "best_epoch", *figures])
    for r in records:
        best = r.get("best", {})
        table.add_data(
            r["task"], r["lr"], r["seed"], r["best_epoch"], *(best.get(k) for k in figures)
        )
    options: dict[str, Any] = dict(
        project=config.logger.project,
        entity=config.logger.entity,
        name=f"{name}-finetune",
        group=group,
        job_type=FINETUNE_JOB_TYPE,
        tags=list(dict.fromkeys([config.experiment_name, strategy, config.model.name])),
        config={
            "finetune": OmegaConf.to_container(OmegaConf.structured(config.finetune)),
            "pretrain_run": metrics.get("wandb_id"),
            "run_dir": str(run_dir),
        },
        dir=str(run_dir),
        reinit="create_new",  # dmx finetune on a sweep makes one W&B run per run folder
        settings=_settings(config),
    )
    run = start_run(mode, "the fine-tuning run", **options)
    offline = run.settings.mode == "offline"
    run.log({"cells": table})
    for key, value in metrics.items():
        if key.startswith(("finetune_", "glue_")) and isinstance(value, (int, float, str)):
            run.summary[key] = value
    run.finish()
    if offline:
        log.info("W&B fine-tuning run saved offline; upload it with: dmx sync %s", run_dir)


def start_run(mode: str, what: str, **options: Any) -> Any:
    """``wandb.init`` in ``mode``, or offline when the online start fails (no network, a bad
    key): one warning line naming ``what`` is logged offline, never a hang past the
    settings' init timeout. For runs dmx starts itself (fine-tuning, the report); a
    training run starts through Lightning's logger (:func:`make_logger`)."""
    import wandb

    for attempt in dict.fromkeys([mode, "offline"]):
        try:
            return wandb.init(mode=attempt, **options)
        except Exception as err:
            if attempt == "offline":
                raise
            log.warning("W&B online start failed (%s); logging %s offline", one_line(err), what)
    raise AssertionError("unreachable")
