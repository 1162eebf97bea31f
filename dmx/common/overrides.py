"""Hydra command-line overrides as plain strings: which arguments are overrides, and what
they set. Imports nothing heavy, so the CLI can read its arguments before Hydra loads."""

from __future__ import annotations

from collections.abc import Sequence


def is_override(arg: str) -> bool:
    """``key=value`` (also ``+key=``, ``~key=``, ``++key=``), as opposed to a flag like ``-m``."""
    return "=" in arg and not arg.startswith("-")


def override_key(arg: str) -> str:
    """The dotted key an override sets, without Hydra's ``+``, ``++`` or ``~`` prefix."""
    return arg.split("=", 1)[0].lstrip("+~")


def override_value(args: Sequence[str], key: str) -> str | None:
    """The value ``args`` give ``key``, the last one winning (as in Hydra)."""
    values = [a.split("=", 1)[1] for a in args if is_override(a) and override_key(a) == key]
    return values[-1] if values else None


def config_overrides(args: Sequence[str]) -> list[str]:
    """The overrides of dmx's own config: Hydra's flags and ``hydra.*`` settings left out."""
    return [a for a in args if is_override(a) and not override_key(a).startswith("hydra.")]


def hydra_overrides(args: Sequence[str]) -> list[str]:
    """The ``hydra.*`` overrides: where runs go, which launcher; not dmx's config."""
    return [a for a in args if is_override(a) and override_key(a).startswith("hydra.")]
