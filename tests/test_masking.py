"""Properties of the keyed masks: rates, the 80/10/10 split, and purity of the key."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmx.masking import EVAL_KEY, IGNORE_INDEX, TokenMasker
from dmx.masking.keyed import keyed_uniform, keyed_uniform_reference

VOCAB, N_SPECIAL, MASK_ID, PAD_ID = 1000, 5, 4, 0


def masker(copies: int | None = 1, seed: int = 0, prob: float = 0.15) -> TokenMasker:
    return TokenMasker(
        seed=seed,
        copies=copies,
        prob=prob,
        mask_token_frac=0.8,
        random_token_frac=0.1,
        mask_token_id=MASK_ID,
        n_special=N_SPECIAL,
        vocab_size=VOCAB,
    )


def ordinary_ids(n: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(N_SPECIAL, VOCAB, (n, length), generator=g)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**40),
    stream=st.integers(0, 5),
    key=st.integers(-1, 10**6),
    index=st.integers(0, 2**40),
    position=st.integers(0, 511),
)
def test_tensor_hash_equals_python_reference(seed, stream, key, index, position):
    got = keyed_uniform(seed, stream, key, torch.tensor([index]), position + 1)[0, position]
    assert got.item() == keyed_uniform_reference(seed, stream, key, index, position)


def test_uniforms_are_uniform():
    u = keyed_uniform(0, 0, 0, torch.arange(20_000), 64).flatten()
    assert 0.0 <= u.min() and u.max() < 1.0
    hist = torch.histc(u, bins=10, min=0, max=1) / u.numel()
    assert torch.all((hist - 0.1).abs() < 0.003)


def test_selection_rate_is_15_percent_on_10k_sequences():
    ids = ordinary_ids(10_000, 128)
    out = masker()(ids, torch.arange(10_000), key=0)
    rate = out.selected.float().mean().item()
    assert abs(rate - 0.15) < 0.005


def test_corruption_split_is_80_10_10():
    ids = ordinary_ids(10_000, 128)
    out = masker()(ids, torch.arange(10_000), key=0)
    sel = out.selected
    became_mask = (out.input_ids[sel] == MASK_ID).float().mean().item()
    unchanged = (out.input_ids[sel] == ids[sel]).float().mean().item()
    became_other = 1 - became_mask - unchanged
    assert abs(became_mask - 0.8) < 0.01
    assert abs(unchanged - 0.1) < 0.01  # plus a 1/995 chance of a random draw equal to itself
    assert abs(became_other - 0.1) < 0.01
    # Random replacements are ordinary tokens, never special ones.
    replaced = out.input_ids[sel & (out.input_ids != MASK_ID)]
    assert replaced.min() >= N_SPECIAL and replaced.max() < VOCAB
    # Nothing outside the selection is touched, and only selected positions carry a label.
    assert torch.equal(out.input_ids[~sel], ids[~sel])
    assert torch.all(out.labels[~sel] == IGNORE_INDEX)
    assert torch.equal(out.labels[sel], ids[sel])


def test_special_and_padding_tokens_are_never_selected():
    ids = ordinary_ids(2_000, 64)
    g = torch.Generator().manual_seed(1)
    specials = torch.randint(0, N_SPECIAL, ids.shape, generator=g)
    make_special = torch.rand(ids.shape, generator=g) < 0.5
    ids = torch.where(make_special, specials, ids)
    ids[:, 48:] = PAD_ID
    out = masker(prob=0.9)(ids, torch.arange(2_000), key=3)
    assert not out.selected[ids < N_SPECIAL].any()
    assert torch.equal(out.input_ids[ids < N_SPECIAL], ids[ids < N_SPECIAL])
    assert out.selected[ids >= N_SPECIAL].float().mean() > 0.85


def masks_for_epochs(m: TokenMasker, epochs: range) -> list[torch.Tensor]:
    ids, index = ordinary_ids(64, 64), torch.arange(64)
    return [m(ids, index, m.key(e)).selected for e in epochs]


def test_static_masks_repeat_with_period_k_and_only_then():
    for k in (1, 2, 3, 5):
        masks = masks_for_epochs(masker(copies=k), range(12))
        for a in range(12):
            for b in range(12):
                same = torch.equal(masks[a], masks[b])
                assert same == (a % k == b % k), (k, a, b)


def test_dynamic_masks_differ_every_epoch():
    masks = masks_for_epochs(masker(copies=None), range(20))
    for a in range(20):
        for b in range(a + 1, 20):
            assert not torch.equal(masks[a], masks[b])


def test_static_with_copies_at_least_epochs_equals_dynamic():
    epochs = range(8)
    assert all(
        torch.equal(s, d)
        for s, d in zip(
            masks_for_epochs(masker(copies=8), epochs),
            masks_for_epochs(masker(None), epochs),
            strict=True,
        )
    )


def test_mask_of_a_sample_ignores_batch_order_and_composition():
    ids = ordinary_ids(100, 32)
    m = masker(copies=None)
    whole = m(ids, torch.arange(100), key=7)
    perm = torch.randperm(100, generator=torch.Generator().manual_seed(5))
    for chunk in perm.split(13):  # other batches, other order, other neighbours
        part = m(ids[chunk], chunk, key=7)
        assert torch.equal(part.selected, whole.selected[chunk])
        assert torch.equal(part.input_ids, whole.input_ids[chunk])


def test_seeds_give_different_masks_and_eval_key_is_not_an_epoch():
    ids, index = ordinary_ids(64, 64), torch.arange(64)
    assert not torch.equal(
        masker(seed=0)(ids, index, 0).selected, masker(seed=1)(ids, index, 0).selected
    )
    m = masker(copies=None)
    eval_mask = m(ids, index, EVAL_KEY).selected
    assert all(not torch.equal(eval_mask, m(ids, index, e).selected) for e in range(10))


def test_masking_works_on_int32_inputs_without_changing_dtype():
    ids = ordinary_ids(8, 16).to(torch.int32)
    out = masker()(ids, torch.arange(8), key=0)
    assert out.input_ids.dtype == torch.int32


def test_strategy_label_follows_the_copies_the_masker_uses():
    assert masker(copies=1).strategy == "static(K=1)"
    assert masker(copies=10).strategy == "static(K=10)"
    assert masker(copies=None).strategy == "dynamic"
