"""Check Hydra overrides before anything runs, and say what is wrong in one line.

Hydra reports a bad override as a multi-line message and exits 1; a typed value that is
out of range would only fail once a run has started. Here every override is composed with
Hydra's compose API (each value of a sweep once), turned into checked dataclasses, and any
failure becomes a :class:`UserError` naming the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException

from dmx.config import Config, to_config
from dmx.errors import UserError

CONFIG_MODULE = "dmx.conf"


def _config_overrides(args: Sequence[str]) -> list[str]:
    """The key=value overrides of a config (Hydra's own flags and hydra.* settings aside)."""
    return [
        a
        for a in args
        if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra.")
    ]


def _one_line(err: Exception) -> str:
    if isinstance(err, MissingConfigException) and err.options is not None:
        group = (err.missing_cfg_file or "").rsplit("/", 1)
        name = group[-1]
        key = group[0] if len(group) == 2 else "config"
        return f"unknown choice {key}={name}; choose one of: {', '.join(sorted(err.options))}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    cause = err.__cause__
    if cause is not None:
        lines += [line.strip() for line in str(cause).splitlines()[:1] if line.strip()]
    useful = [
        line for line in lines if not line.startswith(("full_key", "object_type", "reference_type"))
    ]
    return " ".join(dict.fromkeys(useful)) or type(err).__name__


def compose_checked(overrides: Sequence[str]) -> None:
    """Compose one config and check its values; raises UserError on any problem."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (HydraException, ValueError, KeyError) as err:
        raise UserError(_one_line(err)) from None
    finally:
        GlobalHydra.instance().clear()
    check_devices(to_config(cfg))


def check_devices(config: Config) -> None:
    """Asking for a GPU that is not there is a user's mistake, not a fault mid-run."""
    import torch

    wanted = config.trainer.accelerator
    if wanted in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={wanted} but no CUDA GPU is visible; use "
            "trainer.accelerator=auto (GPU when there is one, else CPU) or trainer.accelerator=cpu"
        )
    devices = config.trainer.devices
    if (
        wanted in ("gpu", "cuda")
        and isinstance(devices, int)
        and devices > torch.cuda.device_count()
    ):
        raise UserError(
            f"trainer.devices={devices} but only {torch.cuda.device_count()} GPU(s) are visible; "
            "lower trainer.devices"
        )


def check_overrides(args: Sequence[str], *, multirun: bool) -> None:
    """Validate every value a (multi)run would use, each swept value at least once."""
    overrides = _config_overrides(args)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as err:
        raise UserError(_one_line(err)) from None
    choices: list[list[str]] = []
    for text, override in zip(overrides, parsed, strict=True):
        if override.is_sweep_override():
            if not multirun:
                raise UserError(
                    f"{text} asks for several runs; use `dmx sweep {text}` (or add --multirun)"
                )
            key = override.get_key_element()
            choices.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            choices.append([text])
    base = [values[0] for values in choices]
    compose_checked(base)
    for i, values in enumerate(choices):
        for value in values[1:]:
            compose_checked([*base[:i], value, *base[i + 1 :]])
