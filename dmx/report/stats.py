"""The numbers a report shows: which metrics, and their statistics over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """A summarised metric: its key in metrics.json, a column header, a format spec."""

    key: str
    label: str
    spec: str  # format spec applied to the mean and the std alike

    def format(self, value: float) -> str:
        return format(value, self.spec)


# The metrics every report shows, in column order.
METRICS: tuple[Metric, ...] = (
    Metric("final_val_loss", "val loss", ".3f"),
    Metric("best_val_loss", "best val loss", ".3f"),
    Metric("final_val_acc", "val acc", ".2%"),
    Metric("final_train_loss", "train loss", ".3f"),
    Metric("tokens_per_s", "tokens/s", ",.0f"),
)

# What the masks did, measured on the batches: shown when some run recorded them (runs
# older than the diagnostics, and full attention, have none).
DIAGNOSTICS: tuple[Metric, ...] = (
    Metric("mask_rate", "mask rate", ".1%"),
    Metric("mask_diversity", "masks/seq", ".1f"),
    Metric("attention_density", "attn density", ".2f"),
)


@dataclass(frozen=True)
class Stat:
    """Summary of one metric over a group's done runs; std and ci95 need n >= 2."""

    n: int  # done runs that recorded a number for this metric
    mean: float | None
    std: float | None  # sample standard deviation (ddof=1)
    median: float | None  # with few seeds, a check that one outlier does not drive the mean
    ci95: float | None  # half-width of the 95% confidence interval of the mean (Student's t)


def describe(values: Sequence[float]) -> Stat:
    n = len(values)
    if n == 0:
        return Stat(n=0, mean=None, std=None, median=None, ci95=None)
    mean = math.fsum(values) / n
    median = float(statistics.median(values))
    if n < 2:
        return Stat(n=n, mean=mean, std=None, median=median, ci95=None)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))
    from scipy.stats import t  # about a second to import: only when it is needed

    ci95 = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return Stat(n=n, mean=mean, std=std, median=median, ci95=ci95)


def number(value: Any) -> float | None:
    """A metric value as a float, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
