"""The fine-tuning protocol's choice, from the figures of its cells: plain numbers in, plain
numbers out, so it can be checked on planted values.

BERT and RoBERTa report a task's dev score this way: fine-tune at each learning rate of a
small grid with several seeds, score the dev split after every epoch, take each run's best
epoch, the median over seeds per learning rate, and the best learning rate's median. The
median, not the mean or the best seed, because a few fine-tuning runs of a small model
diverge or stall, and one such seed would drag a mean or flatter a maximum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def _rank(value: float) -> float:
    """A figure for ordering: a NaN (a correlation of constant predictions, a diverged run)
    ranks below every number instead of breaking the comparison."""
    return -math.inf if math.isnan(value) else value


def median(values: Sequence[float]) -> float:
    """The median, with NaN ranked lowest (so one diverged seed of three does not make
    the median NaN)."""
    ordered = sorted(values, key=_rank)
    n = len(ordered)
    if n == 0:
        raise ValueError("the median of no values")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def main_figure(scores: Mapping[str, float], metrics: Sequence[str]) -> float:
    """The figure a task is judged by: the mean of its main metrics (MRPC's F1 and
    accuracy count half each, as in the GLUE score)."""
    return sum(scores[m] for m in metrics) / len(metrics)


def best_epoch(epochs: Sequence[Mapping[str, float]], metrics: Sequence[str]) -> int:
    """The index of the epoch with the highest main figure; the earliest on a tie, so that
    more epochs never win by rounding."""
    if not epochs:
        raise ValueError("a cell with no scored epoch has no best epoch")
    figures = [main_figure(e, metrics) for e in epochs]
    return max(range(len(figures)), key=lambda i: (_rank(figures[i]), -i))


@dataclass(frozen=True)
class Choice:
    """What the protocol reports for one task.

    ``scores``: each metric's median over seeds at the best learning rate, each seed at its
    best epoch. ``per_lr``: every learning rate's median main figure, to check the choice.
    ``seed_figures``: the best learning rate's main figure for each seed, in seed order:
    the spread a reader needs to judge one task's number.
    """

    lr: float
    scores: dict[str, float]
    per_lr: dict[float, float]
    seed_figures: list[float]

    @property
    def seed_spread(self) -> float:
        """Highest minus lowest seed's main figure at the chosen learning rate."""
        finite = [f for f in self.seed_figures if not math.isnan(f)]
        return max(finite) - min(finite) if len(finite) == len(self.seed_figures) else math.nan


def choose(
    cells: Mapping[tuple[float, int], Mapping[str, float]],
    lrs: Sequence[float],
    seeds: Sequence[int],
    metrics: Sequence[str],
) -> Choice:
    """The task's score from its cells, (lr, seed) -> the best epoch's figures.

    A learning rate's figure is the median over seeds of the main figure; the best one wins
    (the first in ``lrs`` on a tie). Every metric of the result is its own median over the
    winning learning rate's seeds.
    """
    missing = [(lr, s) for lr in lrs for s in seeds if (lr, s) not in cells]
    if missing:
        raise ValueError(f"cells not fine-tuned yet: {missing}")
    per_lr = {lr: median([main_figure(cells[lr, s], metrics) for s in seeds]) for lr in lrs}
    best = max(lrs, key=lambda lr: (_rank(per_lr[lr]), -lrs.index(lr)))
    names = list(cells[best, seeds[0]])
    scores = {name: median([cells[best, s][name] for s in seeds]) for name in names}
    figures = [main_figure(cells[best, s], metrics) for s in seeds]
    return Choice(lr=best, scores=scores, per_lr=per_lr, seed_figures=figures)


__all__ = ["Choice", "best_epoch", "choose", "main_figure", "median"]
