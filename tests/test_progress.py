"""Long preparations show their progress against a total, in 80 columns, on a terminal:
tokenizing a corpus (bytes on the tokenizer's pass, then documents), building PMI units and
computing corpus weights (their steps)."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from dmx.common import progress
from dmx.config import DataConfig
from dmx.data import pmi
from dmx.data.corpus import load_corpus
from dmx.data.informask import ROWS_PER_BATCH, informask_rates
from dmx.data.pmi import PMISettings, load_or_build_units
from dmx.data.sources import open_source

WORDS = "the quick brown fox jumps over a lazy dog near seven ripe plums".split()


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What an 80-column terminal would have been sent."""
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=80, color_system=None)
    monkeypatch.setattr(progress, "_console", lambda: console)
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    return screen


def _corpus_text(n_docs: int) -> str:
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(WORDS, 12)) for _ in range(n_docs)]
    return "\n\n".join(docs) + "\n"


def _lines(screen: io.StringIO) -> list[str]:
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", screen.getvalue())
    return [line.rstrip() for line in plain.replace("\r", "\n").split("\n") if line.strip()]


def test_tokenizing_a_text_file_counts_bytes_then_documents_against_totals(
    tmp_path: Path, terminal: io.StringIO
) -> None:
    text = _corpus_text(3000)
    path = tmp_path / "big.txt"
    path.write_text(text)
    cfg = DataConfig(source="text", name="big", path=str(path), vocab_size=300, seq_len=16)
    load_corpus(cfg, tmp_path / "cache", require_batch=False)
    lines = _lines(terminal)
    size = progress.compact(len(text.encode()))
    # The tokenizer's pass knows the file's size before it has counted any document ...
    training = [line for line in lines if line.startswith("training a tokenizer on big")]
    assert training and f"{size}/{size} B" in training[-1]
    # ... and the pass that tokenizes knows the documents that pass counted.
    tokenizing = [line for line in lines if line.startswith("tokenizing big")]
    assert tokenizing and "3.0k/3.0k docs" in tokenizing[-1] and "tokens" in tokenizing[-1]
    assert all(len(line) <= 80 for line in lines)


def test_a_gzip_files_text_size_is_read_from_its_trailer(tmp_path: Path) -> None:
    text = _corpus_text(200).encode()
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(text))
    (tmp_path / "b.txt").write_bytes(text)
    cfg = DataConfig(source="text", name="mine", path=str(tmp_path), vocab_size=300)
    assert open_source(cfg).text_bytes == 2 * len(text)


class Recorded(progress.Stages):
    made: list[Recorded] = []

    def __init__(self, description: str, total: int | None) -> None:
        super().__init__(description, total)
        self.total = total
        Recorded.made.append(self)

    def step(self, name: str, total: int | None = None) -> None:
        self.total = total if total is not None else self.total
        super().step(name, total)


def test_building_pmi_units_steps_through_each_length_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: io.StringIO
) -> None:
    monkeypatch.setattr(pmi, "Stages", Recorded)
    Recorded.made = []
    rng = np.random.default_rng(0)
    ids = rng.integers(10, 60, 5000)
    starts = np.ones(len(ids), dtype=np.uint8)
    load_or_build_units(tmp_path, ids, starts, PMISettings(ngram_max=4, min_count=3))
    (stages,) = Recorded.made
    assert stages.names == [
        "counting n-grams",
        "scoring 2-grams",
        "scoring 3-grams",
        "scoring 4-grams",
        "marking 4-gram units",
        "marking 3-gram units",
        "marking 2-gram units",
    ]
    assert stages.total == len(stages.names)
    assert any(line.startswith("PMI units") and "7/7" in line for line in _lines(terminal))


def test_informask_steps_are_its_pmi_pass_and_each_batch_of_rows() -> None:
    named: list[tuple[str, int | None]] = []
    rng = np.random.default_rng(0)
    ids = rng.integers(10, 60, 2 * ROWS_PER_BATCH * 20)
    spans = [(i, i + 20) for i in range(0, len(ids), 20)]
    informask_rates(
        ids,
        np.array([0, len(ids)]),
        spans,
        64,
        0.15,
        step=lambda n, total=None: named.append((n, total)),
    )
    assert named == [
        ("neighbour PMI", 3),
        (f"scoring rows 1-{ROWS_PER_BATCH}", None),
        (f"scoring rows {ROWS_PER_BATCH + 1}-{2 * ROWS_PER_BATCH}", None),
    ]
