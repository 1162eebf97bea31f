"""Choosing the baseline group and comparing every other group with it.

``--baseline KEY=VALUE`` names the group the way a user reads the table: KEY is a full
config key (``mask.copies``) or a name from the short labels (``mask``, ``attention``,
``prob``), and for ``mask`` VALUE is the recorded strategy (``static(K=1)``) or, when only
one group's strategy starts so, its name alone (``static``). Anything else stops with a
message listing what to choose from: a comparison against the wrong group would be
worse than none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import yaml

from dmx.common.errors import UserError
from dmx.report.groups import MISSING
from dmx.report.labels import GROUP_CHOICE_KEYS, STRATEGY_NAME, format_value, short_names
from dmx.report.metrics import is_result
from dmx.report.stats import PAIRED, WELCH, Comparison, compare
from dmx.report.summary import Row

EXAMPLE = "--baseline mask=static or --baseline mask.copies=1"


def parse(spec: str) -> tuple[str, str]:
    """KEY and VALUE of ``KEY=VALUE``; checked before any run is read."""
    key, sep, value = spec.partition("=")
    key, value = key.strip(), value.strip()
    if not (sep and key and value):
        raise UserError(f"--baseline takes KEY=VALUE, e.g. {EXAMPLE}; got {spec!r}")
    return key, value


def find_baseline(rows: Sequence[Row], specs: str | Sequence[str]) -> Row:
    """The one row that every ``KEY=VALUE`` in ``specs`` names; UserError when none or
    several are (a sweep over model and mask needs ``model=small`` and ``mask=static``)."""
    pairs = [parse(spec) for spec in ([specs] if isinstance(specs, str) else specs)]
    matches = list(rows)
    for key, value in pairs:
        named = _matches(rows, key, value)
        matches = [row for row in matches if any(row is m for m in named)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        wanted = " and ".join(f"{k}={v}" for k, v in pairs)
        choices = " | ".join(row.short_label for row in rows)
        raise UserError(f"no group has {wanted}; the groups are: {choices}")
    options = " ".join(f"--baseline {k}={v}" for k, v in pairs)
    names = " | ".join(row.short_label for row in matches)
    raise UserError(
        f"{options} matches {len(matches)} groups: {names}; "
        f"name one of them, e.g. {_hint(rows, matches[0])}"
    )


def compare_to(rows: Sequence[Row], specs: str | Sequence[str]) -> Row:
    """Mark the baseline row and give every other row a Comparison per result metric."""
    base = find_baseline(rows, specs)
    if len(rows) < 2:
        raise UserError(
            f"--baseline compares groups, but these runs form one group ({base.short_label}); "
            "report a folder whose runs differ in some setting"
        )
    for row in rows:
        row.is_baseline = row is base
        row.comparisons = {}
        if row is base:
            continue
        for metric in row.metrics:
            if is_result(metric):
                row.comparisons[metric.key] = compare(
                    row.values(metric.key), base.values(metric.key)
                )
    return base


def method_note(
    rows: Sequence[Row],
    name: Callable[[int, Row], str],
    baseline_name: Callable[[int, Row], str] | None = None,
) -> str | None:
    """One line under the comparison: the baseline, which test each row got (paired over
    which seeds, or Welch), and what d and n80 mean; None without a baseline.

    ``name`` says how the format calls row i (``G1``, a label), ``baseline_name`` how it
    calls the baseline, where a bare number would send the reader to the legend."""
    baseline_name = baseline_name or name
    base = next((i for i, row in enumerate(rows) if row.is_baseline), None)
    if base is None:
        return None
    tests: dict[str, list[str]] = {}  # description -> the rows (or row's metrics) it fits
    kinds: set[str | None] = set()
    others = [(i, row) for i, row in enumerate(rows) if not row.is_baseline]
    labels = {m.key: m.label for row in rows for m in row.metrics}
    for i, row in others:
        by_test: dict[str, list[str]] = {}  # this row's metrics under each test
        for key, comparison in row.comparisons.items():
            kinds.add(comparison.test)
            by_test.setdefault(_test_text(comparison), []).append(labels.get(key, key))
        for text, metrics in by_test.items():
            # A row whose metrics got different tests (fine-tuning recorded by fewer runs)
            # names its metrics, so no row reads as both tested and untested.
            named = name(i, row) if len(by_test) == 1 else f"{name(i, row)} ({', '.join(metrics)})"
            tests.setdefault(text, []).append(named)
    if not tests:
        used = "no result metric recorded"
    elif len(tests) == 1:
        used = next(iter(tests))
    else:
        used = "; ".join(f"{text} for {', '.join(names)}" for text, names in tests.items())
    first = next((m for m in rows[base].metrics if is_result(m)), None)
    parts = [f"Δ and p against {baseline_name(base, rows[base])}: {used}"]
    if first is not None:
        parts.append(f"d, n80 ({first.label}): {_d_text(kinds)}, seeds per group for 80% power")
    exact = {c.test for _, row in others for c in row.comparisons.values() if c.p_exact}
    if exact:
        parts.append(f"exact: the permutation test over the same values ({_exact_text(exact)})")
    if any(c.undefined for _, row in others for c in row.comparisons.values()):
        parts.append("p n/a: the same difference on every seed, where the t-test is undefined")
    if len(others) > 1:
        parts.append("p two-sided, not corrected for multiple comparisons")
    return "; ".join(parts)


def _test_text(comparison: Comparison) -> str:
    if comparison.test == PAIRED:
        return f"paired t-test over seeds {', '.join(map(format_value, comparison.seeds))}"
    if comparison.test == WELCH:
        return "Welch's t-test (seeds not matched)"
    if comparison.n == 0 or comparison.n_baseline == 0:
        return "no test (not measured on both sides)"  # the untrained control has no loss
    return "no test (fewer than 2 done runs)"


def _exact_text(kinds: set[str | None]) -> str:
    flips = "every sign flip of the paired differences, least p 2/2^n: 0.250 for 3 seeds"
    splits = "every split of the pooled values into two groups of their sizes"
    if kinds >= {PAIRED, WELCH}:
        return f"paired: {flips}; Welch: {splits}"
    return flips if PAIRED in kinds else splits


def _d_text(kinds: set[str | None]) -> str:
    if kinds >= {PAIRED, WELCH}:
        return "Cohen's d_z (paired) or d with the pooled sd (Welch)"
    if WELCH in kinds:
        return "Cohen's d with the pooled sd"
    return "Cohen's d_z"


def _matches(rows: Sequence[Row], key: str, value: str) -> list[Row]:
    if key == STRATEGY_NAME and any(row.strategy is not None for row in rows):
        return _strategy_matches(rows, value)
    config_key = _config_key(rows, key)
    return [row for row in rows if _has(row, config_key, value)]


def _strategy_matches(rows: Sequence[Row], value: str) -> list[Row]:
    """The rows whose strategy is ``value``, else those whose strategy's name is (the part
    before ``(``); older rows with no recorded strategy answer by their mask.name."""
    strategies = [row.strategy or _config_text(row, "mask.name") for row in rows]
    exact = [row for row, s in zip(rows, strategies, strict=True) if s == value]
    if exact:
        return exact
    return [
        row
        for row, s in zip(rows, strategies, strict=True)
        if s is not None and s.partition("(")[0].strip() == value
    ]


def _config_key(rows: Sequence[Row], key: str) -> str:
    """The config key that ``key`` names: itself, or the one key whose short name it is
    (among the keys that differ between groups first, as the labels shorten them)."""
    known = list(dict.fromkeys(k for row in rows for run in row.runs for k in run.config))
    if key in known:
        return key
    differing = rows[0].keys if rows else []
    named = [k for k, short in short_names(differing).items() if short == key]
    if len(named) == 1:
        return named[0]
    candidates = [k for k in known if key in _short_forms(k)]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise UserError(
            f"baseline key {key!r} could be any of {', '.join(candidates)}; "
            "write the full key, e.g. "
            f"--baseline {candidates[0]}={format_value(_any_value(rows, candidates[0]))}"
        )
    labels = list(dict.fromkeys(short_names(differing).values()))
    if any(row.strategy is not None for row in rows):
        labels.insert(0, STRATEGY_NAME)
    names = f"; label names: {', '.join(labels)}" if labels else ""
    raise UserError(
        f"unknown baseline key {key!r}: no run's config has it{names}; "
        f"pass a config key or label name, e.g. {EXAMPLE}"
    )


def _short_forms(key: str) -> set[str]:
    """What a user may call a config key: ``attention`` for attention.pattern, ``model``
    for model.name, ``prob`` for mask.prob."""
    forms = {key.rsplit(".", 1)[-1]}
    if key.endswith(".name"):
        forms.add(key.removesuffix(".name"))
    if key in GROUP_CHOICE_KEYS:
        forms.add(GROUP_CHOICE_KEYS[key])
    return forms


def _has(row: Row, key: str, value: str) -> bool:
    """Whether every run of the row that has ``key`` holds ``value`` there (one does)."""
    found = [run.config[key] for run in row.runs if key in run.config]
    return bool(found) and all(_equal(v, value) for v in found)


def _equal(actual: Any, text: str) -> bool:
    """``1`` matches ``1`` and ``1.0``, ``null`` matches None; true never matches 1."""
    if format_value(actual) == text:
        return True
    try:
        wanted = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    numbers = (int, float)
    return (
        isinstance(actual, numbers)
        and isinstance(wanted, numbers)
        and not isinstance(actual, bool)
        and not isinstance(wanted, bool)
        and actual == wanted
    )


def _config_text(row: Row, key: str) -> str | None:
    values = {format_value(run.config[key]) for run in row.runs if key in run.config}
    return values.pop() if len(values) == 1 else None


def _any_value(rows: Sequence[Row], key: str) -> Any:
    return next((run.config[key] for row in rows for run in row.runs if key in run.config), MISSING)


def _hint(rows: Sequence[Row], target: Row) -> str:
    """``--baseline`` options that name ``target`` alone among ``rows``: its strategy and
    then its label's other values, each only if it rules out another group."""
    names = short_names(target.keys)
    candidates = [(STRATEGY_NAME, target.strategy)] if target.strategy is not None else []
    candidates += [
        (names[key], format_value(target.group.get(key, MISSING)))
        for key in target.keys
        if not (target.strategy is not None and names[key] == STRATEGY_NAME)
    ]
    remaining = list(rows)
    chosen = []
    for key, value in candidates:
        try:
            named = _matches(rows, key, value)
        except UserError:
            continue
        narrowed = [row for row in remaining if any(row is m for m in named)]
        if len(narrowed) < len(remaining):
            chosen.append(f"--baseline {key}={value}")
            remaining = narrowed
        if len(remaining) == 1:
            break
    return " ".join(chosen)
