"""`dmx sweep --wandb`: the grid `dmx sweep` would run, written as a W&B sweep instead.

A W&B grid sweep lets any number of machines share one grid (`wandb agent` on each takes
the next run), where Hydra's multirun runs it in one process. The spec must run exactly the
runs Hydra would, so the grid is built the way Hydra's BasicSweeper builds it: the preset's
``hydra.sweeper.params`` then the command line, parsed by Hydra's own override parser, a
later value for a key replacing an earlier one. Each agent then runs
``dmx-train key=value ...`` through W&B's ``${args_no_hyphens}``, which is Hydra's override
syntax as it stands, so a run of the W&B sweep composes the same config as its Hydra twin.

Every value stays the string Hydra would put on the command line: W&B would print Python's
``None`` as ``None``, which Hydra reads as a string, where ``null`` means None.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra.errors import HydraException, OverrideParseException

from dmx.common.errors import UserError, exception_line
from dmx.common.files import atomic_write_text
from dmx.common.overrides import is_override, override_key, override_value
from dmx.config.validate import compose_config, overrides_parser
from dmx.tracking.wandb_run import has_credentials

SPEC_FILE = "wandb_sweep.yaml"
PROGRAM = "dmx-train"
COMMAND = [PROGRAM, "${args_no_hyphens}"]
# Each agent run's folder: inside the sweep's own, named by its W&B run id, which the agent
# puts in the run's environment. Hydra resolves it when the run starts (W&B's own
# ${envvar:...} macro is filled in once, before the id is set, so it cannot name a run).
RUN_DIR = "hydra.run.dir={folder}/${{oc.env:WANDB_RUN_ID}}"
# wandb.sweep has no timeout of its own and W&B retries on a network error; past this the
# user is told to register the saved file later rather than left waiting.
REGISTER_TIMEOUT_S = 60.0

# Hydra settings that only place or launch the local multirun: a W&B agent is the launcher,
# and its runs are single runs, so these have nothing to say there.
_LOCAL_ONLY = ("hydra.sweep.", "hydra/launcher", "hydra.launcher.")
# Hydra settings that shape the grid: honoured while composing, then left out of the spec.
_GRID = ("hydra.sweeper.",)


def _split_hydra(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """dmx's own overrides, and the Hydra settings that shape the grid.

    Any other Hydra setting or flag would change what a run does (its folder, its logging),
    and the spec has no place for it: that is the user's to decide, so it is refused.
    """
    config: list[str] = []
    grid: list[str] = []
    for arg in args:
        if not is_override(arg):
            raise UserError(
                f"{arg} is a Hydra flag and a W&B sweep carries key=value overrides only; "
                "drop it, or run the grid here with dmx sweep (no --wandb)"
            )
        key = override_key(arg)
        if key == "hydra/sweeper":
            if arg.split("=", 1)[1] != "basic":
                raise UserError(
                    f"{arg}: only Hydra's basic (grid) sweeper has a W&B equivalent; "
                    "drop it, or run this sweep with dmx sweep (no --wandb)"
                )
        elif key.startswith(_LOCAL_ONLY):
            continue
        elif key.startswith(_GRID):
            grid.append(arg)
        elif key.startswith(("hydra.", "hydra/")):
            raise UserError(
                f"{arg} is a Hydra setting and W&B agents pass dmx-train only dmx's own "
                f"overrides; drop it (or add it to the command in {SPEC_FILE}), or run the "
                "grid here with dmx sweep (no --wandb)"
            )
        else:
            config.append(arg)
    return config, grid


def _grid(overrides: Sequence[str]) -> dict[str, tuple[bool, list[str]]]:
    """Key -> (swept?, values), in BasicSweeper's order: first mention of a key fixes its
    place, the last one its values. Parsed with dmx's config loader so glob() sees the
    groups (:func:`dmx.config.validate.overrides_parser`)."""
    grid: dict[str, tuple[bool, list[str]]] = {}
    try:
        parsed = overrides_parser().parse_overrides(list(overrides))
        for text, override in zip(overrides, parsed, strict=True):
            key = override.get_key_element()
            if not override.is_sweep_override():
                grid[key] = (False, [override.get_value_element_as_str()])
                continue
            if not override.is_discrete_sweep():
                raise UserError(
                    f"{text}: a grid sweep needs listed values; use a list "
                    f"({key}=0.1,0.2) or range(start,stop,step)"
                )
            values = list(override.sweep_string_iterator())
            if not values:
                raise UserError(f"{text} sweeps over no values; give {key} at least one")
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise UserError(
                    f"{text} lists {', '.join(repeated)} more than once; list each value once"
                )
            grid[key] = (True, values)
    except (OverrideParseException, HydraException) as err:
        raise UserError(exception_line(err)) from None
    return grid


def sweep_spec(args: Sequence[str]) -> dict[str, Any]:
    """The W&B grid sweep that runs what ``dmx sweep ARGS`` (Hydra's multirun) would run.

    ``args`` are those `dmx sweep` builds, ``experiment=NAME`` among them. Raises UserError
    for what a W&B grid cannot express, naming the fix.
    """
    config_args, grid_args = _split_hydra(args)
    # Hydra composes a multirun's config without its sweeps; the preset's grid is there.
    cfg = compose_config([*_non_sweeps(config_args), *grid_args], with_hydra=True)
    if cfg.logger.name == "none" or cfg.logger.mode in ("offline", "disabled"):
        what = "logger=none" if cfg.logger.name == "none" else f"logger.mode={cfg.logger.mode}"
        raise UserError(
            f"{what}: W&B agent runs would report nothing to the sweep; drop it, or run the "
            "grid here with dmx sweep (no --wandb)"
        )
    params = cfg.hydra.sweeper.params or {}
    preset = [f"{key}={value}" for key, value in params.items()]
    grid = _grid([*preset, *config_args])
    spec: dict[str, Any] = {
        "name": override_value(args, "experiment") or str(cfg.experiment_name),
        "project": str(cfg.logger.project),
    }
    if cfg.logger.entity:
        spec["entity"] = str(cfg.logger.entity)
    spec["method"] = "grid"
    # W&B's docs mark program as required, and its CLI agent reads it; the command says how.
    spec["program"] = PROGRAM
    folder = override_value(args, "hydra.sweep.dir") or str(cfg.hydra.sweep.dir)
    spec["command"] = [*COMMAND, RUN_DIR.format(folder=folder)]
    spec["parameters"] = {
        key: {"values": values} if swept else {"value": values[0]}
        for key, (swept, values) in grid.items()
    }
    return spec


def _non_sweeps(overrides: Sequence[str]) -> list[str]:
    try:
        parsed = overrides_parser().parse_overrides(list(overrides))
    except OverrideParseException as err:
        raise UserError(exception_line(err)) from None
    return [text for text, o in zip(overrides, parsed, strict=True) if not o.is_sweep_override()]


def run_count(spec: dict[str, Any]) -> int:
    """How many runs the grid holds: the product of every parameter's number of values."""
    return math.prod(len(p.get("values", [None])) for p in spec["parameters"].values())


def spec_yaml(spec: dict[str, Any]) -> str:
    header = (
        "# A W&B grid sweep written by `dmx sweep --wandb`: the runs `dmx sweep` would run.\n"
        "# Every value is the string dmx-train reads as a Hydra override (null is None).\n"
    )
    return header + yaml.safe_dump(spec, sort_keys=False, default_flow_style=False)


def can_register() -> bool:
    """W&B can take the sweep now: online (WANDB_MODE unset or online) with an API key."""
    if os.environ.get("WANDB_MODE", "online") not in ("", "online"):
        return False
    return has_credentials()


def _scrub(text: str) -> str:
    """W&B's errors may quote a request; the key must never reach the terminal."""
    key = os.environ.get("WANDB_API_KEY")
    return text.replace(key, "***") if key else text


def register(spec: dict[str, Any], path: Path) -> str:
    """Create the sweep on W&B; returns its id. ``path`` (the saved spec) names the fallback.

    wandb.sweep takes no timeout, so it runs in a daemon thread that is abandoned after
    REGISTER_TIMEOUT_S: a dead network costs a minute at most, never a hang.
    """
    import wandb

    result: dict[str, Any] = {}

    def create() -> None:
        try:
            result["id"] = wandb.sweep(spec, project=spec["project"], entity=spec.get("entity"))
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            result["error"] = err

    later = f"{path} is saved: check `wandb login` and the network, then run `wandb sweep {path}`"
    thread = threading.Thread(target=create, name="dmx-wandb-sweep", daemon=True)
    thread.start()
    thread.join(REGISTER_TIMEOUT_S)
    if thread.is_alive():
        raise UserError(
            f"W&B did not answer within {REGISTER_TIMEOUT_S:.0f} s while registering the "
            f"sweep; {later}"
        )
    if "error" in result:
        reason = _scrub(exception_line(result["error"]))
        raise UserError(f"could not register the W&B sweep ({reason}); {later}")
    return str(result["id"])


def save_sweep(spec: dict[str, Any], folder: Path) -> str | None:
    """Write ``folder/wandb_sweep.yaml``; register it when W&B can take it now.

    Returns the sweep id, or None when W&B is offline or has no key: then the file is
    what the user registers later with `wandb sweep`.
    """
    path = Path(folder) / SPEC_FILE
    atomic_write_text(path, spec_yaml(spec))
    if not can_register():
        return None
    return register(spec, path)


def next_steps(spec: dict[str, Any], path: Path, sweep_id: str | None) -> list[str]:
    """What the user runs next, one line each."""
    where = f"{spec['entity']}/{spec['project']}" if spec.get("entity") else spec["project"]
    lines = [f"W&B sweep spec: {path} ({run_count(spec)} runs; nothing trained here)"]
    if sweep_id is None:
        lines += [
            "not registered (W&B offline or no API key); register it with:",
            f"  wandb sweep {path}",
            "then run it on any number of machines with the agent command that prints:",
            f"  wandb agent {where}/SWEEP_ID",
        ]
    else:
        lines += [
            f"registered W&B sweep: {sweep_id}",
            "run it on any number of machines with:",
            f"  wandb agent {where}/{sweep_id}",
        ]
    folder = path.parent
    lines.append(
        f"agent runs land in {folder}/<run id> (start agents from this folder's project, or "
        f"on a shared file system); then: dmx report {folder}"
    )
    return lines
