"""Benchmarks measured in this process, next to HuggingFace at the same shape: the masking
strategies against its collator (:mod:`dmx.bench.masking`), and the training step against
its BERT, with the machine's matrix-multiply peak (:mod:`dmx.bench.model`)."""

from dmx.bench.masking import HF_LABEL, STRATEGIES, Timing, bench_masking

__all__ = ["HF_LABEL", "STRATEGIES", "Timing", "bench_masking"]
