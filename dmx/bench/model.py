"""``dmx bench``: training throughput, where the step's time goes, and how close to the
machine's limit it runs, next to HuggingFace at the identical shape, in one process.

Three engines train the same shape on the same batches:

- **dmx step**: the bare training step, with the pieces ``dmx train`` uses (the
  DataModule's loader and keyed masker, :class:`~dmx.training.mlm.MLMModule`'s forward, AdamW
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
measured in the same process (:mod:`dmx.common.hardware`). HuggingFace's model does more work
per token (its head projects every position onto the vocabulary, dmx's only the masked
ones), so its FLOPs are counted as its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

from dmx.bench.engines import (
    DmxFullHeadStep,
    DmxStep,
    HFStep,
    Step,
    StepClock,
    hf_flops_per_token,
    hf_model,
)
from dmx.bench.results import (
    DMX_FULL_HEAD,
    DMX_LOOP,
    DMX_STEP,
    HF_EAGER,
    HF_SDPA,
    PHASES,
    BenchResult,
    EngineResult,
)
from dmx.common.choices import BENCH_PRECISIONS
from dmx.common.errors import UserError
from dmx.common.hardware import device_name, matmul_peak, peak_memory_mb, reset_peak_memory
from dmx.config import Config
from dmx.data.datamodule import MLMDataModule
from dmx.model import EncoderShape, MaskedLM
from dmx.run.allocator import keep_freed_memory

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


# The embedded corpus' documents hold about 94 tokens each (32,765 tokens in 350 training
# documents), about 0.7 packed sequences of 128 tokens.
_ROWS_OF_128_PER_DOC = 0.7


def embedded_docs_for(rows: int, seq_len: int) -> int:
    """How many embedded documents give a round of ``rows`` training sequences of
    ``seq_len`` without running out mid-round: ``rows / 0.7`` documents at 128 tokens
    (more for longer sequences), doubled for the 100 held out for validation and for
    slack, and never fewer than the demo's 350 (one epoch must outlast the warm-up)."""
    return max(350, 2 * rows * max(1, seq_len // 128))


def bench_overrides(
    model: str, shape: dict[str, int | None], seq_len: int, batch_size: int, rows: int
) -> list[str]:
    """The overrides of a benchmark run: the ``model`` preset, with the ``shape`` fields
    given (n_layers, d_model, ...), dynamic masking, on enough of the embedded corpus for a
    round of ``rows`` sequences, logging nothing."""
    return [
        f"model={model}",
        *(f"model.{k}={v}" for k, v in shape.items() if v is not None),
        f"model.max_seq_len={seq_len}",
        f"data.seq_len={seq_len}",
        f"data.batch_size={batch_size}",
        f"data.n_docs={embedded_docs_for(rows, seq_len)}",
        "mask=dynamic",
        "logger=none",
    ]


def check_precision(precision: str) -> None:
    """One of the two precisions the bench times (fp32, bf16), before anything is built."""
    if precision not in BENCH_PRECISIONS:
        choices = ", ".join(BENCH_PRECISIONS)
        raise UserError(f"--precision must be one of {choices}; got {precision!r}")


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
    come from the configured corpus either way. Engines alternate round by round.
    """
    check_precision(precision)
    say = progress or (lambda _: None)
    keep_freed_memory()  # as dmx train does
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("this GPU has no bf16; run dmx bench --precision fp32")
    data = MLMDataModule(config.data, config.mask, config.seed, cache_dir=config.impl.cache_dir)
    data.setup("fit")
    assert data.corpus is not None
    vocab = max(vocab_size or 0, data.vocab_size)
    if len(data.corpus.train) < config.data.batch_size:
        raise UserError("the corpus has fewer sequences than one batch; raise data.n_docs")
    say(f"measuring the {precision} matrix-multiply peak")
    peak = matmul_peak(DTYPES[precision], device)
    bench = _Bench(config, data, vocab, device, precision, warmup, steps)
    bench.add_dmx_step()
    if loop:
        bench.add_loop()
    if vs_hf:
        bench.add_dmx_step(full_head=True)
        bench.add_hf("sdpa", HF_SDPA)
        bench.add_hf("eager", HF_EAGER)
    for r in range(rounds):
        for label in bench.engines:
            say(f"round {r + 1}/{rounds}: {label}")
            bench.run(label)
    # Measured again after the rounds, and the better kept: one reading taken while the
    # machine was briefly busy would understate the peak and overstate every fraction of it.
    say(f"measuring the {precision} matrix-multiply peak again")
    peak = max(peak, matmul_peak(DTYPES[precision], device))
    model = config.model
    shape = {
        "layers": model.n_layers,
        "hidden": model.d_model,
        "heads": model.n_heads,
        "ffn": model.d_ff,
        "vocab": vocab,
        "seq_len": config.data.seq_len,
        "batch": config.data.batch_size,
        "mask_prob": config.mask.prob,
        "mask": data.train_masker.strategy,
    }
    return BenchResult(
        shape=shape,
        precision=precision,
        device=device_name(device),
        threads=torch.get_num_threads(),
        peak_flops=peak,
        engines=list(bench.results.values()),
        compiled=config.impl.compile,
    )


class _Bench:
    """The engines of one benchmark, each a way to run a round, with what it measured."""

    def __init__(
        self,
        config: Config,
        data: MLMDataModule,
        vocab: int,
        device: torch.device,
        precision: str,
        warmup: int,
        steps: int,
    ) -> None:
        self.config, self.data, self.vocab, self.device = config, data, vocab, device
        self.precision, self.warmup, self.steps = precision, warmup, steps
        self.tokens = config.data.batch_size * config.data.seq_len
        self.engines: dict[str, Callable[[EngineResult], None]] = {}
        self.results: dict[str, EngineResult] = {}

    def run(self, label: str) -> None:
        """One round of one engine, with its peak memory."""
        reset_peak_memory(self.device)
        self.engines[label](self.results[label])
        result = self.results[label]
        result.peak_mem_mb = max(result.peak_mem_mb or 0.0, peak_memory_mb(self.device))

    def _model(self) -> MaskedLM:
        """dmx's model as a run builds it: the run's seed, compiled when impl says so."""
        torch.manual_seed(self.config.seed)
        model = MaskedLM(EncoderShape.from_config(self.config.model, self.vocab))
        if self.config.impl.compile:
            model.compile_blocks()
        return model

    def _steps(self, step: Step) -> Callable[[EngineResult], None]:
        """A round of a bare step engine: warm-up steps, then the median of timed ones."""

        def run(result: EngineResult) -> None:
            for _ in range(self.warmup):
                step()
            timed = [step() for _ in range(self.steps)]
            result.step_s.append(statistics.median(sum(t.values()) for t in timed))
            for name in PHASES:
                result.phases_s.setdefault(name, []).append(
                    statistics.median(t[name] for t in timed)
                )

        return run

    def add_dmx_step(self, full_head: bool = False) -> None:
        """dmx's bare step; ``full_head``: with the head at every position (HF's FLOPs)."""
        from dmx.training.mlm import MLMModule

        config, total = self.config, self.warmup + self.steps
        model = self._model()
        module = MLMModule(model, config.optim, config.attention, seed=config.seed)
        kind = DmxFullHeadStep if full_head else DmxStep
        step = kind(module, self.data, config, self.device, total)
        step.precision = self.precision
        rate = 1.0 if full_head else config.mask.prob
        flops = model.flops_per_token(config.data.seq_len, rate)
        label = DMX_FULL_HEAD if full_head else DMX_STEP
        self.results[label] = EngineResult(label, self.tokens, flops)
        self.engines[label] = self._steps(step)

    def add_loop(self) -> None:
        """The real Lightning loop, at the same shape, into a throwaway folder."""
        from dmx.run.callbacks import RunFolder
        from dmx.training.mlm import MLMModule
        from dmx.training.trainer import build_trainer

        config, warmup = self.config, self.warmup
        loop_config = _loop_config(config, self.precision, warmup + self.steps)
        module = MLMModule(self._model(), config.optim, config.attention, seed=config.seed)
        folder = Path(tempfile.mkdtemp(prefix="dmx-bench-"))
        flops = self.results[DMX_STEP].flops_per_token
        self.results[DMX_LOOP] = EngineResult(DMX_LOOP, self.tokens, flops)

        def run(result: EngineResult) -> None:
            clock = StepClock()
            callbacks: list[L.Callback] = [RunFolder(folder, config.seed, checkpoint=False), clock]
            trainer = build_trainer(loop_config, callbacks, None, folder)
            trainer.fit(module, datamodule=self.data)
            spans = [b - a for a, b in itertools.pairwise(clock.ends[warmup:])]
            result.step_s.append(statistics.median(spans))

        self.engines[DMX_LOOP] = run

    def add_hf(self, attention: str, label: str) -> None:
        """BertForMaskedLM with ``attention`` fed by its collator, from the same token rows."""
        from dmx.bench.masking import hf_collator

        config, corpus = self.config, self.data.corpus
        assert corpus is not None
        batch, total = config.data.batch_size, self.warmup + self.steps
        collator = hf_collator(corpus.tokenizer, config.mask.prob)
        n_rows = min(len(corpus.train) // batch, total) * batch
        rows = [{"input_ids": corpus.train[i][0]} for i in range(n_rows)]
        chunks = [rows[i : i + batch] for i in range(0, n_rows, batch)]
        model = hf_model(config, self.vocab, attention)
        step = HFStep(model, collator, chunks, config, self.device, total)
        step.precision = self.precision
        flops = hf_flops_per_token(config, self.vocab, config.data.seq_len)
        self.results[label] = EngineResult(label, self.tokens, flops)
        self.engines[label] = self._steps(step)


def _loop_config(config: Config, precision: str, total: int) -> Config:
    """The run's config with Lightning told the bench's precision and length, and nothing
    printed or checkpointed (the loop is timed, not kept)."""
    impl = dataclasses.replace(
        config.impl, precision=BENCH_PRECISIONS[precision], progress_bar=False, checkpoint=False
    )
    trainer = dataclasses.replace(config.trainer, max_steps=total, max_epochs=10**6)
    return dataclasses.replace(config, impl=impl, trainer=trainer)
