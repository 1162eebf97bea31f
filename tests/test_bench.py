"""The masking benchmark: every strategy timed next to HuggingFace's collator, and the line
scripts read. Timings are measured, never asserted: only the shape of the answer is. The
figures derived from timings (throughput, ratios, overhead, share of the peak) are checked
on planted timings, where the right answer is known."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from helpers import invoke_dmx, run_dmx
from typer.testing import CliRunner

from dmx.bench.masking import STRATEGIES, Timing, bench_masking
from dmx.bench.results import (
    DMX_FULL_HEAD,
    DMX_LOOP,
    DMX_STEP,
    HF_EAGER,
    HF_SDPA,
    PHASES,
    BenchResult,
    EngineResult,
    render,
)
from dmx.cli import app


@pytest.mark.slow
def test_every_strategy_is_timed_against_the_collator() -> None:
    timings, hf = bench_masking(seq_len=32, batch_size=4, rounds=2, batches=3)
    assert [t.label for t in timings] == [label for label, *_ in STRATEGIES]
    assert {"pmi", "corpus", "informask", "loss", "amlm"} <= {w for *_, w in STRATEGIES} | {
        unit for _, unit, _, _ in STRATEGIES
    }
    for t in [*timings, hf]:
        assert t.batch_size == 4 and math.isfinite(t.seconds_per_batch)
        assert t.seconds_per_batch > 0


def test_a_timing_turns_seconds_per_batch_into_sequences_per_second() -> None:
    # 4 sequences in 2 ms is 2,000 sequences a second; 32 in 0.5 s is 64.
    assert Timing("dynamic", seconds_per_batch=0.002, batch_size=4).sequences_per_s == (
        pytest.approx(2000.0)
    )
    assert Timing("static", seconds_per_batch=0.5, batch_size=32).sequences_per_s == 64.0


@pytest.mark.slow
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
    from helpers import make_config

    return make_config("mask=dynamic", "data.n_docs=120")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_step_the_loop_and_huggingface_are_timed_at_one_shape(precision: str) -> None:
    from dmx.bench.model import bench_model
    from dmx.model import EncoderShape, MaskedLM

    config = _tiny_config()
    result = bench_model(
        config, precision=precision, vs_hf=True, warmup=1, steps=2, rounds=2, vocab_size=512
    )
    labels = [DMX_STEP, DMX_LOOP, DMX_FULL_HEAD, HF_SDPA, HF_EAGER]
    assert [e.label for e in result.engines] == labels
    assert result.shape["vocab"] == 512 and result.precision == precision
    tokens = config.data.batch_size * config.data.seq_len
    dmx_model = MaskedLM(EncoderShape.from_config(config.model, 512))
    dmx_flops = dmx_model.flops_per_token(config.data.seq_len, config.mask.prob)
    step, loop, full, sdpa, eager = result.engines
    assert step.flops_per_token == loop.flops_per_token == dmx_flops
    # The full head, like HuggingFace's, scores every position: the same FLOPs as HF.
    assert full.flops_per_token == sdpa.flops_per_token == eager.flops_per_token > dmx_flops
    assert full.flops_per_token == dmx_model.flops_per_token(config.data.seq_len, 1.0)
    for engine in result.engines:
        assert engine.tokens_per_step == tokens and len(engine.step_s) == 2
        assert all(s > 0 and math.isfinite(s) for s in engine.step_s)
    for engine in (step, full, sdpa, eager):  # the phases add up to the step
        assert sum(engine.phase(p) for p in PHASES) == pytest.approx(
            engine.seconds_per_step, rel=0.5
        )
    assert result.peak_flops > 0
    assert result.best_hf in (sdpa, eager)
    assert result.best_hf.tokens_per_s == max(sdpa.tokens_per_s, eager.tokens_per_s)
    assert result.ratio_vs_hf is not None and result.ratio_vs_hf > 0
    assert result.impl_ratio_vs_hf is not None and result.impl_ratio_vs_hf > 0
    assert result.loop_overhead is not None and math.isfinite(result.loop_overhead)


def _planted(*engines: EngineResult) -> BenchResult:
    shape = {"layers": 1, "hidden": 32, "heads": 2, "ffn": 64, "vocab": 256, "batch": 8}
    return BenchResult(
        shape={**shape, "seq_len": 125},
        precision="fp32",
        device="cpu",
        threads=2,
        peak_flops=1e10,
        engines=list(engines),
    )


def test_the_derived_figures_of_planted_timings() -> None:
    # 1,000 tokens a step. The bare step takes 0.5 s (the median of three rounds), 0.1 s of it
    # data: 2,000 tokens/s, data 20% of the step. The Lightning loop takes 0.625 s: 1,600
    # tokens/s, 20% slower. HuggingFace takes 1.0 s: 1,000 tokens/s, so dmx is 2.00x. At 1 and
    # 3 MFLOP per token that is 2 and 3 GFLOP/s, 20% and 30% of a 10 GFLOP/s peak. HF with
    # SDPA takes 1.25 s, slower than eager: dmx is compared with eager. dmx with the full
    # head (HF's 3 MFLOP) takes 0.8 s: 1,250 tokens/s, 1.25x HF on implementation alone.
    step = EngineResult(
        DMX_STEP,
        tokens_per_step=1000,
        flops_per_token=1e6,
        step_s=[0.9, 0.4, 0.5],
        phases_s={"data": [0.1, 0.1, 0.3], "forward": [0.2, 0.2, 0.2]},
    )
    loop = EngineResult(DMX_LOOP, tokens_per_step=1000, flops_per_token=1e6, step_s=[0.625])
    hf = EngineResult(HF_EAGER, tokens_per_step=1000, flops_per_token=3e6, step_s=[1.2, 0.8])
    sdpa = EngineResult(HF_SDPA, tokens_per_step=1000, flops_per_token=3e6, step_s=[1.25])
    full = EngineResult(DMX_FULL_HEAD, tokens_per_step=1000, flops_per_token=3e6, step_s=[0.8])
    result = _planted(step, loop, full, sdpa, hf)

    assert step.seconds_per_step == 0.5 and hf.seconds_per_step == pytest.approx(1.0)
    assert step.tokens_per_s == 2000 and loop.tokens_per_s == 1600
    assert hf.tokens_per_s == pytest.approx(1000)
    assert step.phase("data") == pytest.approx(0.1) and step.phase("backward") is None
    assert step.flops_per_s() == 2e9 and hf.flops_per_s() == pytest.approx(3e9)
    assert result.best_hf is hf
    assert result.ratio_vs_hf == pytest.approx(2.0)
    assert result.impl_ratio_vs_hf == pytest.approx(1.25)
    assert result.loop_overhead == pytest.approx(0.2)
    assert result.data_share == pytest.approx(0.2)
    assert result.fraction_of_peak(step) == pytest.approx(0.2)
    assert result.fraction_of_peak(hf) == pytest.approx(0.3)
    assert result.engine(HF_EAGER) is hf and result.engine("nope") is None

    _, lines = render(result)
    assert lines[1:] == [
        "data and masking: 20.0% of the dmx step",
        "dmx train loop overhead vs the bare step: +20.0%",
        "HuggingFace at its best here: HF eager",
        "ratio_vs_hf=2.00 impl_ratio_vs_hf=1.25",
    ]
    assert "10 GFLOP/s (fp32)" in lines[0] and "dmx 1.0M" in lines[0] and "HuggingFace" in lines[0]
    assert "3.0M" in lines[0]


def test_figures_that_need_a_missing_engine_are_absent() -> None:
    step = EngineResult(DMX_STEP, tokens_per_step=1000, flops_per_token=1e6, step_s=[0.5])
    result = _planted(step)
    assert result.ratio_vs_hf is None and result.impl_ratio_vs_hf is None
    assert result.best_hf is None and result.loop_overhead is None
    assert result.data_share is None  # no data phase recorded
    _, lines = render(result)
    assert len(lines) == 1 and "HuggingFace" not in lines[0]


@pytest.mark.slow
def test_cli_ends_with_both_ratios_vs_hf(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--vs-hf", *SHAPE, *SMALL])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"ratio_vs_hf=\d+\.\d\d impl_ratio_vs_hf=\d+\.\d\d", lines[-1]), lines[-1]
    assert any(line.startswith("matmul peak measured here") for line in lines)
    assert any(line.startswith("dmx train loop overhead vs the bare step: ") for line in lines)
    engines = [" ".join(line.split()[:2]) for line in lines if line.startswith((" dmx ", " HF "))]
    assert engines == ["dmx step", "dmx train", "dmx full", "HF sdpa", "HF eager"]


@pytest.mark.slow
def test_cli_refuses_an_unknown_precision(tmp_path: Path) -> None:
    result = invoke_dmx("bench", "--precision", "fp8", *SHAPE, *SMALL, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "dmx: error: --precision must be one of fp32, bf16; got 'fp8'"


@pytest.mark.slow
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
    assert r.rows == 100 and r.preprocess_s > 0
    assert r.open_s < r.preprocess_s  # the second run opens the cache, it does not rebuild it
    assert list((tmp_path / "work" / "cache").glob("synthetic-*/train.ids.npy"))


def test_the_data_bench_rates_of_planted_timings() -> None:
    from dmx.bench.data import DataBench

    # 3 million tokens preprocessed in 1.5 s; 1,000 rows of 128 tokens read back in 0.064 s.
    r = DataBench(
        text_mb=10.0,
        write_s=0.2,
        tokens=3_000_000,
        preprocess_s=1.5,
        open_s=0.01,
        rows=1000,
        read_s=0.064,
        seq_len=128,
        peak_rss_mb=None,
    )
    assert r.preprocess_tokens_per_s == pytest.approx(2_000_000)
    assert r.read_tokens_per_s == pytest.approx(2_000_000)
