"""The masking benchmark: every strategy timed next to HuggingFace's collator, and the line
scripts read. Timings are measured, never asserted: only the shape of the answer is."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from conftest import run_dmx

from dmx.bench import STRATEGIES, bench_masking


def test_every_strategy_is_timed_against_the_collator() -> None:
    timings, hf = bench_masking(seq_len=32, batch_size=4, rounds=2, batches=3)
    assert [t.label for t in timings] == [label for label, *_ in STRATEGIES]
    assert {"pmi", "informative", "adaptive"} <= {w for *_, w in STRATEGIES} | {
        unit for _, unit, _, _ in STRATEGIES
    }
    for t in [*timings, hf]:
        assert t.batch_size == 4 and math.isfinite(t.seconds_per_batch)
        assert t.sequences_per_s == 4 / t.seconds_per_batch


def test_cli_ends_with_the_minimum_ratio(tmp_path: Path) -> None:
    result = run_dmx(
        "bench", "--masking", "--seq-len", "32", "--batch-size", "4", "--rounds", "1", cwd=tmp_path
    )
    last = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"min_ratio_vs_collator=\d+\.\d\d", last), last
    ratios = [float(r) for r in re.findall(r"(\d+\.\d\d)x", result.stdout)]
    assert len(ratios) == len(STRATEGIES) + 1 and ratios[-1] == 1.0
    assert last == f"min_ratio_vs_collator={min(ratios[:-1]):.2f}"


# --- the training-step benchmark ------------------------------------------------------------

SHAPE = ["--layers", "1", "--hidden", "32", "--heads", "2", "--ffn", "64", "--vocab", "256"]
SMALL = ["--seq-len", "32", "--batch-size", "8", "--steps", "2", "--warmup", "1", "--rounds", "1"]


def _tiny_config():
    from conftest import make_config

    return make_config("mask=dynamic", "data.n_docs=120")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_step_the_loop_and_huggingface_are_timed_at_one_shape(precision: str) -> None:
    from dmx.bench.model import DMX_LOOP, DMX_STEP, HF_STEP, PHASES, bench_model
    from dmx.model import MaskedLM
    from dmx.train import encoder_shape

    config = _tiny_config()
    result = bench_model(
        config, precision=precision, vs_hf=True, warmup=1, steps=2, rounds=2, vocab_size=512
    )
    assert [e.label for e in result.engines] == [DMX_STEP, DMX_LOOP, HF_STEP]
    assert result.shape["vocab"] == 512 and result.precision == precision
    tokens = config.data.batch_size * config.data.seq_len
    dmx_flops = MaskedLM(encoder_shape(config.model, 512)).flops_per_token(
        config.data.seq_len, config.mask.prob
    )
    step, loop, hf = result.engines
    assert step.flops_per_token == loop.flops_per_token == dmx_flops
    assert hf.flops_per_token > dmx_flops  # its head scores every position
    for engine in result.engines:
        assert engine.tokens_per_step == tokens and len(engine.step_s) == 2
        assert engine.tokens_per_s == tokens / engine.seconds_per_step
    for engine in (step, hf):  # the phases add up to the step
        assert sum(engine.phase(p) for p in PHASES) == pytest.approx(
            engine.seconds_per_step, rel=0.5
        )
    assert result.ratio_vs_hf == step.tokens_per_s / hf.tokens_per_s
    assert result.loop_overhead == 1 - loop.tokens_per_s / step.tokens_per_s
    assert result.peak_flops > 0
    assert result.fraction_of_peak(step) == step.flops_per_s() / result.peak_flops


def test_cli_ends_with_the_ratio_vs_hf(tmp_path: Path) -> None:
    result = run_dmx("bench", "--vs-hf", *SHAPE, *SMALL, cwd=tmp_path)
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"ratio_vs_hf=\d+\.\d\d", lines[-1]), lines[-1]
    assert any(line.startswith("matmul peak measured here") for line in lines)
    assert any(line.startswith("dmx train loop overhead vs the bare step: ") for line in lines)
    engines = [line.split()[:2] for line in lines if line.startswith((" dmx ", " HuggingFace"))]
    assert [e[0] if e[0] == "HuggingFace" else " ".join(e) for e in engines] == [
        "dmx step",
        "dmx train",
        "HuggingFace",
    ]


def test_cli_refuses_an_unknown_precision(tmp_path: Path) -> None:
    result = run_dmx("bench", "--precision", "fp8", *SHAPE, *SMALL, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "dmx: error: --precision must be one of fp32, bf16; got 'fp8'"


def test_data_bench_preprocesses_and_reads_back_a_synthetic_corpus(tmp_path: Path) -> None:
    from dmx.bench.data import _TOKENS_PER_WORD, bench_data, write_synthetic_corpus

    size = write_synthetic_corpus(tmp_path / "a.txt", 5000, seed=1)
    assert size == (tmp_path / "a.txt").stat().st_size / 1e6
    assert (tmp_path / "a.txt").read_text() == (
        write_synthetic_corpus(tmp_path / "b.txt", 5000, seed=1)
        and (tmp_path / "b.txt").read_text()
    )
    r = bench_data(50_000, tmp_path / "work", vocab_size=512, seq_len=32, rows=100)
    # Words enough for the tokens asked for at 1.35 BPE tokens per word (an 8192 vocabulary),
    # cut at a document's end; a smaller vocabulary splits words into more tokens.
    words = len((tmp_path / "work" / "synthetic.txt").read_text().split())
    target = int(50_000 / _TOKENS_PER_WORD)
    assert target <= words < target + 400
    assert words < r.tokens < 4 * words
    assert r.rows == 100 and r.preprocess_tokens_per_s == r.tokens / r.preprocess_s
    assert r.open_s < r.preprocess_s  # the second run opens the cache, it does not rebuild it
    assert list((tmp_path / "work" / "cache").glob("synthetic-*/train.ids.npy"))
