"""The embedded corpus pipeline: cache, packing, tokenizer, and masks that ignore the loader.

Other corpora (files, datasets, layouts, errors) are tested in test_corpora.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from dmx.config import DataConfig, MaskConfig
from dmx.data.corpus import load_corpus
from dmx.data.datamodule import EpochKeyedSampler, MLMDataModule
from dmx.data.sequences import pack, word_starts
from dmx.data.tokenize_corpus import word_starts_array
from dmx.data.tokenizer import CLS_ID, MASK_ID, N_SPECIAL, PAD_ID, SEP_ID, SPECIAL_TOKENS


def small_data(**overrides: object) -> DataConfig:
    settings = dict(n_docs=40, val_docs=8, vocab_size=200, seq_len=32, batch_size=8)
    settings.update(overrides)
    return DataConfig(**settings)  # type: ignore[arg-type]


def test_pack_puts_cls_first_sep_between_documents_and_pads_only_the_tail() -> None:
    out, words = pack([[10, 11, 12], [20, 21]], seq_len=4, starts=[[1, 0, 1], [1, 0]])
    assert out.tolist() == [[CLS_ID, 10, 11, 12], [CLS_ID, SEP_ID, 20, 21], [CLS_ID, SEP_ID, 0, 0]]
    # Word starts travel with their tokens; a special token is a word of its own.
    assert words.tolist() == [[1, 1, 0, 1], [1, 1, 1, 0], [1, 1, 1, 1]]


def test_a_word_cut_by_a_sequence_boundary_starts_again_after_cls() -> None:
    _, words = pack([[10, 11, 12, 13]], seq_len=3, starts=[[1, 0, 0, 0]])
    assert words.tolist() == [[1, 1, 0], [1, 1, 0], [1, 1, 1]]


def test_word_starts_follow_the_tokenizers_words(tmp_path: Path) -> None:
    from dmx.data import embedded as generator

    corpus = load_corpus(small_data(), tmp_path)
    doc = generator.generate_documents(0, 1)[0]
    encoding = corpus.tokenizer.encode(doc, add_special_tokens=False)
    words: list[str] = []
    for start, token in zip(word_starts(encoding.word_ids), encoding.tokens, strict=True):
        if start:
            words.append(token)
        else:
            words[-1] += token
    assert words == doc.split()
    assert len(encoding.tokens) > len(words)  # some words are split into pieces
    train, train_words = corpus.train.to_numpy()
    assert train_words.shape == train.shape
    assert (train_words[:, :2] == 1).all()
    assert 0 < (train_words == 0).mean() < 0.5


def test_word_starts_are_computed_as_the_reference_says() -> None:
    for word_ids in ([], [0], [0, 0, 1, 1, 1, 2], [None, 0, 0, None, None, 1, 1], [3, 3, 4]):
        assert word_starts_array(word_ids).tolist() == word_starts(word_ids)


def test_corpus_is_built_once_then_reused(tmp_path: Path) -> None:
    cfg = small_data()
    first = load_corpus(cfg, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    second = load_corpus(cfg, tmp_path)
    first_train, _ = first.train.to_numpy()
    for a, b in zip(
        (*first.train.to_numpy(), *first.val.to_numpy()),
        (*second.train.to_numpy(), *second.val.to_numpy()),
        strict=True,
    ):
        assert (a == b).all()
    assert first.tokenizer.get_vocab() == second.tokenizer.get_vocab()
    assert first.stats["train_docs"] == 32 and first.stats["val_docs"] == 8
    # Every special token has its fixed id, and no ordinary token takes one.
    assert [first.tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(N_SPECIAL))
    assert first_train.shape[1] == 32 and (first_train[:, 0] == CLS_ID).all()
    # Another sequence length reuses the same token cache: no second folder.
    assert load_corpus(small_data(seq_len=16), tmp_path).folder == next(tmp_path.iterdir())


def test_a_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    cfg = small_data()
    built, _ = load_corpus(cfg, tmp_path).train.to_numpy()
    folder = next(tmp_path.iterdir())
    (folder / "train.ids.npy").write_bytes(b"not an array")
    rebuilt, _ = load_corpus(cfg, tmp_path).train.to_numpy()
    assert (rebuilt == built).all()


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.int32).tobytes()).hexdigest()[:16]


# Recorded from dmx.data.embedded.build before the memory-mapped cache replaced it: the
# embedded corpus' rows must never change, or published results (make demo) would.
TINY_ROWS = {
    0: (
        [2, 55, 64, 7, 22, 41, 62, 109, 187, 6, 33, 18, 27, 193, 38, 34]
        + [231, 58, 31, 25, 27, 54, 9, 244, 6, 151, 64, 40, 36, 20, 228, 97],
        "11111001111100011001000011111001",
    ),
    137: (
        [2, 9, 240, 11, 125, 17, 39, 22, 35, 12, 99, 26, 6, 21, 48, 173]
        + [5, 11, 60, 114, 245, 221, 10, 63, 193, 38, 6, 7, 91, 80, 76, 48],
        "11001001000011011100101000111001",
    ),
    285: ([2, 11, 116, 42, 25, 153, 19, 6, 3] + [0] * 23, "11100001111111111111111111111111"),
}
RECORDED = {
    # (seq_len, n_docs, val_docs, vocab): sha of train, train words, val, val words
    (32, 60, 10, 256): (
        "15bed163c0dfae17",
        "f7b908c22ce1308c",
        "7427a4ddd5edfd62",
        "401cff9cf065b6b0",
    ),
    (64, 450, 100, 2048): (
        "51bbde058986ede8",
        "8acd28723c1325e5",
        "3ef6a7a67569034c",
        "49477ca3026109d8",
    ),
    (128, 450, 100, 2048): (
        "e9b7519afb02f504",
        "c009e6d3183ace2f",
        "239c7ff595551a32",
        "95e763e547dcfde8",
    ),
}


@pytest.mark.slow
def test_the_embedded_corpus_rows_are_the_recorded_ones(tmp_path: Path) -> None:
    for (seq_len, n_docs, val_docs, vocab), expected in RECORDED.items():
        cfg = DataConfig(seq_len=seq_len, n_docs=n_docs, val_docs=val_docs, vocab_size=vocab)
        corpus = load_corpus(cfg, tmp_path)
        arrays = (*corpus.train.to_numpy(), *corpus.val.to_numpy())
        assert tuple(_sha(a) for a in arrays) == expected, seq_len
        if seq_len == 32:
            for i, (ids, words) in TINY_ROWS.items():
                assert arrays[0][i].tolist() == ids
                assert "".join(map(str, arrays[1][i].tolist())) == words
            assert (len(corpus.train), len(corpus.val)) == (286, 58)
    assert len(list(tmp_path.iterdir())) == 2  # seq_len 64 and 128 share one token cache


def test_sampler_order_is_a_function_of_seed_and_epoch() -> None:
    def order(seed: int, epoch: int) -> list[int]:
        sampler = EpochKeyedSampler(50, seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0, 3) == order(0, 3)
    assert sorted(order(0, 3)) == list(range(50))
    assert order(0, 3) != order(0, 4) and order(0, 3) != order(1, 3)


def masks_by_index(module: MLMDataModule, epoch: int | None) -> dict[int, torch.Tensor]:
    out = {}
    for batch in module.train_dataloader():
        masked = module.mask_batch(batch, epoch=epoch)
        for i, idx in enumerate(batch["index"].tolist()):
            out[idx] = torch.stack([masked["input_ids"][i], masked["labels"][i]])
    return out


@pytest.mark.slow
@pytest.mark.parametrize("copies", [1, None])
def test_masks_are_identical_with_0_and_2_workers_and_any_batch_size(
    tmp_path: Path, copies: int | None
) -> None:
    mask = MaskConfig(copies=copies)
    modules = []
    for workers, batch_size in ((0, 8), (2, 8), (0, 5)):
        module = MLMDataModule(
            small_data(batch_size=batch_size), mask, 0, num_workers=workers, cache_dir=tmp_path
        )
        module.setup()
        module.train_dataloader().sampler.set_epoch(2)
        modules.append(module)
    reference = masks_by_index(modules[0], epoch=2)
    for module in modules[1:]:
        other = masks_by_index(module, epoch=2)
        assert other.keys() == reference.keys()
        assert all(torch.equal(other[i], reference[i]) for i in reference)


def test_eval_mask_is_the_same_for_every_strategy_and_seed(tmp_path: Path) -> None:
    batches = []
    for mask, seed in ((MaskConfig(copies=1), 0), (MaskConfig(copies=None), 7)):
        module = MLMDataModule(small_data(), mask, seed, cache_dir=tmp_path)
        module.setup()
        batch = next(iter(module.val_dataloader()))
        batches.append(module.mask_batch(batch, epoch=None))
    assert torch.equal(batches[0]["input_ids"], batches[1]["input_ids"])
    assert torch.equal(batches[0]["labels"], batches[1]["labels"])
    assert not batches[0]["selected"][batches[0]["attention_mask"] == 0].any()
    assert (batches[0]["input_ids"][~batches[0]["attention_mask"]] == PAD_ID).all()


def test_tokenizer_training_is_deterministic_and_round_trips() -> None:
    from dmx.data import embedded
    from dmx.data.tokenizer import train_tokenizer

    docs = embedded.generate_documents(0, 300)
    first, second = train_tokenizer(docs, 600), train_tokenizer(docs, 600)
    assert first.get_vocab() == second.get_vocab()
    # The pieces of each word join back into the word (word_ids: for whole-word masking).
    encoding = first.encode(docs[0], add_special_tokens=False)
    words: dict[int, str] = {}
    for word_id, token in zip(encoding.word_ids, encoding.tokens, strict=True):
        words[word_id] = words.get(word_id, "") + token
    assert [words[i] for i in sorted(words)] == docs[0].split()


def test_eval_mask_split_comes_from_the_config(tmp_path: Path) -> None:
    """data.eval_mask_token_frac=1: every selected validation token becomes [MASK]."""
    module = MLMDataModule(
        small_data(eval_mask_token_frac=1.0, eval_random_token_frac=0.0),
        MaskConfig(),
        0,
        cache_dir=tmp_path,
    )
    module.setup()
    batch = module.mask_batch(next(iter(module.val_dataloader())), epoch=None)
    selected = batch["selected"]
    assert selected.sum() > 10
    assert (batch["input_ids"][selected] == MASK_ID).all()
