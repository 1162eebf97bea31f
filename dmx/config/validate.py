"""Check Hydra overrides before anything runs, and say what is wrong in one line.

Hydra reports a bad override as a multi-line message and exits 1; a typed value that is
out of range would only fail once a run has started. Here every override is composed with
Hydra's compose API (each value of a sweep once), turned into checked dataclasses, and any
failure becomes a :class:`UserError` naming the fix.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict

from dmx.common.choices import RENAMED_WEIGHTINGS
from dmx.common.errors import UserError, exception_line
from dmx.common.overrides import config_overrides, hydra_overrides, override_key
from dmx.config import Config, to_config, unknown_key
from dmx.config.loading import register

CONFIG_MODULE = "dmx.conf"

# Launchers whose runs execute on this machine. Only there is "no GPU visible" a mistake: a
# SLURM sweep is submitted from a login node that has none, to nodes that do.
LOCAL_LAUNCHERS = {
    "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
}


def _one_line(err: Exception) -> str:
    if isinstance(err, MissingConfigException) and err.options is not None:
        group = (err.missing_cfg_file or "").rsplit("/", 1)
        name = group[-1]
        key = group[0] if len(group) == 2 else "config"
        if key == "mask" and (renamed := RENAMED_WEIGHTINGS.get(name)):
            return f"mask={name} is now mask={renamed}_weighted: the new name says what it does"
        return f"unknown choice {key}={name}; choose one of: {', '.join(sorted(err.options))}"
    # Hydra's advice for a key the config lacks is to add it (+key=...), which would only
    # hide a typo: name the settings there are instead.
    unknown = re.match(r"Could not override '([^']+)'", str(err))
    if unknown and (message := unknown_key(unknown.group(1))):
        return message
    return value_line(exception_line(err))


def value_line(message: str) -> str:
    """Hydra's and OmegaConf's words for a value of the wrong type (``Error merging
    override KEY=VALUE ...``), in the words the range checks use; any other message as it
    is."""
    typed = re.match(
        r"Error merging override ([^=\s]+)=.*?\s+Value '(.*)'\s+"
        r"(?:of type '\w+' could not be converted to (\w+)|is not a valid (bool))",
        message,
    )
    if typed:
        key, value, kind = typed.group(1), typed.group(2), typed.group(3) or typed.group(4)
        wanted = TYPE_WORDS.get(kind, f"a {kind.lower()}")
        return f"{key} must be {wanted}, got {value!r}"
    listed = re.match(
        r"Error merging override ([^=\s]+)=(.*?)\s+Invalid value assigned: \w+ is not a "
        r"ListConfig",
        message,
    )
    if listed:
        key, value = listed.groups()
        return f"{key} must be a list in brackets ({key}=[a,b]), got {value!r}"
    return message


TYPE_WORDS = {"Float": "a number", "Integer": "a whole number", "bool": "true or false"}


def compose_config(overrides: Sequence[str], *, with_hydra: bool = False) -> DictConfig:
    """dmx's config composed from ``overrides`` exactly as ``dmx train`` would compose it.

    ``with_hydra`` keeps the ``hydra`` node (its run and sweep folders, its sweeper). Any
    problem Hydra finds becomes a one-line UserError.
    """
    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return compose(
                config_name="config", overrides=list(overrides), return_hydra_config=with_hydra
            )
    except (HydraException, ValueError, KeyError) as err:
        raise UserError(_one_line(err)) from None
    finally:
        GlobalHydra.instance().clear()


def compose_checked(overrides: Sequence[str], *, devices: bool = True) -> Config:
    """Compose one config and check its values; raises UserError on any problem.

    ``devices`` also checks that the GPUs asked for are visible here; off when the runs
    execute on other machines.
    """
    return _checked(compose_config(overrides), devices=devices)


def _checked(composed: DictConfig, *, devices: bool = True) -> Config:
    """A composed config (without Hydra's node) as checked dataclasses; ``devices`` as in
    :func:`compose_checked`."""
    config = to_config(composed)
    if devices:
        check_devices(config)
    return config


def check_devices(config: Config) -> None:
    """Asking for a GPU that is not there is a user's mistake, not a fault mid-run."""
    import torch

    wanted = config.impl.accelerator
    if wanted in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"impl.accelerator={wanted} but no CUDA GPU is visible; use "
            "impl.accelerator=auto (GPU when there is one, else CPU) or impl.accelerator=cpu"
        )
    devices, visible = config.impl.devices, torch.cuda.device_count()
    if wanted in ("gpu", "cuda") and isinstance(devices, int) and devices > visible:
        raise UserError(
            f"impl.devices={devices} but only {visible} GPU(s) are visible; lower impl.devices"
        )


def overrides_parser() -> OverridesParser:
    """Hydra's override parser with dmx's config loader, so that ``glob(...)`` over a config
    group (``mask=glob(*)``) can list the group's choices as Hydra's sweeper does."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path

    search_path = create_config_search_path(f"pkg://{CONFIG_MODULE}")
    return OverridesParser.create(config_loader=ConfigLoaderImpl(config_search_path=search_path))


def multirun_overrides(multirun: Any) -> list[Override]:
    """The overrides of a multirun's config (a sweep's multirun.yaml, or its live config), in
    Hydra's basic sweeper's order: the preset's ``hydra.sweeper.params``, then the command
    line's, so a key given in both takes the command line's values. Raises what Hydra's
    parser raises, or AttributeError on a config that is not a multirun's."""
    params = multirun.hydra.sweeper.get("params") or {}
    task = [str(o) for o in multirun.hydra.overrides.task]
    return overrides_parser().parse_overrides([*(f"{k}={v}" for k, v in params.items()), *task])


def sweep_values(override: Override, text: str) -> list[str]:
    """A sweep's values as Hydra's basic sweeper enumerates them; one line for a sweep it
    cannot enumerate (``interval(...)`` is for optimising sweepers, which sample it)."""
    try:
        return list(override.sweep_string_iterator())
    except HydraException:
        raise UserError(
            f"{text}: dmx sweep runs a grid and cannot enumerate this sweep; list the values "
            f"(a,b,c) or use range(start,stop,step)"
        ) from None


def check_overrides(args: Sequence[str], *, multirun: bool) -> list[str]:
    """Validate every value a (multi)run would use, each swept value at least once.

    Returns the overrides of the first run (each sweep at its first value). ``hydra.*``
    settings (a launcher's n_jobs, a partition) are checked too, once, against the launcher
    chosen: a typo there would otherwise surface as Hydra's multi-line error, after the
    sweep folder is made. The GPUs asked for are checked only where the runs will execute.
    """
    overrides = config_overrides(args)
    settings = hydra_overrides(args)
    try:
        parsed = overrides_parser().parse_overrides([*overrides, *settings])
    except OverrideParseException as err:
        raise UserError(_one_line(err)) from None
    for text, override in zip([*overrides, *settings], parsed, strict=True):
        # Hydra composes its own config (the launcher among it) once per sweep, not per run.
        if override.is_sweep_override() and _is_hydra_key(override_key(text)):
            raise UserError(
                f"{text}: Hydra's own settings cannot be swept; give {override_key(text)} one value"
            )
    _check_each_key_once([*overrides, *settings])
    choices: list[list[str]] = []
    for text, override in zip(overrides, parsed[: len(overrides)], strict=True):
        if override.is_sweep_override():
            if not multirun:
                raise UserError(
                    f"{text} asks for several runs; use `dmx sweep {text}` (or add --multirun)"
                )
            key = override.get_key_element()
            choices.append([f"{key}={v}" for v in sweep_values(override, text)])
        else:
            choices.append([text])
    base = [values[0] for values in choices]
    # Hydra's node, composed once: it checks the hydra.* settings against the launcher that
    # base chose, and tells where the runs will execute (a single run always runs here).
    composed = compose_config([*base, *settings], with_hydra=True)
    here = not multirun or composed.hydra.launcher.get("_target_") in LOCAL_LAUNCHERS
    # The same composition, without Hydra's node, is the first run's config: hydra.*
    # settings change nothing else, so composing it again would only cost time.
    with open_dict(composed):
        del composed["hydra"]
    _checked(composed, devices=here)
    for i, values in enumerate(choices):
        for value in values[1:]:
            compose_checked([*base[:i], value, *base[i + 1 :]], devices=here)
    return base


def sweep_seeds(args: Sequence[str], first_run: Sequence[str]) -> list[str]:
    """The seeds a sweep's grid runs, as its command and preset give them (the command line
    winning, as in Hydra's basic sweeper); the config's one seed when none is swept.
    ``first_run``: the grid's first run (:func:`check_overrides`), whose composition holds
    the preset's sweep."""
    overrides = config_overrides(args)
    composed = compose_config([*first_run, *hydra_overrides(args)], with_hydra=True)
    params = composed.hydra.sweeper.get("params") or {}
    parsed = overrides_parser().parse_overrides(
        [*(f"{k}={v}" for k, v in params.items()), *overrides]
    )
    seeds = [o for o in parsed if o.key_or_group == "seed"]
    if not seeds:
        return [str(composed.seed)]
    last = seeds[-1]
    if last.is_sweep_override():
        return sweep_values(last, last.input_line or "seed")
    return [str(last.value())]


def check_output_folder(folder: str | os.PathLike[str], key: str) -> None:
    """The folder a command will write (``key`` names the setting that chose it) can be
    made and written: checked before Hydra makes it, so a file in the way or a folder
    without write permission is one line, not Hydra's traceback or a failure mid-run."""
    path = Path(folder).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under a file, {existing}"
        raise UserError(f"{key}={folder} {where}; give {key} a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"{key}={folder}: {existing} is not writable (permission denied); give {key} a "
            "folder you can write to"
        )


def _check_each_key_once(overrides: Sequence[str]) -> None:
    """One key given twice (``seed=0,1 seed=2``, ``mask=static mask=dynamic``) is a
    mistake: Hydra would quietly keep one of them."""
    seen: dict[str, str] = {}
    for text in overrides:
        key = override_key(text)
        if key in seen:
            raise UserError(f"{key} is given twice ({seen[key]} and {text}); keep one")
        seen[key] = text


def _is_hydra_key(key: str) -> bool:
    """Hydra's own config: a group under hydra/ (hydra/launcher=joblib) or a hydra.* value."""
    return key == "hydra" or key.startswith(("hydra/", "hydra."))


def sweep_dir(overrides: Sequence[str], grid: Sequence[str] = ()) -> str:
    """The sweep folder Hydra will use, resolved once (conf/config.yaml names it), so the CLI
    can report on the very folder the sweep wrote. ``overrides`` are one run's, no sweeps.

    ``grid`` is the whole command's overrides: unless they are only ``experiment=...``,
    a short hash of them (sorted, ``resume`` aside) is appended, so the same command finds
    the same folder again and another command gets its own.
    """
    folder = str(compose_config(overrides, with_hydra=True).hydra.sweep.dir)
    keys = sorted(
        a for a in config_overrides(grid) if override_key(a) not in ("experiment", "resume")
    )
    if not keys:
        return folder
    return f"{folder}_{hashlib.sha256(chr(10).join(keys).encode()).hexdigest()[:8]}"


def finetune_config(saved: DictConfig, overrides: Sequence[str], where: str) -> Config:
    """A finished run's config with ``dmx finetune``'s overrides applied (see
    :func:`downstream_config`)."""
    return downstream_config(saved, overrides, where, "finetune")


def eval_config(saved: DictConfig, overrides: Sequence[str], where: str) -> Config:
    """A finished run's config with ``dmx eval``'s overrides applied (see
    :func:`downstream_config`)."""
    return downstream_config(saved, overrides, where, "eval")


def downstream_config(
    saved: DictConfig, overrides: Sequence[str], where: str, group: str
) -> Config:
    """A finished run's config (``saved``, its config.yaml) with ``overrides`` of the
    ``group`` (finetune or eval) and impl settings applied, checked.

    ``group=X`` starts from that preset unless the run already used X, in which case its
    settings (a glue_dir, a blimp_dir) are kept and the overrides change them. Anything
    else is the pretraining's, which this encoder was trained under: refused.
    """
    groups = (group, "impl")
    for arg in overrides:
        key = override_key(arg)
        if key.split(".")[0] not in groups or (key == "impl"):
            raise UserError(
                f"{arg}: dmx {group} changes only {group} and impl settings; the rest is "
                f"the pretraining's (train another run for a different {key.split('.')[0]})"
            )
        if arg.startswith(("+", "~")):
            raise UserError(f"{arg}: give plain key=value overrides to dmx {group}")
        if "." in key and (message := unknown_key(key)):
            raise UserError(message)
    try:
        parsed = overrides_parser().parse_overrides(list(overrides))
    except OverrideParseException as err:
        raise UserError(_one_line(err)) from None
    try:
        config = OmegaConf.merge(OmegaConf.structured(Config), saved)
    except Exception as err:  # noqa: BLE001 - a config.yaml this dmx cannot read
        raise UserError(f"{where} does not read as a dmx config ({exception_line(err)})") from None
    assert isinstance(config, DictConfig)
    try:
        for override in parsed:
            if override.key_or_group == group:
                chosen = str(override.value())
                if chosen != config[group].name:
                    config[group] = compose_config([f"{group}={chosen}"])[group]
            else:
                OmegaConf.update(config, override.key_or_group, override.value(), merge=False)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - OmegaConf's type checks: one line
        text = override.input_line or f"{override.key_or_group}={override.value()}"
        raise UserError(
            value_line(f"Error merging override {text} {exception_line(err)}")
        ) from None
    return to_config(config)
