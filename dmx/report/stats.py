"""The statistics a report shows: each metric over a group's seeds, and how a group differs
from a baseline group (a t-test, an exact permutation test for few seeds, an effect size,
the seeds 80% power would need). Kept apart from the catalogue of metrics
(:mod:`dmx.report.metrics`): these functions take plain numbers and know no metric by name,
so a test can check them against scipy alone.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from dmx.report.groups import sort_key


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


# The names of the two tests, as JSON writes them.
PAIRED = "paired t"
WELCH = "welch t"

POWER = 0.8
ALPHA = 0.05
# The exact permutation test is reported up to this many values a side: it enumerates every
# relabelling (2^10 sign flips paired; C(20, 10) = 184,756 splits otherwise).
EXACT_MAX_N = 10
# Differences whose spread is below this share of their size count as equal: float rounding
# alone makes "the same shift on every seed" differ in the last bits, and a t-test on those
# bits would report p = 0.
EQUAL_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Comparison:
    """One metric of one group against the baseline group's, over their done runs."""

    delta: float | None  # mean(group) - mean(baseline); None when either has no value
    p: float | None  # two-sided; None when the test cannot be computed (n < 2, no variance)
    test: str | None  # PAIRED, WELCH, or None when no test could be run
    # Paired: Cohen's d_z; Welch: Cohen's d with the pooled sd. ±inf when the values do not
    # vary at all (the same shift on every seed), None when there is no difference either.
    effect_size: float | None
    n_for_80_power: int | None  # seeds per group for 80% power at alpha=0.05, two-sided
    seeds: tuple[Any, ...] = ()  # the seeds paired on (paired test only)
    n: int = 0  # the group's values
    n_baseline: int = 0  # the baseline's values
    # The exact permutation test's two-sided p (sign flips over the paired seeds, or every
    # split of the pooled values for Welch), for up to EXACT_MAX_N values a side: what few
    # seeds can show at best (3 seeds all one way: 0.25). None beyond that or with no test.
    p_exact: float | None = None
    # Why the t-test has no p although it ran: "equal differences" when every seed shows
    # the same difference (or every value is equal), where t is undefined.
    undefined: str | None = None


def compare(
    values: Sequence[tuple[Hashable, float]], baseline: Sequence[tuple[Hashable, float]]
) -> Comparison:
    """A group's (seed, value) pairs against the baseline's.

    Paired by seed (a seed fixes the initial weights and the data order, which both groups
    then share, so pairing removes that source of variance) when both have exactly the same
    seeds, each once, and at least two; Welch's unequal-variance test otherwise, which
    needs two values a side. Runs of an old sweep and a rerun of some of its seeds are
    still compared, just less sharply.
    """
    x = [v for _, v in values]
    y = [v for _, v in baseline]
    delta = _mean(x) - _mean(y) if x and y else None
    by_seed, base_by_seed = dict(values), dict(baseline)
    paired = (
        len(by_seed) == len(x) >= 2
        and len(base_by_seed) == len(y)
        and by_seed.keys() == base_by_seed.keys()
    )
    common = dict(n=len(x), n_baseline=len(y))
    if paired:
        from scipy.stats import ttest_rel

        seeds = tuple(sorted(by_seed, key=sort_key))  # 2 before 10, as in the table
        xs = [by_seed[s] for s in seeds]
        ys = [base_by_seed[s] for s in seeds]
        diffs = [a - b for a, b in zip(xs, ys, strict=True)]
        spread = statistics.stdev(diffs)
        if _equal(spread, diffs):
            p, spread, undefined = None, 0.0, "equal differences"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                p, undefined = _finite(ttest_rel(xs, ys).pvalue), None
        d = _ratio(_mean(diffs), spread)
        n80 = seeds_for_power(d, paired=True)
        exact = exact_p(xs, ys, paired=True)
        return Comparison(
            delta, p, PAIRED, d, n80, seeds=seeds, p_exact=exact, undefined=undefined, **common
        )
    if len(x) < 2 or len(y) < 2:
        return Comparison(delta, None, None, None, None, **common)
    from scipy.stats import ttest_ind

    pooled = math.sqrt(
        ((len(x) - 1) * statistics.variance(x) + (len(y) - 1) * statistics.variance(y))
        / (len(x) + len(y) - 2)
    )
    if _equal(pooled, [*x, *y]):  # no spread within either group
        p, pooled, undefined = None, 0.0, "equal values"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p, undefined = _finite(ttest_ind(x, y, equal_var=False).pvalue), None
    d = _ratio(_mean(x) - _mean(y), pooled)
    n80 = seeds_for_power(d, paired=False)
    exact = exact_p(x, y, paired=False)
    return Comparison(delta, p, WELCH, d, n80, p_exact=exact, undefined=undefined, **common)


@dataclass(frozen=True)
class Difference:
    """A group's difference from the baseline on one metric: what an estimation plot
    draws. Paired by seed, each seed's difference and their mean's 95% interval (Student's
    t); otherwise the difference of the means and Welch's interval, with no per-seed dots."""

    per_seed: tuple[float, ...]
    mean: float
    ci95: float | None  # half-width; None with too few values


def difference(
    values: Sequence[tuple[Hashable, float]], baseline: Sequence[tuple[Hashable, float]]
) -> Difference | None:
    """As :func:`compare` pairs them: by seed when both have exactly the same seeds."""
    x, y = [v for _, v in values], [v for _, v in baseline]
    if not x or not y:
        return None
    by_seed, base_by_seed = dict(values), dict(baseline)
    paired = (
        len(by_seed) == len(x) >= 2
        and len(base_by_seed) == len(y)
        and by_seed.keys() == base_by_seed.keys()
    )
    if paired:
        seeds = sorted(by_seed, key=sort_key)
        diffs = tuple(by_seed[s] - base_by_seed[s] for s in seeds)
        stat = describe(diffs)
        assert stat.mean is not None
        return Difference(diffs, stat.mean, stat.ci95)
    mean = _mean(x) - _mean(y)
    if len(x) < 2 or len(y) < 2:
        return Difference((), mean, None)
    from scipy.stats import t

    vx, vy = statistics.variance(x) / len(x), statistics.variance(y) / len(y)
    se = math.sqrt(vx + vy)
    if se == 0:
        return Difference((), mean, 0.0)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    return Difference((), mean, float(t.ppf(0.975, df)) * se)


def exact_p(x: Sequence[float], y: Sequence[float], paired: bool) -> float | None:
    """The two-sided p of the exact permutation test of the mean difference: over every
    sign flip of the paired differences, or every split of the pooled values into groups of
    the same sizes; None above EXACT_MAX_N values a side, where it would be slow and the
    t-test's approximation is good."""
    if max(len(x), len(y)) > EXACT_MAX_N:
        return None
    import numpy as np
    from scipy.stats import permutation_test

    def mean_difference(a: Any, b: Any, axis: int) -> Any:
        if paired:
            return np.mean(a - b, axis=axis)
        return np.mean(a, axis=axis) - np.mean(b, axis=axis)

    result = permutation_test(
        (np.asarray(x, dtype=float), np.asarray(y, dtype=float)),
        mean_difference,
        permutation_type="samples" if paired else "independent",
        vectorized=True,
        n_resamples=np.inf,
        alternative="two-sided",
    )
    return _finite(result.pvalue)


def _equal(spread: float, values: Sequence[float]) -> bool:
    """Whether a spread is float rounding only, next to the values' size."""
    return spread <= EQUAL_TOLERANCE * max(1.0, *(abs(v) for v in values))


def seeds_for_power(effect_size: float | None, paired: bool) -> int | None:
    """Seeds per group a true effect of this size needs to reach p < 0.05 four times in
    five (two-sided t-test), rounded up; None for no effect, which no number of seeds finds.

    For Welch's test this is the equal-variance test's figure, which Welch's matches when
    the groups' spreads are alike. Two seeds are the fewest a t-test runs on: an effect
    that two seeds already detect gets 2 (the solver would wander below 2, where a t
    distribution has less than one degree of freedom).
    """
    if effect_size is None or math.isnan(effect_size) or effect_size == 0:
        return None
    if math.isinf(effect_size):
        return 2
    from statsmodels.stats.power import TTestIndPower, TTestPower

    # Imported before the filter below, as its import puts an "always" filter in front.
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    analysis = TTestPower() if paired else TTestIndPower()
    size = abs(effect_size)
    if _power(analysis, size, 2) >= POWER:
        return 2
    with warnings.catch_warnings():
        # A solve that fails warns and returns nan, handled below.
        warnings.simplefilter("ignore", ConvergenceWarning)
        n = analysis.solve_power(size, power=POWER, alpha=ALPHA, alternative="two-sided")
        if not math.isfinite(n):
            n = analysis.solve_power(size, power=POWER, alpha=ALPHA / 2, alternative="larger")
    n = float(n)
    return max(3, math.ceil(n)) if math.isfinite(n) else None


def _power(analysis: Any, size: float, n: int) -> float:
    """Two-sided power, or where statsmodels returns nan for it, the one-sided power at
    alpha/2: the same number there. The nan comes from scipy's noncentral t in the tail
    opposite the effect, whose share of the power is then below 1e-15."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nan from the far tail, see above
        power = float(analysis.power(size, n, ALPHA, alternative="two-sided"))
        if not math.isfinite(power):
            power = float(analysis.power(size, n, ALPHA / 2, alternative="larger"))
    return power


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _ratio(a: float, b: float) -> float | None:
    """a / b, infinite for a difference with no spread at all, None for none at all."""
    if b > 0:
        return a / b
    return math.copysign(math.inf, a) if a else None


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
