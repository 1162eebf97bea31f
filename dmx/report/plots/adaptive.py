"""adaptive_rates.png, drawn only when some run used adaptive masking: how its per-id
rates moved over training. Read from each run's adaptive_rates.json, which only adaptive
runs write, so this figure and its reading stand apart from the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dmx.common.run_folder import ADAPTIVE_FILE
from dmx.report.plots.style import new_figure, percent_formatter, row_label
from dmx.report.summary import Row

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class AdaptiveTrace:
    """A group's adaptive rate table over training, averaged over its seeds."""

    steps: np.ndarray
    quantiles: dict[str, np.ndarray]  # "p05" ... "p95" -> rate at each step
    bands: np.ndarray  # (steps, bands): mean rate of each frequency band
    band_shares: list[float]  # the share of the training tokens each band holds
    prob: float
    n: int


def adaptive_trace(row: Row) -> AdaptiveTrace | None:
    """The row's adaptive_rates.json files, averaged over its done runs at the steps they
    share; None when no done run has one (not adaptive, or older)."""
    import json

    import numpy as np

    records = []
    for run in row.done:
        try:
            records.append(json.loads((run.path / ADAPTIVE_FILE).read_text()))
        except (OSError, ValueError):
            continue
    records = [r for r in records if isinstance(r, dict) and r.get("history")]
    if not records:
        return None
    per_run = [{h["step"]: h for h in r["history"]} for r in records]
    steps = sorted(set.intersection(*(set(h) for h in per_run)))
    if not steps:
        return None
    names = [k for k in per_run[0][steps[0]] if k.startswith("adaptive_rate_p")]
    quantiles = {
        k.removeprefix("adaptive_rate_"): np.mean([[h[s][k] for s in steps] for h in per_run], 0)
        for k in names
    }
    bands = np.mean([[h[s]["bands"] for s in steps] for h in per_run], axis=0)
    return AdaptiveTrace(
        steps=np.asarray(steps, dtype=float),
        quantiles=quantiles,
        bands=bands,
        band_shares=[b["token_share"] for b in records[0]["bands"]],
        prob=float(records[0]["prob"]),
        n=len(records),
    )


def adaptive_figure(traces: Sequence[tuple[Row, AdaptiveTrace]], title: str) -> Figure:
    """Per adaptive group, two panels: the spread of the per-id rates over the training
    tokens (5-95% and 25-75% bands, the median), and each frequency band's mean rate."""
    figure, axes = new_figure(len(traces), 2)
    assert isinstance(axes, list)
    for i, (row, trace) in enumerate(traces):
        spread, bands = axes[2 * i], axes[2 * i + 1]
        q = trace.quantiles
        spread.fill_between(trace.steps, q["p05"], q["p95"], alpha=0.2, color="C0", lw=0)
        spread.fill_between(trace.steps, q["p25"], q["p75"], alpha=0.35, color="C0", lw=0)
        spread.plot(trace.steps, q["p50"], color="C0", lw=2, label="median")
        spread.axhline(trace.prob, color="0.3", ls="--", lw=1, label=f"mask.prob {trace.prob:g}")
        spread.set_ylabel("per-id mask rate")
        spread.set_title(
            f"{row_label(row)} (n={trace.n}): spread over the training tokens",
            fontsize=10,
        )
        names = ["most frequent", "frequent", "rarer", "rarest"]
        for b in range(trace.bands.shape[1]):
            name = names[b] if trace.bands.shape[1] == len(names) else f"band {b + 1}"
            share = trace.band_shares[b] if b < len(trace.band_shares) else float("nan")
            bands.plot(trace.steps, trace.bands[:, b], lw=2, label=f"{name} ids ({share:.0%})")
        bands.axhline(trace.prob, color="0.3", ls="--", lw=1)
        bands.set_title("mean rate by frequency band (share of tokens)", fontsize=10)
        for ax in (spread, bands):
            ax.grid(True, alpha=0.3)
            ax.yaxis.set_major_formatter(percent_formatter())
            ax.legend(fontsize=8, frameon=False)
        if i == len(traces) - 1:
            spread.set_xlabel("step")
            bands.set_xlabel("step")
    note = "bands: 5-95% and 25-75% of the training tokens' rates; mean over seeds"
    figure.suptitle(f"{title}: adaptive mask rates\n{note}", fontsize=12, fontweight="bold")
    return figure
