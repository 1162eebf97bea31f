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
from dataclasses import dataclass

import torch
from torch.utils.data import default_collate

from dmx.config import DataConfig
from dmx.data.corpora import load_corpus
from dmx.data.informative import informative_weights, token_counts
from dmx.data.pmi import PMISettings, load_or_build_units
from dmx.data.tokenizer import MASK_ID, N_SPECIAL
from dmx.errors import UserError
from dmx.masking import TokenMasker
from dmx.masking.adaptive import AdaptiveRates
from dmx.masking.weights import normalise

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
    ("informative (bernoulli)", "token", "bernoulli", "informative"),
    ("informative (fixed)", "token", "fixed", "informative"),
    # Its table lookup, plus the per-step bookkeeping of the selected tokens' losses (the
    # table's update every mask.adapt_every steps is included, every 20 batches).
    ("adaptive (bernoulli)", "token", "bernoulli", "adaptive"),
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


def _hf_collator(tokenizer: object, prob: float) -> Callable[[list[dict]], dict]:
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
    stream, vocab = corpus.train.stream, corpus.vocab_size
    # What the adaptive strategies read besides the ids, built as a run builds them.
    units = load_or_build_units(corpus.folder, stream.ids, stream.starts, PMISettings())
    counts = token_counts(stream.ids, vocab)
    freq = torch.from_numpy(counts)
    raw = informative_weights(stream.ids, stream.offsets, vocab, counts=counts)
    informative = normalise(torch.from_numpy(raw), freq, 0.1, 4.0)
    adaptive = AdaptiveRates(freq, prob, every=20, smoothing=0.3, power=1.0, lo=0.1, hi=4.0)
    rows = [corpus.train[i] for i in range(n)]
    examples = [
        {
            "input_ids": ids,
            "word_starts": starts,
            "unit_starts": corpus.train.starts_of(i, units),
            "index": torch.tensor(i),
        }
        for i, (ids, starts) in enumerate(rows)
    ]
    chunks = [examples[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]
    maskers = {
        label: TokenMasker(
            0,
            None,
            prob,
            0.8,
            0.1,
            MASK_ID,
            N_SPECIAL,
            vocab,
            unit=unit,
            count=count,
            weighting=weighting,
        )
        for label, unit, count, weighting in STRATEGIES
    }
    collator = _hf_collator(corpus.tokenizer, prob)
    hf_examples = [[{"input_ids": e["input_ids"]} for e in chunk] for chunk in chunks]

    def run_dmx(masker: TokenMasker) -> Callable[[], None]:
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
                    weights={"informative": informative, "adaptive": adaptive.weights}.get(
                        masker.weighting
                    ),
                )
                if masker.weighting == "adaptive":  # the step's losses, as training feeds them
                    ids = masked.labels[masked.selected]
                    adaptive.observe(ids, torch.rand(len(ids)))
                    if adaptive.due():
                        adaptive.update(key)

        return once

    def run_hf() -> None:
        for chunk in hf_examples:
            collator(chunk)

    runs: dict[str, Callable[[], None]] = {label: run_dmx(m) for label, m in maskers.items()}
    runs[HF_LABEL] = run_hf
    for run in runs.values():  # warm-up: first calls allocate and compile kernels
        run()
    samples: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(rounds):
        for label, run in runs.items():
            started = time.perf_counter()
            run()
            samples[label].append((time.perf_counter() - started) / len(chunks))
    timings = {
        label: Timing(label, statistics.median(values), batch_size)
        for label, values in samples.items()
    }
    hf = timings.pop(HF_LABEL)
    return list(timings.values()), hf
