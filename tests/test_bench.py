"""The masking benchmark: every strategy timed next to HuggingFace's collator, and the line
scripts read. Timings are measured, never asserted: only the shape of the answer is."""

from __future__ import annotations

import math
import re
from pathlib import Path

from conftest import run_dmx

from dmx.bench import STRATEGIES, bench_masking


def test_every_strategy_is_timed_against_the_collator() -> None:
    timings, hf = bench_masking(seq_len=32, batch_size=4, rounds=2, batches=3)
    assert [t.label for t in timings] == [label for label, _, _ in STRATEGIES]
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
