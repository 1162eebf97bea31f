"""How a group is named: full labels for files, short ones for a terminal.

A label names only the config keys that differ between groups. Where a run recorded
its mask strategy (``mask_strategy`` in metrics.json, e.g. ``static(K=10)``), the label
says that instead of the config keys it is derived from: the strategy is what the
masker did, the keys are only how it was asked for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from dmx.report.groups import MISSING, hashable

# Label of the single group when every run shares one config (up to the ignored keys).
ALL_LABEL = "all"

# The config keys that the recorded mask strategy spells out (``span static(K=1)``: the unit
# and the copies): when one of them differs between groups, labels show ``mask=<strategy>``
# in their place. mask.name only exists in older configs.
STRATEGY_KEYS: tuple[str, ...] = ("mask.name", "mask.unit", "mask.copies", "mask.weighting")
STRATEGY_NAME = "mask"


def format_value(value: Any) -> str:
    """A config value as one would write it in a Hydra override: null, true, 0.15.

    A key the run's config lacks (an older schema) shows as a dash, never as null.
    """
    if value is MISSING:
        return "–"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def group_label(group: Mapping[str, Any], keys: Sequence[str] | None = None) -> str:
    """``key=value, ...`` over ``keys`` (default: the group's own), with full dotted keys."""
    keys = list(group) if keys is None else keys
    if not keys:
        return ALL_LABEL
    return ", ".join(f"{k}={format_value(group.get(k, MISSING))}" for k in keys)


def label_groups(
    groups: Sequence[Mapping[str, Any]], keys: Sequence[str], strategies: Sequence[str | None]
) -> tuple[list[str], list[str]]:
    """The full and the short label of each group, given the differing keys of them all.

    Full labels keep dotted keys (``model.n_layers=4``) for md, csv and json, where a
    reader may search for them; short ones (``n_layers=4``) keep a terminal table narrow.
    """
    subsumed = _subsumed_keys(groups, keys, strategies)
    parts = [_parts(g, keys, s, subsumed) for g, s in zip(groups, strategies, strict=True)]
    full = [", ".join(f"{k}={v}" for k, v in p) or ALL_LABEL for p in parts]
    implied = implied_keys(groups, keys) | strategy_implied_keys(groups, keys, strategies)
    parts = [[(k, v) for k, v in p if k not in implied] for p in parts]
    names = short_names(list(dict.fromkeys(k for p in parts for k, _ in p)))
    short = [", ".join(f"{names[k]}={v}" for k, v in p) or ALL_LABEL for p in parts]
    return full, short


def implied_keys(groups: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> set[str]:
    """Keys a preset's name already says: ``model.n_layers`` when every group with
    ``model.name=small`` has the same n_layers. Short labels leave them out, turning
    ``model=small, n_layers=4, d_model=256, n_heads=4`` into ``model=small``; no two labels
    merge, since a key that separates groups of one preset is not implied.

    Strategy keys are never implied: ``static(K=1)`` is the point of a label.
    """
    implied = set()
    for key in keys:
        preset = f"{key.rpartition('.')[0]}.name"
        if key == preset or preset not in keys or key in STRATEGY_KEYS:
            continue
        seen: dict[Any, set[Any]] = {}
        for group in groups:
            name = hashable(group.get(preset, MISSING))
            seen.setdefault(name, set()).add(hashable(group.get(key, MISSING)))
        if all(len(values) == 1 for values in seen.values()):
            implied.add(key)
    return implied


def strategy_implied_keys(
    groups: Sequence[Mapping[str, Any]], keys: Sequence[str], strategies: Sequence[str | None]
) -> set[str]:
    """``mask.*`` keys the strategy already says, as a preset's name says its settings:
    ``mask_token_frac`` when every ``informask`` group has 1.0 and every other strategy's
    groups agree on theirs. Short labels leave them out; a key that separates groups of one
    strategy (a sweep over ``mask.prob``) stays."""
    if any(s is None for s in strategies):
        return set()
    implied = set()
    for key in keys:
        if not key.startswith("mask.") or key in STRATEGY_KEYS:
            continue
        seen: dict[str | None, set[Any]] = {}
        for group, strategy in zip(groups, strategies, strict=True):
            seen.setdefault(strategy, set()).add(hashable(group.get(key, MISSING)))
        if all(len(values) == 1 for values in seen.values()):
            implied.add(key)
    return implied


def _subsumed_keys(
    groups: Sequence[Mapping[str, Any]], keys: Sequence[str], strategies: Sequence[str | None]
) -> set[str]:
    """The differing strategy keys that the strategy label can stand for.

    A key is kept in the label when groups with one strategy still disagree on it (say
    dynamic masking at copies=1 and copies=10): hiding it would give two groups one label.
    """
    subsumed = {k for k in STRATEGY_KEYS if k in keys}
    by_strategy: dict[str, set[tuple[str, Any]]] = {}
    for group, strategy in zip(groups, strategies, strict=True):
        if strategy is not None:
            values = by_strategy.setdefault(strategy, set())
            values.update((k, hashable(group.get(k, MISSING))) for k in subsumed)
    for values in by_strategy.values():
        counts = Counter(k for k, _ in values)
        subsumed -= {k for k, n in counts.items() if n > 1}
    return subsumed


def _parts(
    group: Mapping[str, Any], keys: Sequence[str], strategy: str | None, subsumed: set[str]
) -> list[tuple[str, str]]:
    """(key, value) pairs of one label: the strategy where the first differing strategy key
    was, then every key it does not stand for."""
    parts: list[tuple[str, str]] = []
    for key in keys:
        if key in STRATEGY_KEYS and strategy is not None:
            if (STRATEGY_NAME, strategy) not in parts:
                parts.append((STRATEGY_NAME, strategy))
            if key in subsumed:
                continue
        parts.append((key, format_value(group.get(key, MISSING))))
    return parts


# Keys that say which choice of a config group a run made, named like the group
# (``attention=window``), as ``X.name`` keys are.
GROUP_CHOICE_KEYS = {"attention.pattern": "attention"}


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """A short name per key: ``model.name`` -> ``model``, ``model.n_layers`` -> ``n_layers``,
    or the full key where the short one would be ambiguous among ``keys``."""
    candidates = {
        k: GROUP_CHOICE_KEYS.get(k)
        or (k.removesuffix(".name") if k.endswith(".name") else k.split(".")[-1])
        for k in keys
    }
    counts = Counter(candidates.values())
    names = {k: c if counts[c] == 1 else k for k, c in candidates.items()}
    if len(set(names.values())) < len(names):  # a short name equal to another's full key
        return {k: k for k in keys}
    return names
