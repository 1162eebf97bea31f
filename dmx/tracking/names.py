"""How a run is named where runs of many experiments meet (W&B): by its experiment cell.

A sweep's runs differ in the keys it sweeps. The seeds of one cell (``static(K=1)`` of the
``static_vs_dynamic`` sweep) are replicates, and W&B should show them as one group, as the
report pools them; runs of another sweep, model size or rate never join it. The cell is read
from the sweep's own record (its multirun.yaml), so it is the same for ``dmx sweep``,
``dmx-train -m``, joblib or SLURM jobs.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from dmx.config import Config
from dmx.report.labels import format_value, short_names
from dmx.tracking.wandb_run import in_sweep

# Keys whose values never make a cell of an experiment: how a run executes and is recorded.
NOT_A_CELL = ("seed", "resume", "impl", "logger", "hydra", "experiment")
# mask.* keys the strategy label spells out (static(K=1), span, corpus-weighted).
STRATEGY_KEYS = ("mask", "mask.unit", "mask.copies", "mask.weighting")


def swept_keys() -> list[str]:
    """The keys this run's sweep varies (read from the sweep's multirun.yaml: the command's
    sweeps and the preset's sweeper params), seed and how runs execute aside; [] outside a
    sweep."""
    if not in_sweep():
        return []
    from hydra.core.hydra_config import HydraConfig

    from dmx.config.validate import multirun_overrides

    try:
        parent = OmegaConf.load(Path(HydraConfig.get().sweep.dir) / "multirun.yaml")
        parsed = multirun_overrides(parent)
    except (OSError, ValueError, AttributeError):
        return []
    keys = []
    for override in parsed:
        key = override.get_key_element().lstrip("+~")
        if override.is_sweep_override() and key.split(".")[0].split("/")[0] not in NOT_A_CELL:
            keys.append(key)
    return list(dict.fromkeys(keys))


def cell_label(config: Config, strategy: str) -> str:
    """The experiment cell this run is a seed of, as the report names it: the masking
    strategy, then every other key the sweep varies with this run's value
    (``static(K=1)``, ``dynamic,prob=0.4``, ``dynamic,model=small``)."""
    from hydra.core.hydra_config import HydraConfig

    structured = OmegaConf.structured(config)
    keys = [k for k in swept_keys() if k not in STRATEGY_KEYS]
    names = short_names(keys)
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    parts = [strategy]
    for key in keys:
        value = choices.get(key) if "." not in key else OmegaConf.select(structured, key)
        parts.append(f"{names[key]}={format_value(value)}")
    return ",".join(parts)


def run_names(config: Config, strategy: str) -> tuple[str, str]:
    """(group, name) in W&B: the group is the sweep (its folder's name) and the cell, so the
    seeds of one cell form one group and nothing from another sweep joins it; the name is
    the cell and the seed."""
    from hydra.core.hydra_config import HydraConfig

    cell = cell_label(config, strategy)
    sweep = Path(HydraConfig.get().sweep.dir).name if in_sweep() else config.experiment_name
    return f"{sweep}/{cell}", f"{cell}-s{config.seed}"


__all__ = ["cell_label", "run_names", "swept_keys"]
