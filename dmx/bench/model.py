"""``dmx bench``: training throughput, where the step's time goes, and how close to the
machine's limit it runs, next to HuggingFace at the identical shape, in one process.

Three engines train the same shape on the same batches:

- **dmx step**: the bare training step, with the pieces ``dmx train`` uses (the
  DataModule's loader and keyed masker, :class:`~dmx.tasks.MLMModule`'s forward, AdamW
  with its schedule, gradient clipping), timed phase by phase: data and masking, forward,
  backward, optimiser.
- **dmx train loop**: the real Lightning loop (Trainer, DataModule, masking on transfer,
  logging, the run-folder callback) at the same shape; its tokens/s against the bare
  step's is the framework's overhead, measured rather than guessed.
- **HuggingFace** (``--vs-hf``): BertForMaskedLM fed by DataCollatorForLanguageModeling,
  the same optimiser, schedule and clipping, phase by phase like dmx's step.

Engines alternate round by round, so a noisy neighbour slows all of them alike, and each
figure is the median over rounds. Model FLOPs utilisation is each model's own training
FLOPs per token (forward and backward) times tokens/s, over the matrix-multiply peak
measured in the same process (:mod:`dmx.bench.peak`). HuggingFace's model does more work
per token (its head projects every position onto the vocabulary, dmx's only the masked
ones), so its FLOPs are counted as its own.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from dmx.allocator import keep_freed_memory
from dmx.bench.peak import matmul_peak, peak_rss_mb, reset_peak_rss, synchronize
from dmx.config import Config
from dmx.data.datamodule import MLMDataModule
from dmx.errors import UserError
from dmx.model import MaskedLM
from dmx.optim import build_optimizer, lr_lambda

PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed"}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
PHASES = ("data", "forward", "backward", "optimizer")
DMX_STEP, DMX_LOOP, HF_STEP = "dmx step", "dmx train loop", "HuggingFace"


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
    def ratio_vs_hf(self) -> float | None:
        dmx, hf = self.engine(DMX_STEP), self.engine(HF_STEP)
        return None if dmx is None or hf is None else dmx.tokens_per_s / hf.tokens_per_s

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


# --- memory ----------------------------------------------------------------------------------


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()


def _peak_memory_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


# --- engines ---------------------------------------------------------------------------------


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _epochs(loader: torch.utils.data.DataLoader) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """Batches without end, epoch by epoch, as Lightning feeds them (set_epoch first)."""
    epoch = 0
    while True:
        sampler = loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        for batch in loader:
            yield epoch, batch
        epoch += 1


class _Step:
    """One optimiser step at a time, timed by phase; subclasses feed and run a model."""

    def __init__(self, model: torch.nn.Module, config: Config, device: torch.device, total: int):
        self.model, self.device, self.precision = model.to(device), device, "fp32"
        self.grad_clip = config.trainer.grad_clip
        self.optimizer = build_optimizer(self.model, config.optim)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(config.optim, total)
        )
        self.model.train()

    def batch(self) -> Any:
        raise NotImplementedError

    def loss(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self) -> dict[str, float]:
        times = [time.perf_counter()]

        def mark() -> None:
            synchronize(self.device)
            times.append(time.perf_counter())

        batch = self.batch()
        mark()
        with _autocast(self.device, self.precision):
            loss = self.loss(batch)
        mark()
        loss.backward()
        mark()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        mark()
        return {name: b - a for name, (a, b) in zip(PHASES, itertools.pairwise(times), strict=True)}


class DmxStep(_Step):
    """dmx's step without Lightning: the DataModule's loader and masker, the module's
    forward and loss, the same optimiser."""

    def __init__(
        self, module: Any, data: MLMDataModule, config: Config, device: torch.device, total: int
    ):
        super().__init__(module, config, device, total)
        self.module, self.data, self.total = module, data, total
        self.batches = _epochs(data.train_dataloader())
        self.step = 0

    def batch(self) -> dict[str, torch.Tensor]:
        epoch, batch = next(self.batches)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        progress = self.step / max(1, self.total - 1)
        self.step += 1
        return self.data.mask_batch(batch, epoch=epoch, progress=progress)

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.module._forward(batch, self.step)
        return out.loss_sum / out.count.clamp_min(1)


class HFStep(_Step):
    """HuggingFace's BertForMaskedLM fed by its own collator, from the same token rows."""

    def __init__(
        self,
        model: torch.nn.Module,
        collator: Callable,
        rows: list[list[dict]],
        config: Config,
        device: torch.device,
        total: int,
    ):
        super().__init__(model, config, device, total)
        self.collator, self.rows, self.i = collator, rows, 0

    def batch(self) -> dict[str, torch.Tensor]:
        chunk = self.rows[self.i % len(self.rows)]
        self.i += 1
        return {k: v.to(self.device, non_blocking=True) for k, v in self.collator(chunk).items()}

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model(**batch).loss


class _StepClock(L.Callback):
    """Batch-end times of the Lightning loop: the span from the warm-up's end to the last
    batch's end covers everything the loop does per step, data loading included."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, *args: Any) -> None:
        synchronize(args[1].device)
        self.ends.append(time.perf_counter())


def _hf_model(config: Config, vocab_size: int) -> torch.nn.Module:
    try:
        from transformers import BertConfig, BertForMaskedLM
    except ImportError:
        raise UserError("dmx bench --vs-hf needs transformers: pip install -e '.[bench]'") from None
    m = config.model
    hf_config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=m.d_model,
        num_hidden_layers=m.n_layers,
        num_attention_heads=m.n_heads,
        intermediate_size=m.d_ff,
        max_position_embeddings=m.max_seq_len,
        # The same regularisation as dmx's model, so both do the same work per step.
        hidden_dropout_prob=m.dropout,
        attention_probs_dropout_prob=m.attn_dropout,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    return BertForMaskedLM(hf_config)


def hf_flops_per_token(config: Config, vocab_size: int, seq_len: int) -> float:
    """BertForMaskedLM's training FLOPs per token: dmx's count, with the vocabulary
    projection at every position (its head scores all of them)."""
    from dmx.train import encoder_shape

    return MaskedLM(encoder_shape(config.model, vocab_size)).flops_per_token(seq_len, 1.0)


def bench_model(
    config: Config,
    *,
    precision: str = "fp32",
    vs_hf: bool = False,
    loop: bool = True,
    warmup: int = 3,
    steps: int = 10,
    rounds: int = 3,
    vocab_size: int | None = None,
    device: torch.device | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Time dmx's step (and loop, and HuggingFace's step) at ``config``'s shape.

    ``vocab_size`` sizes the models' vocabulary independently of the corpus' tokenizer (the
    embedded corpus has fewer distinct tokens than a benchmark shape asks for); batches
    come from the configured corpus either way.
    """
    from dmx.callbacks import RunFolder
    from dmx.tasks import MLMModule
    from dmx.train import _trainer, encoder_shape

    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    say = progress or (lambda _: None)
    keep_freed_memory()  # as dmx train does
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("this GPU has no bf16; run dmx bench --precision fp32")
    data = MLMDataModule(config.data, config.mask, config.seed, cache_dir=config.impl.cache_dir)
    data.setup("fit")
    assert data.corpus is not None
    vocab = max(vocab_size or 0, data.vocab_size)
    batch, seq = config.data.batch_size, config.data.seq_len
    if len(data.corpus.train) < batch:
        raise UserError("the corpus has fewer sequences than one batch; raise data.n_docs")
    total = warmup + steps
    say(f"measuring the {precision} matrix-multiply peak")
    peak = matmul_peak(DTYPES[precision], device)

    torch.manual_seed(config.seed)
    model = MaskedLM(encoder_shape(config.model, vocab))
    if config.impl.compile:
        model.compile_blocks()
    module = MLMModule(model, config.optim, config.attention, seed=config.seed)
    dmx_step = DmxStep(module, data, config, device, total)
    dmx_step.precision = precision
    results = {
        DMX_STEP: EngineResult(DMX_STEP, batch * seq, model.flops_per_token(seq, config.mask.prob))
    }
    engines: dict[str, Callable[[EngineResult], None]] = {}

    def run_steps(step: _Step) -> Callable[[EngineResult], None]:
        def run(result: EngineResult) -> None:
            for _ in range(warmup):
                step()
            timed = [step() for _ in range(steps)]
            result.step_s.append(statistics.median(sum(t.values()) for t in timed))
            for name in PHASES:
                result.phases_s.setdefault(name, []).append(
                    statistics.median(t[name] for t in timed)
                )

        return run

    engines[DMX_STEP] = run_steps(dmx_step)

    if loop:
        results[DMX_LOOP] = EngineResult(DMX_LOOP, batch * seq, results[DMX_STEP].flops_per_token)
        loop_config = _loop_config(config, precision, total)
        loop_model = MaskedLM(encoder_shape(config.model, vocab))
        if config.impl.compile:
            loop_model.compile_blocks()
        loop_module = MLMModule(loop_model, config.optim, config.attention, seed=config.seed)
        folder = Path(tempfile.mkdtemp(prefix="dmx-bench-"))

        def run_loop(result: EngineResult) -> None:
            clock = _StepClock()
            callbacks: list[L.Callback] = [RunFolder(folder, config.seed, checkpoint=False), clock]
            trainer = _trainer(loop_config, callbacks, None, folder)
            trainer.fit(loop_module, datamodule=data)
            spans = [b - a for a, b in itertools.pairwise(clock.ends[warmup:])]
            result.step_s.append(statistics.median(spans))

        engines[DMX_LOOP] = run_loop

    if vs_hf:
        from dmx.bench.masking import _hf_collator

        hf_model = _hf_model(config, vocab)
        collator = _hf_collator(data.corpus.tokenizer, config.mask.prob)
        n_rows = min(len(data.corpus.train) // batch, total) * batch
        rows = [{"input_ids": data.corpus.train[i][0]} for i in range(n_rows)]
        chunks = [rows[i : i + batch] for i in range(0, n_rows, batch)]
        hf_step = HFStep(hf_model, collator, chunks, config, device, total)
        hf_step.precision = precision
        results[HF_STEP] = EngineResult(
            HF_STEP, batch * seq, hf_flops_per_token(config, vocab, seq)
        )
        engines[HF_STEP] = run_steps(hf_step)

    for r in range(rounds):
        for label, run in engines.items():
            say(f"round {r + 1}/{rounds}: {label}")
            _reset_peak_memory(device)
            run(results[label])
            mem = _peak_memory_mb(device)
            if mem is not None:
                results[label].peak_mem_mb = max(results[label].peak_mem_mb or 0.0, mem)
    # Measured again after the rounds, and the better kept: one reading taken while the
    # machine was briefly busy would understate the peak and overstate every fraction of it.
    say(f"measuring the {precision} matrix-multiply peak again")
    peak = max(peak, matmul_peak(DTYPES[precision], device))
    m = config.model
    shape = {
        "layers": m.n_layers,
        "hidden": m.d_model,
        "heads": m.n_heads,
        "ffn": m.d_ff,
        "vocab": vocab,
        "seq_len": seq,
        "batch": batch,
        "mask_prob": config.mask.prob,
        "mask": data.train_masker.strategy,
    }
    from dmx import provenance

    return BenchResult(
        shape=shape,
        precision=precision,
        device=provenance.device_name(device),
        threads=torch.get_num_threads(),
        peak_flops=peak,
        engines=list(results.values()),
        compiled=config.impl.compile,
    )


def _loop_config(config: Config, precision: str, total: int) -> Config:
    """The run's config with Lightning told the bench's precision and length, and nothing
    printed or checkpointed (the loop is timed, not kept)."""
    import dataclasses

    impl = dataclasses.replace(
        config.impl, precision=PRECISIONS[precision], progress_bar=False, checkpoint=False
    )
    trainer = dataclasses.replace(config.trainer, max_steps=total, max_epochs=10**6)
    return dataclasses.replace(config, impl=impl, trainer=trainer)


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
            f", HuggingFace (BertForMaskedLM with its collator) {hf.flops_per_token / 1e6:.1f}M "
            "(its head scores every position)"
            if (hf := result.engine(HF_STEP))
            else ""
        )
    ]
    if result.data_share is not None:
        lines.append(f"data and masking: {result.data_share:.1%} of the dmx step")
    if result.loop_overhead is not None:
        lines.append(f"dmx train loop overhead vs the bare step: {result.loop_overhead:+.1%}")
    if result.ratio_vs_hf is not None:
        lines.append(f"ratio_vs_hf={result.ratio_vs_hf:.2f}")
    return table, lines
