"""The config groups a user picks from, for ``--help`` and shell completion.

Read from the files of the packaged config (``dmx.conf``), not by starting Hydra, so
``dmx train --help`` and a Tab stay instant. The launchers come from Hydra and its plugins;
a test checks this list against Hydra's own.
"""

from __future__ import annotations

import dataclasses
from importlib import resources

# The groups a user chooses from, in the order --help lists them.
GROUPS = (
    "mask",
    "attention",
    "data",
    "finetune",
    "eval",
    "model",
    "experiment",
    "rate",
    "hydra/launcher",
)
# Launchers that are not files of dmx's config: Hydra's own and its installed plugins'.
PLUGIN_LAUNCHERS = ("basic", "joblib", "submitit_local", "submitit_slurm")


def choices(group: str) -> list[str]:
    """The options of one config group, sorted."""
    folder = resources.files("dmx.conf").joinpath(*group.split("/"))
    found = [p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")]
    if group == "hydra/launcher":
        found += PLUGIN_LAUNCHERS
    return sorted(set(found))


def groups_help() -> str:
    """The epilog of ``dmx train --help`` and ``dmx sweep --help``, as Hydra's own help
    lists its config groups."""
    # Rich help rewraps a paragraph: each line is its own paragraph.
    width = max(len(g) for g in GROUPS)
    return "\n\n".join(
        [
            "[bold]Config groups[/bold] (pick one with group=option, e.g. mask=span):",
            *(f"  {group:<{width}}  {', '.join(choices(group))}" for group in GROUPS),
            "Every other setting is key=value (mask.prob=0.3); `dmx train --cfg job` prints "
            "them all.",
        ]
    )


def setting_keys() -> list[str]:
    """Every dotted setting of the schema (mask.prob, trainer.max_epochs, ...)."""
    from dmx.config import Config

    keys = []
    config = Config()
    for section in dataclasses.fields(Config):
        value = getattr(config, section.name)
        if dataclasses.is_dataclass(value):
            keys += [f"{section.name}.{f.name}" for f in dataclasses.fields(value)]
        else:
            keys.append(section.name)  # seed, resume, experiment_name
    return keys


def complete_override(incomplete: str) -> list[str]:
    """Shell completion of one override: a group's options after ``group=``, else the
    group names and the settings that start with what was typed."""
    if "=" in incomplete:
        key, typed = incomplete.split("=", 1)
        if key in GROUPS:
            return [f"{key}={c}" for c in choices(key) if c.startswith(typed)]
        return []
    groups = [f"{g}=" for g in GROUPS if g.startswith(incomplete)]
    settings = [f"{k}=" for k in setting_keys() if k.startswith(incomplete) and k not in GROUPS]
    return [*groups, *settings]


__all__ = ["GROUPS", "choices", "complete_override", "groups_help", "setting_keys"]
