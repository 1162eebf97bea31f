"""The embedded corpus pipeline: cache, packing, tokenizer, and masks that ignore the loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dmx.config import DataConfig, MaskConfig
from dmx.data.datamodule import EpochKeyedSampler, MLMDataModule
from dmx.data.embedded import load_or_build, pack, word_starts
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
    from dmx.data import corpus as generator

    corpus = load_or_build(small_data(), tmp_path)
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
    assert corpus.train_words.shape == corpus.train.shape
    assert (corpus.train_words[:, :2] == 1).all()
    assert 0 < (corpus.train_words == 0).mean() < 0.5


def test_corpus_is_built_once_then_reused(tmp_path: Path) -> None:
    cfg = small_data()
    first = load_or_build(cfg, tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    second = load_or_build(cfg, tmp_path)
    assert (first.train == second.train).all() and (first.val == second.val).all()
    assert first.tokenizer.get_vocab() == second.tokenizer.get_vocab()
    assert first.stats["train_docs"] == 32 and first.stats["val_docs"] == 8
    # Every special token has its fixed id, and no ordinary token takes one.
    assert [first.tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == list(range(N_SPECIAL))
    assert first.train.shape[1] == 32 and (first.train[:, 0] == CLS_ID).all()


def test_a_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    cfg = small_data()
    built = load_or_build(cfg, tmp_path)
    folder = next(tmp_path.iterdir())
    (folder / "train.npy").write_bytes(b"not an array")
    assert (load_or_build(cfg, tmp_path).train == built.train).all()


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
    from dmx.data import corpus
    from dmx.data.tokenizer import train_tokenizer

    docs = corpus.generate_documents(0, 300)
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
