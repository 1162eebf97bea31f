"""Benchmarks, measured in this process: how fast dmx masks, next to HuggingFace.

``dmx bench --masking`` times every token-masking strategy from a list of examples to a
masked batch (stacking included, as a DataLoader would), and HuggingFace's
DataCollatorForLanguageModeling doing the same from the same examples, in alternating
rounds so that both see the same machine. Throughput is the median over rounds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from dmx.common.errors import UserError
from dmx.config import DataConfig, MaskConfig
from dmx.data.corpus import Corpus, load_corpus
from dmx.data.statistics import CorpusStatistics, corpus_statistics
from dmx.data.tokenizer import MASK_ID, N_SPECIAL
from dmx.masking import TokenMasker
from dmx.masking.adaptive import RULES

# (label, unit, count, weighting): every selection a MaskConfig can ask for. Static and
# dynamic masking run the same code with another key, so one of them (dynamic: a new key
# each batch) stands for both.
STRATEGIES: tuple[tuple[str, str, str, str], ...] = (
    ("token (bernoulli)", "token", "bernoulli", "uniform"),
    ("token (fixed)", "token", "fixed", "uniform"),
    ("whole_word (bernoulli)", "whole_word", "bernoulli", "uniform"),
    ("whole_word (fixed)", "whole_word", "fixed", "uniform"),
    ("span (fixed, SpanBERT)", "span", "fixed", "uniform"),
    ("span (bernoulli)", "span", "bernoulli", "uniform"),
    ("pmi (fixed, PMI-Masking)", "pmi", "fixed", "uniform"),
    ("pmi (bernoulli)", "pmi", "bernoulli", "uniform"),
    ("corpus-weighted (bernoulli)", "token", "bernoulli", "corpus"),
    ("corpus-weighted (fixed)", "token", "fixed", "corpus"),
    ("informask (bernoulli)", "token", "bernoulli", "informask"),
    # Their table lookup, plus the per-step bookkeeping of the selected tokens' losses and
    # hits (the table's update every mask.adapt_every steps is included, every 20 batches).
    ("loss-weighted (bernoulli)", "token", "bernoulli", "loss"),
    ("amlm (bernoulli)", "token", "bernoulli", "amlm"),
)
HF_LABEL = "HuggingFace DataCollatorForLanguageModeling"


@dataclass(frozen=True)
class Timing:
    label: str
    seconds_per_batch: float  # median over rounds
    batch_size: int

    @property
    def sequences_per_s(self) -> float:
        return self.batch_size / self.seconds_per_batch


def hf_collator(tokenizer: object, prob: float) -> Callable[[list[dict]], dict]:
    """HuggingFace's DataCollatorForLanguageModeling over dmx's tokenizer: what dmx's
    masking and training step are compared with."""
    try:
        from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast
    except ImportError:
        raise UserError(
            "dmx bench compares with HuggingFace's collator, which needs transformers: "
            "pip install -e '.[bench]'"
        ) from None
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        mask_token="[MASK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="[UNK]",
    )
    return DataCollatorForLanguageModeling(fast, mlm=True, mlm_probability=prob)


def bench_masking(
    seq_len: int = 128, batch_size: int = 32, rounds: int = 7, batches: int = 20, prob: float = 0.15
) -> tuple[list[Timing], Timing]:
    """Every strategy and HuggingFace's collator, each timed over ``batches`` batches per
    round for ``rounds`` alternating rounds, on the embedded corpus (real word starts)."""
    corpus = load_corpus(DataConfig(seq_len=seq_len, batch_size=batch_size), require_batch=False)
    n = min(len(corpus.train), batch_size * batches)
    if n < batch_size:
        raise UserError(f"the corpus has {n} sequences of {seq_len}; lower --batch-size")
    # Each strategy as a run builds it: its mask config (dynamic, the config's defaults
    # otherwise), the corpus statistics it reads, and its masker.
    configs = {
        label: replace(MaskConfig(), copies=None, prob=prob, unit=unit, count=count, weighting=w)
        for label, unit, count, w in STRATEGIES
    }
    needs = _statistics(corpus, configs)
    tokens = {"vocab_size": corpus.vocab_size, "mask_token_id": MASK_ID, "n_special": N_SPECIAL}
    maskers = {
        label: TokenMasker.from_config(mask, seed=0, **tokens) for label, mask in configs.items()
    }
    # PMI unit starts are the same for every pmi strategy (one cached vocabulary).
    units = next(s.units for s in needs.values() if s.units is not None)
    examples = _examples(corpus, n, units)
    chunks = [examples[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    collator = hf_collator(corpus.tokenizer, prob)
    hf_examples = [[{"input_ids": e["input_ids"]} for e in chunk] for chunk in chunks]

    def run_hf() -> None:
        for chunk in hf_examples:
            collator(chunk)

    runs: dict[str, Callable[[], None]] = {
        label: _masking_loop(maskers[label], needs[label], chunks) for label in maskers
    }
    runs[HF_LABEL] = run_hf
    timings = _time_alternating(runs, rounds, len(chunks), batch_size)
    hf = timings.pop(HF_LABEL)
    return list(timings.values()), hf


def _statistics(corpus: Corpus, configs: dict[str, MaskConfig]) -> dict[str, CorpusStatistics]:
    """Each strategy's corpus statistics. They depend on the unit and the weighting only,
    and PMI units and fixed weights are read-only: built once per kind. An adaptive table is
    training state, so each adaptive strategy gets its own."""
    built: dict[tuple[str, str], CorpusStatistics] = {}
    needs = {}
    for label, mask in configs.items():
        kind = (mask.unit, mask.weighting)
        if kind not in built or mask.weighting in RULES:
            built[kind] = corpus_statistics(corpus, mask)
        needs[label] = built[kind]
    return needs


def _masking_loop(
    masker: TokenMasker, stats: CorpusStatistics, chunks: list[list[dict[str, Any]]]
) -> Callable[[], None]:
    """One timed pass of a dmx strategy over the chunks, as training masks them: an
    adaptive table is read at every batch and fed the step's losses."""
    adaptive, weights = stats.adaptive, stats.weights

    def once() -> None:
        for key, chunk in enumerate(chunks):
            batch = default_collate(chunk)
            masked = masker(
                batch["input_ids"],
                batch["index"],
                key,
                word_starts=batch["word_starts"],
                unit_starts=batch["unit_starts"] if masker.unit == "pmi" else None,
                # The adaptive table is read at every batch: its updates replace it.
                weights=adaptive.weights if adaptive is not None else weights,
            )
            if adaptive is not None:  # the step's losses, as training feeds them
                ids = masked.labels[masked.selected]
                adaptive.observe(ids, torch.rand(len(ids)), torch.rand(len(ids)) < 0.5)
                if adaptive.due():
                    adaptive.update(key)

    return once


def _time_alternating(
    runs: dict[str, Callable[[], None]], rounds: int, batches: int, batch_size: int
) -> dict[str, Timing]:
    """Each run once to warm up, then ``rounds`` rounds of every run in turn, so a noisy
    neighbour slows all of them alike; a run's figure is its median round per batch."""
    for run in runs.values():  # warm-up: first calls allocate and compile kernels
        run()
    samples: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(rounds):
        for label, run in runs.items():
            started = time.perf_counter()
            run()
            samples[label].append((time.perf_counter() - started) / batches)
    return {
        label: Timing(label, statistics.median(values), batch_size)
        for label, values in samples.items()
    }


def _examples(corpus: Corpus, n: int, units: np.ndarray) -> list[dict[str, torch.Tensor]]:
    """The first ``n`` training rows as a DataLoader yields them: ids, word and unit starts."""
    examples = []
    for i in range(n):
        ids, word_starts = corpus.train[i]
        unit_starts = corpus.train.starts_of(i, units)
        index = torch.tensor(i)
        examples.append(
            {
                "input_ids": ids,
                "word_starts": word_starts,
                "unit_starts": unit_starts,
                "index": index,
            }
        )
    return examples
