"""What ``dmx bench`` measured, and how it is shown: per engine, the medians over rounds of
its step time and phases; the derived figures (tokens/s, FLOP/s, fraction of the matmul
peak, the ratio to HuggingFace); the table and the closing line scripts read."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

PHASES = ("data", "forward", "backward", "optimizer")
DMX_STEP, DMX_FULL_HEAD, DMX_LOOP = "dmx step", "dmx full head", "dmx train loop"
# HuggingFace with each attention it offers: a user picks the faster (on a CPU in bf16,
# SDPA's backward is a slow kernel and eager wins), so dmx is compared with the faster.
HF_SDPA, HF_EAGER = "HF sdpa", "HF eager"
HF_ENGINES = (HF_SDPA, HF_EAGER)


@dataclass
class EngineResult:
    label: str
    tokens_per_step: int
    flops_per_token: float
    step_s: list[float] = field(default_factory=list)  # one median per round
    phases_s: dict[str, list[float]] = field(default_factory=dict)
    peak_mem_mb: float | None = None

    @property
    def seconds_per_step(self) -> float:
        return statistics.median(self.step_s)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.seconds_per_step

    def phase(self, name: str) -> float | None:
        values = self.phases_s.get(name)
        return statistics.median(values) if values else None

    def flops_per_s(self) -> float:
        return self.tokens_per_s * self.flops_per_token


@dataclass
class BenchResult:
    shape: dict[str, Any]
    precision: str
    device: str
    threads: int
    peak_flops: float
    engines: list[EngineResult]
    compiled: bool = False

    def engine(self, label: str) -> EngineResult | None:
        return next((e for e in self.engines if e.label == label), None)

    def fraction_of_peak(self, engine: EngineResult) -> float:
        return engine.flops_per_s() / self.peak_flops

    @property
    def best_hf(self) -> EngineResult | None:
        """HuggingFace at its best: the faster of its attention implementations."""
        timed = [e for e in (self.engine(label) for label in HF_ENGINES) if e is not None]
        return max(timed, key=lambda e: e.tokens_per_s, default=None)

    def _vs_hf(self, label: str) -> float | None:
        dmx, hf = self.engine(label), self.best_hf
        return None if dmx is None or hf is None else dmx.tokens_per_s / hf.tokens_per_s

    @property
    def ratio_vs_hf(self) -> float | None:
        """dmx's step against HuggingFace at its best: implementation and algorithm (the
        head scoring only the masked positions) together."""
        return self._vs_hf(DMX_STEP)

    @property
    def impl_ratio_vs_hf(self) -> float | None:
        """dmx with its head at every position (HuggingFace's FLOPs) against HuggingFace at
        its best: the implementation alone."""
        return self._vs_hf(DMX_FULL_HEAD)

    @property
    def loop_overhead(self) -> float | None:
        """How much slower the Lightning loop runs than the bare step (0.05 = 5%)."""
        step, loop = self.engine(DMX_STEP), self.engine(DMX_LOOP)
        return None if step is None or loop is None else 1.0 - loop.tokens_per_s / step.tokens_per_s

    @property
    def data_share(self) -> float | None:
        """Data loading and masking's share of the bare step's time."""
        step = self.engine(DMX_STEP)
        data = step.phase("data") if step else None
        return None if step is None or data is None else data / step.seconds_per_step


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1e3:,.0f}"


def render(result: BenchResult) -> tuple[Any, list[str]]:
    """The table (rich) and the lines under it; the last line is what scripts read."""
    from rich import box
    from rich.table import Table

    s = result.shape
    title = (
        f"Training step, {s['layers']} layers x {s['hidden']} (heads {s['heads']}, ffn "
        f"{s['ffn']}), vocab {s['vocab']}, {s['batch']} x {s['seq_len']} tokens, "
        f"{result.precision}{' compiled' if result.compiled else ''}, {result.device}, "
        f"{result.threads} threads; medians of rounds"
    )
    # Simple rules and no outer border: nine columns fit an 80-column terminal whole.
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 1))
    headers = (
        "engine",
        "tokens per s",
        "data ms",
        "fwd ms",
        "bwd ms",
        "optim ms",
        "GFLOP per s",
        "of peak",
        "peak MB",
    )
    for h in headers:
        table.add_column(h, justify="left" if h == "engine" else "right", no_wrap=h == "engine")
    for e in result.engines:
        table.add_row(
            e.label,
            f"{e.tokens_per_s:,.0f}",
            *(_ms(e.phase(p)) for p in PHASES),
            f"{e.flops_per_s() / 1e9:,.0f}",
            f"{result.fraction_of_peak(e):.0%}",
            "" if e.peak_mem_mb is None else f"{e.peak_mem_mb:,.0f}",
        )
    lines = [
        f"matmul peak measured here (best of two readings): {result.peak_flops / 1e9:,.0f} GFLOP/s "
        f"({result.precision}); "
        f"FLOPs per token: dmx {result.engines[0].flops_per_token / 1e6:.1f}M"
        + (
            f", HuggingFace (BertForMaskedLM with its collator) and dmx full head "
            f"{hf.flops_per_token / 1e6:.1f}M (their head scores every position)"
            if (hf := result.best_hf)
            else ""
        )
    ]
    if result.data_share is not None:
        lines.append(f"data and masking: {result.data_share:.1%} of the dmx step")
    if result.loop_overhead is not None:
        lines.append(f"dmx train loop overhead vs the bare step: {result.loop_overhead:+.1%}")
    if (hf := result.best_hf) is not None and result.ratio_vs_hf is not None:
        lines.append(f"HuggingFace at its best here: {hf.label}")
        closing = f"ratio_vs_hf={result.ratio_vs_hf:.2f}"
        if result.impl_ratio_vs_hf is not None:
            closing += f" impl_ratio_vs_hf={result.impl_ratio_vs_hf:.2f}"
        lines.append(closing)
    return table, lines
