"""Corpora from files and datasets: every format, the document split, the memory-mapped
token cache, the row layouts, existing tokenizers, and each mistake's one-line message.

Every file is made in tmp_path; nothing reaches a network (the hub is tested offline).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from dmx.common.errors import UserError
from dmx.config import DataConfig, MaskConfig
from dmx.data import hub, tokenize_corpus
from dmx.data.corpus import load_corpus
from dmx.data.datamodule import MLMDataModule
from dmx.data.embedded import generate_documents
from dmx.data.sequences import pack
from dmx.data.source import is_validation
from dmx.data.sources import open_source
from dmx.data.text_source import FORMATS_HINT
from dmx.data.tokenizer import SPECIAL_TOKENS, load_tokenizer

PROBE = hub.hub_reachable  # the real probe: conftest stands it in for every test

DOCS = [
    "the farmer milks the goat.",
    "a baker, who lived near the pantry,\nbakes bread every day.",
    "the sailors raise the sail",
    "rusty tools lie in the shed.",
    "seven ripe plums fell from the tree",
    "she sings; he listens.",
]


def text_data(path: Path | str, **overrides: Any) -> DataConfig:
    settings: dict[str, Any] = dict(
        source="text", name="mine", path=str(path), vocab_size=300, seq_len=16, batch_size=2
    )
    settings.update(overrides)
    return DataConfig(**settings)


def documents(cfg: DataConfig) -> list[str]:
    return list(open_source(cfg).documents())


def error(cfg: DataConfig, cache_dir: Path) -> str:
    with pytest.raises(UserError) as caught:
        load_corpus(cfg, cache_dir)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- formats ------------------------------------------------------------------------------


def test_txt_is_split_at_blank_lines_or_one_document_per_line(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("first line\nsame document\n\n\n  \nsecond\r\n\r\nthird\n", encoding="utf-8")
    assert documents(text_data(file)) == ["first line\nsame document", "second", "third"]
    assert documents(text_data(file, doc_split="line")) == [
        "first line",
        "same document",
        "second",
        "third",
    ]


def test_a_folder_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("from b\n\nb again")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "z.txt").write_text("from a/z")
    (tmp_path / "c.txt").write_text("from c")
    (tmp_path / "ignored.md").write_text("not text for dmx")
    assert documents(text_data(tmp_path)) == ["from a/z", "from b", "b again", "from c"]


def test_jsonl_reads_the_configured_field(tmp_path: Path) -> None:
    file = tmp_path / "docs.jsonl"
    lines = [json.dumps({"id": i, "body": doc}) for i, doc in enumerate(DOCS)]
    file.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")
    assert documents(text_data(file, text_field="body")) == DOCS


@pytest.mark.parametrize("suffix, delimiter", [(".csv", ","), (".tsv", "\t")])
def test_csv_and_tsv_read_the_configured_column(
    tmp_path: Path, suffix: str, delimiter: str
) -> None:
    file = tmp_path / f"docs{suffix}"
    with file.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(["id", "content"])
        writer.writerows([i, doc] for i, doc in enumerate(DOCS))
    # Quoted fields keep their commas and newlines.
    assert documents(text_data(file, text_field="content")) == DOCS


def test_parquet_is_read_in_batches_of_a_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = tmp_path / "docs.parquet"
    table = pa.table({"id": list(range(len(DOCS))), "passage": DOCS})
    pq.write_table(table, file, row_group_size=2)  # three row groups
    assert pq.ParquetFile(file).num_row_groups == 3
    assert documents(text_data(file, text_field="passage")) == DOCS


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The datasets library's cache in tmp_path, and the hub unreachable on purpose."""
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    # The library reads these when imported, which may have happened already.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_hf_loads_a_local_dataset_folder_by_name(tmp_path: Path, hf_cache: Path, kind: str) -> None:
    folder = tmp_path / f"local-{kind}"
    folder.mkdir()
    if kind == "jsonl":
        (folder / "train.jsonl").write_text("".join(json.dumps({"story": d}) + "\n" for d in DOCS))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"story": DOCS}), folder / "train.parquet")
    cfg = DataConfig(
        source="hf",
        name=str(folder),
        text_field="story",
        val_frac=0.3,
        split_seed=1,
        vocab_size=200,
        seq_len=16,
    )
    assert documents(cfg) == DOCS
    corpus = load_corpus(cfg, tmp_path / "cache", require_batch=False)
    assert corpus.stats["train_docs"] + corpus.stats["val_docs"] == len(DOCS)
    assert corpus.folder.name.startswith(f"local-{kind}-")  # a path makes a safe folder name
    wrong = DataConfig(source="hf", name=str(folder), text_field="text")
    assert error(wrong, tmp_path / "cache") == (
        f"data.name={folder} has no column 'text'; set data.text_field to one of: story"
    )


def test_hf_offline_and_not_cached_is_one_line_naming_data_text(
    tmp_path: Path, hf_cache: Path
) -> None:
    cfg = DataConfig(source="hf", name="dmx-tests/never-cached-anywhere")
    started = time.perf_counter()
    assert error(cfg, tmp_path) == (
        "data.name=dmx-tests/never-cached-anywhere data.split=train: the dataset could not be "
        "loaded (no network and not in the HuggingFace cache); load it once with a network, "
        "or read local files with data=text data.path=PATH"
    )
    assert time.perf_counter() - started < 20  # offline: no retries against the network


# --- the document split -------------------------------------------------------------------


def test_the_split_is_a_pure_function_of_split_seed_and_document_index() -> None:
    # Recorded values: the split must never change between versions or machines.
    assert [i for i in range(60) if is_validation(0, i, 0.1)] == [7, 9, 11, 26, 49, 58]
    assert [i for i in range(60) if is_validation(1, i, 0.1)] == [0, 7, 10, 23, 31, 55, 57]


def test_the_split_is_by_document_seeded_and_close_to_val_frac(tmp_path: Path) -> None:
    file = tmp_path / "many.txt"
    file.write_text("".join(f"document number {i}\n" for i in range(1000)))
    cfg = text_data(file, doc_split="line", val_frac=0.1)
    split = list(open_source(cfg).split())
    val = {doc for doc, is_val in split if is_val}
    train = {doc for doc, is_val in split if not is_val}
    assert not val & train and len(val | train) == 1000
    assert 60 <= len(val) <= 140  # 100 expected; binomial sd 9.5
    reseeded = text_data(file, doc_split="line", val_frac=0.1, split_seed=1)
    other = {doc for doc, is_val in open_source(reseeded).split() if is_val}
    assert other != val and 60 <= len(other) <= 140
    # End to end, through the cache: the same documents on each side.
    corpus = load_corpus(cfg, tmp_path / "cache")
    assert (corpus.stats["train_docs"], corpus.stats["val_docs"]) == (len(train), len(val))


def test_every_run_seed_sees_the_same_split(tmp_path: Path) -> None:
    file = tmp_path / "docs.txt"
    file.write_text("\n\n".join(generate_documents(3, 40)))
    cfg = text_data(file, val_frac=0.25, seq_len=32, batch_size=4)
    modules = [MLMDataModule(cfg, MaskConfig(), seed, cache_dir=tmp_path / "c") for seed in (0, 7)]
    for module in modules:
        module.setup()
    first, second = (m.corpus for m in modules)
    assert first is not None and second is not None
    assert first.fingerprint == second.fingerprint and first.stats == second.stats
    assert all((first.val[i][0] == second.val[i][0]).all() for i in range(len(first.val)))


# --- the token cache ----------------------------------------------------------------------


def corpus_file(tmp_path: Path, n_docs: int = 40) -> Path:
    file = tmp_path / "corpus.txt"
    file.write_text("\n\n".join(generate_documents(5, n_docs)) + "\n")
    return file


def rows(corpus: Any) -> tuple[np.ndarray, ...]:
    return (*corpus.train.to_numpy(), *corpus.val.to_numpy())


def test_a_second_load_reuses_the_memory_mapped_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = text_data(corpus_file(tmp_path), val_frac=0.2, seq_len=32)
    first = load_corpus(cfg, tmp_path / "cache")
    folder = first.folder
    assert sorted(p.name for p in folder.iterdir()) == [
        "meta.json",
        "tokenizer.json",
        "train.ids.npy",
        "train.offsets.npy",
        "train.starts.npy",
        "val.ids.npy",
        "val.offsets.npy",
        "val.starts.npy",
    ]
    assert np.load(folder / "train.ids.npy", mmap_mode="r").dtype == np.uint16

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenizer was trained again")

    monkeypatch.setattr(tokenize_corpus, "train_tokenizer", no_training)
    with caplog.at_level(logging.INFO, logger="dmx.data.cache"):
        second = load_corpus(cfg, tmp_path / "cache")
    assert f"corpus: reusing cache {folder}" in caplog.text
    assert isinstance(second.train.stream.ids, np.memmap)
    assert all((a == b).all() for a, b in zip(rows(first), rows(second), strict=True))
    # Another sequence length or packing is the same cache, cut differently.
    third = load_corpus(text_data(cfg.path, val_frac=0.2, seq_len=64, packing=False), folder.parent)
    assert third.folder == folder and third.train.seq_len == 64


@pytest.mark.parametrize(
    "damage",
    ["delete val.starts.npy", "truncate train.ids.npy", "garble train.offsets.npy", "garble meta"],
)
def test_a_damaged_cache_is_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = text_data(corpus_file(tmp_path), val_frac=0.2, seq_len=32)
    built = load_corpus(cfg, tmp_path / "cache")
    folder, expected = built.folder, rows(built)  # read before the files are damaged
    if damage == "delete val.starts.npy":
        (folder / "val.starts.npy").unlink()
    elif damage == "truncate train.ids.npy":
        data = (folder / "train.ids.npy").read_bytes()
        (folder / "train.ids.npy").write_bytes(data[: len(data) // 2])
    elif damage == "garble train.offsets.npy":
        (folder / "train.offsets.npy").write_bytes(b"not an array")
    else:
        (folder / "meta.json").write_text("{")
    with caplog.at_level(logging.WARNING, logger="dmx.data.cache"):
        rebuilt = load_corpus(cfg, tmp_path / "cache")
    assert "rebuilding" in caplog.text
    assert all((a == b).all() for a, b in zip(expected, rows(rebuilt), strict=True))
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left


# --- row layouts --------------------------------------------------------------------------

# A WordPiece tokenizer with ids chosen by hand: "bz" is b ##z, a word of two tokens.
LAYOUT_VOCAB = {**{t: i for i, t in enumerate(SPECIAL_TOKENS)}, "a": 5, "b": 6, "c": 7}
LAYOUT_VOCAB |= {"d": 8, "e": 9, "##z": 10}


def layout_corpus(tmp_path: Path, packing: bool) -> Any:
    tokenizer = Tokenizer(models.WordPiece(LAYOUT_VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    file = tmp_path / "docs.txt"
    file.write_text("a bz cz\naz b c d e azz\nez\nb a\n")
    # A split seed that holds out the last document only, found the way dmx splits.
    held_out = [False, False, False, True]
    seed = next(s for s in range(1000) if [is_validation(s, i, 0.25) for i in range(4)] == held_out)
    cfg = text_data(
        file,
        doc_split="line",
        val_frac=0.25,
        split_seed=seed,
        tokenizer=str(tmp_path / "tokenizer.json"),
        seq_len=8,
        packing=packing,
    )
    return load_corpus(cfg, tmp_path / "cache")


def test_packed_layout_on_hand_made_documents(tmp_path: Path) -> None:
    corpus = layout_corpus(tmp_path, packing=True)
    ids, words = corpus.train.to_numpy()
    # The stream: a b ##z c ##z [SEP] | a ##z b c d e a ##z ##z [SEP] | e ##z [SEP]
    assert ids.tolist() == [
        [2, 5, 6, 10, 7, 10, 3, 5],
        [2, 10, 6, 7, 8, 9, 5, 10],
        [2, 10, 3, 9, 10, 3, 0, 0],
    ]
    # The second and third rows open inside a word: its ##z begins a word after [CLS].
    assert words.tolist() == [
        [1, 1, 1, 0, 1, 0, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0, 1, 1, 1],
    ]
    reference = pack(
        [[5, 6, 10, 7, 10], [5, 10, 6, 7, 8, 9, 5, 10, 10], [9, 10]],
        8,
        [[1, 1, 0, 1, 0], [1, 0, 1, 1, 1, 1, 1, 0, 0], [1, 0]],
    )
    assert ids.tolist() == reference[0].tolist() and words.tolist() == reference[1].tolist()
    assert corpus.val.to_numpy()[0].tolist() == [[2, 6, 5, 3, 0, 0, 0, 0]]
    assert corpus.stats == {
        "train_docs": 3,
        "val_docs": 1,
        "train_tokens": 16,
        "val_tokens": 2,
        "train_sequences": 3,
        "val_sequences": 1,
        "vocab_size": 11,
    }


def test_unpacked_layout_gives_each_document_its_own_rows(tmp_path: Path) -> None:
    corpus = layout_corpus(tmp_path, packing=False)
    ids, words = corpus.train.to_numpy()
    assert ids.tolist() == [
        [2, 5, 6, 10, 7, 10, 3, 0],
        [2, 5, 10, 6, 7, 8, 9, 5],  # a long document continues in a further row
        [2, 10, 10, 3, 0, 0, 0, 0],
        [2, 9, 10, 3, 0, 0, 0, 0],
    ]
    assert words.tolist() == [
        [1, 1, 1, 0, 1, 0, 1, 1],
        [1, 1, 0, 1, 1, 1, 1, 1],
        [1, 1, 0, 1, 1, 1, 1, 1],
        [1, 1, 0, 1, 1, 1, 1, 1],
    ]
    assert corpus.stats["train_sequences"] == 4
    row, starts = corpus.train[1]
    assert row.dtype == torch.int64 and starts.dtype == torch.bool and row.shape == (8,)


# --- existing tokenizers ------------------------------------------------------------------


def bert_like_tokenizer(path: Path, specials: tuple[str, ...] = SPECIAL_TOKENS) -> Path:
    """BERT's numbering: [PAD]=0, [unused1..99], [UNK]=100, [CLS]=101, [SEP]=102,
    [MASK]=103, then words."""
    vocab = {"[PAD]": 0, **{f"[unused{i}]": i for i in range(1, 100)}}
    vocab |= {"[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}
    vocab = {t: i for t, i in vocab.items() if t in specials or t.startswith("[unused")}
    for word in "the farmer milks goat . a baker who lived near pantry , bakes bread".split():
        vocab.setdefault(word, 104 + len([t for t in vocab if not t.startswith("[")]))
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.add_special_tokens([t for t in SPECIAL_TOKENS if t in specials])
    if "[CLS]" in specials and "[SEP]" in specials:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 101), ("[SEP]", 102)]
        )
    tokenizer.save(str(path))
    return path


def test_an_existing_tokenizer_is_renumbered_specials_first(tmp_path: Path) -> None:
    path = bert_like_tokenizer(tmp_path / "bert.json")
    tokenizer = load_tokenizer(path)
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    # Every other token keeps its order after them: [unusedN] moves up by 4, words stay.
    assert [tokenizer.token_to_id(f"[unused{i}]") for i in (1, 2, 99)] == [5, 6, 103]
    assert tokenizer.token_to_id("the") == 104 and tokenizer.token_to_id("bread") == 117
    assert tokenizer.encode("the goat").ids == [2, 104, 107, 3]  # the post-processor too
    file = tmp_path / "docs.txt"
    file.write_text("the farmer milks the goat .\n\na baker who lived near the pantry\n\nzebra")
    corpus = load_corpus(
        text_data(file, tokenizer=str(path), val_frac=0.3, split_seed=1, batch_size=1),
        tmp_path / "cache",
    )
    everything = np.concatenate([corpus.train.stream.ids, corpus.val.stream.ids]).tolist()
    assert 104 in everything and 1 in everything  # "the", and [UNK] for "zebra", renumbered
    assert max(everything) < corpus.vocab_size == 118


def test_a_tokenizer_without_a_special_token_is_refused(tmp_path: Path) -> None:
    path = bert_like_tokenizer(tmp_path / "no-mask.json", specials=SPECIAL_TOKENS[:4])
    cfg = text_data(corpus_file(tmp_path), tokenizer=str(path))
    assert error(cfg, tmp_path / "cache") == (
        f"data.tokenizer={path} has no [MASK] token; dmx needs [PAD], [UNK], [CLS], [SEP], "
        "[MASK] (add them, or set data.tokenizer=null to train one)"
    )


# --- mistakes, each one line naming the fix -------------------------------------------------


def test_a_corpus_smaller_than_one_batch_is_refused(tmp_path: Path) -> None:
    cfg = text_data(corpus_file(tmp_path, 5), val_frac=0.2, split_seed=1, seq_len=64, batch_size=64)
    n = load_corpus(cfg, tmp_path / "cache", require_batch=False).stats["train_sequences"]
    assert error(cfg, tmp_path / "cache") == (
        f"the corpus has {n} training sequences of data.seq_len=64, fewer than one batch of "
        "data.batch_size=64; add more text or lower data.batch_size (or data.seq_len)"
    )


def write_bad_inputs(tmp: Path) -> dict[str, tuple[DataConfig, str]]:
    """Each bad input, and the message it must give."""
    (tmp / "empty.txt").write_text("")
    (tmp / "blank.txt").write_text("\n  \n\n")
    (tmp / "no-txt").mkdir()
    (tmp / "no-txt" / "notes.md").write_text("markdown is not read")
    (tmp / "blank-folder").mkdir()
    (tmp / "blank-folder" / "a.txt").write_text("\n")
    (tmp / "binary.txt").write_bytes(b"text\x00\x01\x02")
    (tmp / "latin1.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    (tmp / "doc.docx").write_bytes(b"PK")
    (tmp / "docs.jsonl").write_text('{"body": "a", "id": 1}\n')
    (tmp / "bad.jsonl").write_text('{"text": "a"}\nnot json\n')
    (tmp / "docs.csv").write_text("id,content\n1,hello\n")
    (tmp / "docs.tsv").write_text("id\tcontent\n1\thello\n")
    (tmp / "one.txt").write_text("a single document")
    hint = FORMATS_HINT
    return {
        "missing": (
            text_data(tmp / "nope.txt"),
            f"data.path={tmp}/nope.txt does not exist; point data.path at {hint}",
        ),
        "empty file": (
            text_data(tmp / "empty.txt"),
            f"data.path={tmp}/empty.txt holds no documents (it is empty or only blank lines); "
            "give it some text",
        ),
        "blank file": (
            text_data(tmp / "blank.txt"),
            f"data.path={tmp}/blank.txt holds no documents (it is empty or only blank lines); "
            "give it some text",
        ),
        "folder without .txt": (
            text_data(tmp / "no-txt"),
            f"data.path={tmp}/no-txt is a folder with no corpus files; put .txt, .jsonl, .csv, "
            f".tsv or .parquet files (or .gz ones) in it, or point data.path at {hint}",
        ),
        "blank folder": (
            text_data(tmp / "blank-folder"),
            f"data.path={tmp}/blank-folder holds no documents (it is empty or only blank "
            "lines); give it some text",
        ),
        "binary": (
            text_data(tmp / "binary.txt"),
            f"{tmp}/binary.txt is not UTF-8 text (a NUL byte at offset 4); convert it to UTF-8 "
            f"or point data.path at {hint}",
        ),
        "not utf-8": (
            text_data(tmp / "latin1.txt"),
            f"{tmp}/latin1.txt is not UTF-8 text (invalid byte at offset 3); convert it to "
            f"UTF-8 or point data.path at {hint}",
        ),
        "unknown extension": (
            text_data(tmp / "doc.docx"),
            f"data.path={tmp}/doc.docx has an unknown extension '.docx'; dmx reads {hint}",
        ),
        "jsonl field": (
            text_data(tmp / "docs.jsonl"),
            f"{tmp}/docs.jsonl line 1 has no field 'text'; set data.text_field to one of: body, id",
        ),
        "jsonl syntax": (
            text_data(tmp / "bad.jsonl"),
            f"{tmp}/bad.jsonl line 2 is not JSON (Expecting value); each line of a .jsonl file "
            "must be one JSON object",
        ),
        "csv column": (
            text_data(tmp / "docs.csv"),
            f"{tmp}/docs.csv has no column 'text'; set data.text_field to one of: id, content",
        ),
        "tsv column": (
            text_data(tmp / "docs.tsv", text_field="body"),
            f"{tmp}/docs.tsv has no column 'body'; set data.text_field to one of: id, content",
        ),
        "no validation document": (
            text_data(tmp / "one.txt", val_frac=0.01),
            f"data.path={tmp}/one.txt: the split leaves no validation document among 1; add "
            "more text or change data.val_frac",
        ),
        "missing tokenizer": (
            text_data(tmp / "one.txt", tokenizer=str(tmp / "tok.json")),
            f"data.tokenizer={tmp}/tok.json does not exist; point it at a tokenizer.json, or "
            "set data.tokenizer=null to train one",
        ),
    }


def test_each_bad_input_is_one_line_that_names_the_fix(tmp_path: Path) -> None:
    cases = write_bad_inputs(tmp_path)
    for name, (cfg, expected) in cases.items():
        assert error(cfg, tmp_path / "cache") == expected, name


def test_parquet_without_the_column_lists_the_columns(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": [1], "body": ["x"]}), tmp_path / "d.parquet")
    assert error(text_data(tmp_path / "d.parquet"), tmp_path / "cache") == (
        f"{tmp_path}/d.parquet has no column 'text'; set data.text_field to one of: id, body"
    )


# --- speed --------------------------------------------------------------------------------


@pytest.mark.slow
def test_preprocessing_rate_on_a_100k_token_corpus(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Prints tokens per second (never asserted: it measures the machine)."""
    file = tmp_path / "big.txt"
    file.write_text("\n\n".join(generate_documents(11, 1100)))
    cfg = text_data(file, vocab_size=2048, seq_len=128, batch_size=32)
    started = time.perf_counter()
    corpus = load_corpus(cfg, tmp_path / "cache")
    built = time.perf_counter() - started
    tokens = corpus.stats["train_tokens"] + corpus.stats["val_tokens"]
    assert tokens >= 100_000
    rate = json.loads((corpus.folder / "meta.json").read_text())["tokens_per_s"]
    started = time.perf_counter()
    load_corpus(cfg, tmp_path / "cache")
    hit = time.perf_counter() - started
    print(
        f"\npreprocessing: {tokens:,} tokens, tokenized at {rate:,.0f} tokens/s, "
        f"{built:.2f} s with tokenizer training; cache hit {hit:.3f} s"
    )


# --- the hub, asked without waiting ---------------------------------------------------------


def _recording_hub(monkeypatch: pytest.MonkeyPatch, cached: bool, reachable: bool) -> list[bool]:
    """datasets.load_dataset that answers from a pretend cache, or from a pretend hub when
    online and reachable; returns whether each call was made in offline mode."""
    datasets = pytest.importorskip("datasets")
    calls: list[bool] = []

    def load_dataset(name: str, config: str | None = None, **kwargs: object) -> str:
        offline = bool(datasets.config.HF_HUB_OFFLINE)
        calls.append(offline)
        if cached or (not offline and reachable):
            return f"{name} rows"
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=0.0: reachable)
    return calls


def test_a_cached_hub_dataset_is_read_offline_without_asking_the_hub(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _recording_hub(monkeypatch, cached=True, reachable=False)
    assert hub.load("someone/cached", split="train") == "someone/cached rows"
    assert calls == [True]
    import datasets

    assert datasets.config.HF_HUB_OFFLINE is False  # restored after the call


def test_an_uncached_dataset_with_no_hub_fails_at_once_without_retries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _recording_hub(monkeypatch, cached=False, reachable=False)
    with pytest.raises(hub.HubUnreachable, match="someone/missing is not in the HuggingFace"):
        hub.load("someone/missing")
    assert calls == [True]  # never online: the library's retries are never reached


def test_an_uncached_dataset_is_downloaded_when_the_hub_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _recording_hub(monkeypatch, cached=False, reachable=True)
    assert hub.load("someone/new", "en") == "someone/new rows"
    assert calls == [True, False]


def test_the_hub_probe_answers_for_a_server_and_not_for_a_closed_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import http.server
    import socket
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # noqa: N802 (the handler's naming)
            self.send_response(404)  # any answer proves the network is there
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(hub, "endpoint", lambda: f"http://127.0.0.1:{server.server_port}")
        assert PROBE(timeout=2.0)
    finally:
        server.shutdown()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(hub, "endpoint", lambda: f"http://127.0.0.1:{port}")
    assert not PROBE(timeout=2.0)


def test_a_folder_of_shards_plain_and_gzipped_is_one_corpus(tmp_path: Path) -> None:
    import gzip

    docs = [f"document {i} about cats and their owners" for i in range(6)]
    shards = tmp_path / "shards"
    shards.mkdir()
    lines = [json.dumps({"text": d}) + "\n" for d in docs]
    (shards / "part-0.jsonl").write_text("".join(lines[:3]))
    with gzip.open(shards / "part-1.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("".join(lines[3:]))
    (shards / "README.md").write_text("not a shard: left out")
    assert documents(text_data(shards)) == docs  # in name order, as one corpus
    table = tmp_path / "table.tsv.gz"
    with gzip.open(table, "wt", encoding="utf-8") as f:
        f.write("id\ttext\n" + "".join(f"{i}\t{d}\n" for i, d in enumerate(docs)))
    assert documents(text_data(table)) == docs  # a .tsv inside the .gz: tab-separated
    # The fingerprint is the text's, so a gzipped copy is the same corpus.
    plain = tmp_path / "plain.txt"
    plain.write_text("\n\n".join(docs))
    with gzip.open(tmp_path / "zipped.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n\n".join(docs))
    assert (
        open_source(text_data(plain)).hash_content()
        == open_source(text_data(tmp_path / "zipped.txt.gz")).hash_content()
    )


def test_shard_folder_mistakes_are_one_line(tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.txt").write_text("one")
    (mixed / "b.jsonl").write_text('{"text": "two"}\n')
    with pytest.raises(UserError) as caught:
        open_source(text_data(mixed))
    assert str(caught.value) == (
        f"data.path={mixed} mixes .jsonl and .txt files; keep one kind per folder (each kind "
        "reads its text its own way), or point data.path at one file"
    )
    broken = tmp_path / "broken.txt.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 this is not deflate data")
    with pytest.raises(UserError) as caught:
        open_source(text_data(broken)).hash_content()
    assert str(caught.value).startswith(f"{broken} is not a readable gzip file (")
    assert str(caught.value).endswith(f"); decompress it, or point data.path at {FORMATS_HINT}")


def test_a_validation_set_of_ones_own_replaces_the_held_out_share(tmp_path: Path) -> None:
    train = tmp_path / "train.txt"
    train.write_text("\n\n".join(f"training document {i} about cats" for i in range(5)))
    val = tmp_path / "val"
    val.mkdir()
    (val / "part-0.jsonl").write_text(
        "".join(json.dumps({"text": f"validation document {i}"}) + "\n" for i in range(2))
    )
    cfg = text_data(train, val_path=str(val))
    split = list(open_source(cfg).split())
    assert [val for _, val in split] == [False] * 5 + [True] * 2  # all of data.path trains
    assert split[-1] == ("validation document 1", True)
    corpus = load_corpus(cfg, tmp_path / "cache", require_batch=False)
    assert (corpus.stats["train_docs"], corpus.stats["val_docs"]) == (5, 2)
    # Another validation set is another corpus: its own cache, never a stale one.
    (val / "part-0.jsonl").write_text(json.dumps({"text": "another one"}) + "\n")
    assert load_corpus(cfg, tmp_path / "cache", require_batch=False).folder != corpus.folder
    missing = text_data(train, val_path=str(tmp_path / "nope"))
    assert error(missing, tmp_path / "cache") == (
        f"data.val_path={tmp_path / 'nope'} does not exist; point it at {FORMATS_HINT}, or "
        "drop it to hold out data.val_frac of data.path"
    )
    with pytest.raises(UserError) as caught:
        DataConfig(source="hf", name="x", val_path=str(val))
    assert str(caught.value) == (
        "data.val_path is for data=text (got data.source=hf); for data=hf the dataset's own "
        "split is data.val_split"
    )


def test_a_hub_dataset_uses_its_own_validation_split(tmp_path: Path, hf_cache: Path) -> None:
    folder = tmp_path / "local"
    folder.mkdir()
    (folder / "train.jsonl").write_text(
        "".join(json.dumps({"text": f"train {i}"}) + "\n" for i in range(4))
    )
    (folder / "validation.jsonl").write_text(
        "".join(json.dumps({"text": f"held {i}"}) + "\n" for i in range(2))
    )
    own = list(open_source(DataConfig(source="hf", name=str(folder))).split())
    assert own == [(f"train {i}", False) for i in range(4)] + [
        (f"held {i}", True) for i in range(2)
    ]
    resplit = DataConfig(source="hf", name=str(folder), val_split="none", val_frac=0.5)
    assert [doc for doc, _ in open_source(resplit).split()] == [f"train {i}" for i in range(4)]
    no_such = DataConfig(source="hf", name=str(folder), val_split="dev")
    with pytest.raises(UserError) as caught:
        open_source(no_such)
    assert str(caught.value).startswith(
        f"data.name={folder} data.val_split=dev: the split could not be loaded ("
    )
    assert str(caught.value).endswith(
        "); name one of the dataset's splits, or data.val_split=none to hold out "
        "data.val_frac of data.split"
    )
