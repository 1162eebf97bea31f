"""Attention masks: the patterns are what their names say, combining them with padding never
empties a softmax row, and the model obeys them (a causal model cannot see the future, a
windowed one cannot see past its window). The learned gate's weights, bias and penalty are
checked against hand computations, since an experiment comparing attention patterns is only
as good as the patterns it actually applied.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dmx.common.choices import ATTENTION_PATTERNS
from dmx.config import AttentionConfig, OptimConfig
from dmx.masking.attention_masks import EVAL_STEP, AttentionPattern, combine, density
from dmx.model import EncoderShape, MaskedLM, MLMOutput, SelfAttention
from dmx.training.mlm import MLMModule

CPU = torch.device("cpu")
VOCAB, N_SPECIAL, PAD_ID, MASK_ID = 64, 5, 0, 4
FIXED = ("causal", "window", "block_sparse", "random_static", "random_dynamic")


def brute_force(pattern: AttentionPattern, length: int) -> torch.Tensor:
    """The pattern's definition, one (query, key) pair at a time."""
    out = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        for j in range(length):
            if pattern.pattern == "causal":
                out[i, j] = j <= i
            elif pattern.pattern == "window":
                out[i, j] = abs(i - j) <= pattern.window // 2
            elif pattern.pattern == "block_sparse":
                same_block = i // pattern.block_size == j // pattern.block_size
                out[i, j] = same_block or i < pattern.n_global or j < pattern.n_global
    return out


def tiny_model(*, n_layers: int = 2, gate: bool = False, seed: int = 0) -> MaskedLM:
    """A deterministic small encoder (no dropout, so train and eval agree)."""
    torch.manual_seed(seed)
    shape = EncoderShape(
        vocab_size=VOCAB,
        n_layers=n_layers,
        d_model=32,
        n_heads=2,
        d_ff=64,
        max_seq_len=64,
        dropout=0.0,
        gate=gate,
    )
    return MaskedLM(shape)


def padded_batch(lengths: list[int], length: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Ordinary ids with a [PAD] tail after each row's ``lengths``; returns ids, padding
    (True at real tokens), labels and selected (every third real token)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(N_SPECIAL, VOCAB, (len(lengths), length), generator=g)
    padding = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    ids[~padding] = PAD_ID
    selected = padding & (torch.arange(length)[None, :] % 3 == 1)
    labels = torch.where(selected, ids, torch.full_like(ids, -100))
    return ids, padding, labels, selected


# ---------------------------------------------------------------------------------------------
# The patterns
# ---------------------------------------------------------------------------------------------


def test_causal_is_exactly_lower_triangular() -> None:
    allowed = AttentionPattern("causal").allowed(37, CPU)
    assert allowed is not None
    assert torch.equal(allowed, torch.ones(37, 37, dtype=torch.bool).tril())


@settings(max_examples=30, deadline=None)
@given(window=st.integers(1, 24), length=st.integers(1, 40))
def test_window_allows_keys_within_half_the_window(window: int, length: int) -> None:
    """Allowed iff |i - j| <= window // 2 (an even window w sees w // 2 either side)."""
    pattern = AttentionPattern("window", window=window)
    assert torch.equal(pattern.allowed(length, CPU), brute_force(pattern, length))


@settings(max_examples=30, deadline=None)
@given(block=st.integers(1, 12), n_global=st.integers(0, 4), length=st.integers(1, 40))
def test_block_sparse_allows_same_block_or_global(block: int, n_global: int, length: int) -> None:
    """Allowed iff both positions are in one block, or either is among the first n_global
    (global tokens see and are seen by everyone)."""
    pattern = AttentionPattern("block_sparse", block_size=block, n_global=n_global)
    assert torch.equal(pattern.allowed(length, CPU), brute_force(pattern, length))


def test_full_and_learned_gate_have_no_pattern_and_unknown_patterns_fail() -> None:
    """None tells SDPA there is nothing to mask; the gate is a weight, not a pattern."""
    assert AttentionPattern("full").allowed(16, CPU) is None
    assert AttentionPattern("learned_gate").allowed(16, CPU) is None
    assert AttentionPattern("learned_gate").learned
    assert [p for p in ATTENTION_PATTERNS if AttentionPattern(p).redrawn] == ["random_dynamic"]
    with pytest.raises(ValueError, match="unknown attention pattern"):
        AttentionPattern("dilated").allowed(16, CPU)


@pytest.mark.parametrize("target", [0.1, 0.5, 0.9])
def test_random_static_density_and_fixed_over_steps(target: float) -> None:
    """Off the diagonal each pair is allowed w.p. ``density``; the diagonal always is, so
    the share of all pairs is density + (1 - density) / length. Same at every step."""
    length = 128
    pattern = AttentionPattern("random_static", seed=3, density=target)
    allowed = pattern.allowed(length, CPU)
    assert allowed is not None
    eye = torch.eye(length, dtype=torch.bool)
    assert allowed[eye].all()
    assert allowed[~eye].float().mean().item() == pytest.approx(target, abs=0.03)
    overall = target + (1 - target) / length
    assert allowed.float().mean().item() == pytest.approx(overall, abs=0.03)
    for step in (1, 7, 1_000, EVAL_STEP):
        assert torch.equal(pattern.allowed(length, CPU, step), allowed)


def test_random_dynamic_is_redrawn_every_step_keyed_by_seed_and_step() -> None:
    """A fresh pattern per step, a pure function of (seed, step): the same step gives the
    same pattern (in another process, a resumed run), another seed another pattern."""
    length = 64
    pattern = AttentionPattern("random_dynamic", seed=5, density=0.3)
    steps = [pattern.allowed(length, CPU, s) for s in range(8)]
    for a in range(8):
        for b in range(a + 1, 8):
            assert not torch.equal(steps[a], steps[b])
    assert torch.equal(pattern.allowed(length, CPU, 3), steps[3])
    twin = AttentionPattern("random_dynamic", seed=5, density=0.3)
    assert torch.equal(twin.allowed(length, CPU, 3), steps[3])
    other = AttentionPattern("random_dynamic", seed=6, density=0.3)
    assert not torch.equal(other.allowed(length, CPU, 3), steps[3])
    eye = torch.eye(length, dtype=torch.bool)
    for allowed in steps:
        assert allowed[eye].all()
        assert allowed[~eye].float().mean().item() == pytest.approx(0.3, abs=0.03)
    # The validation pattern is one fixed draw, none of the training steps'.
    evaluation = pattern.allowed(length, CPU, EVAL_STEP)
    assert torch.equal(pattern.allowed(length, CPU, EVAL_STEP), evaluation)
    assert all(not torch.equal(evaluation, s) for s in steps)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_validation_uses_eval_step_and_training_the_global_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """random_dynamic is scored under one reserved draw, the same at every validation,
    while a training step draws the pattern of its global step."""
    module = MLMModule(
        tiny_model(), OptimConfig(), AttentionConfig(pattern="random_dynamic", density=0.5)
    )
    steps: list[int] = []
    original = module.forward_batch

    def spy(batch: dict[str, torch.Tensor], step: int) -> MLMOutput:
        steps.append(step)
        return original(batch, step)

    monkeypatch.setattr(module, "forward_batch", spy)
    ids, padding, labels, selected = padded_batch([20, 14], 20)
    batch = {"input_ids": ids, "labels": labels, "selected": selected, "attention_mask": padding}
    module.eval()
    module.validation_step(batch, 0)
    module.train()
    module.training_step(batch, 0)
    assert steps == [EVAL_STEP, 0]  # global_step is 0 before any optimiser step
    assert module.val_count.compute().item() == selected.sum().item()


# ---------------------------------------------------------------------------------------------
# combine and density
# ---------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(ATTENTION_PATTERNS),
    length=st.integers(1, 40),
    data=st.data(),
    window=st.integers(1, 8),
    block=st.integers(1, 8),
    n_global=st.integers(0, 2),
    target=st.floats(0.01, 1.0),
)
def test_combine_never_empties_a_row_and_hides_padded_keys(
    name: str,
    length: int,
    data: st.DataObject,
    window: int,
    block: int,
    n_global: int,
    target: float,
) -> None:
    """Whatever the pattern and the padding tails (a packed row has at least its [CLS]):
    every query sees at least one key, real queries never see padded keys, and real pairs
    are allowed exactly where the pattern (or the diagonal) allows them."""
    real_lengths = data.draw(st.lists(st.integers(1, length), min_size=1, max_size=3))
    padding = torch.arange(length)[None, :] < torch.tensor(real_lengths)[:, None]
    pattern = AttentionPattern(name, 1, window, block, n_global, target)
    allowed = pattern.allowed(length, CPU, step=data.draw(st.integers(-1, 50)))
    mask = combine(allowed, padding)

    no_padding = bool(padding.all())
    if allowed is None and no_padding:
        assert mask is None  # nothing to mask: SDPA keeps its fastest kernel
        return
    assert mask is not None and mask.dtype == torch.bool
    full = mask.expand(len(real_lengths), 1, length, length)[:, 0]
    assert full.any(dim=-1).all(), "a query row is fully masked"
    real_query_padded_key = padding[:, :, None] & ~padding[:, None, :]
    assert not full[real_query_padded_key].any()
    real_pairs = padding[:, :, None] & padding[:, None, :]
    if allowed is None:
        expected = torch.ones(length, length, dtype=torch.bool)
    else:
        expected = allowed | torch.eye(length, dtype=torch.bool)
    assert torch.equal(full[real_pairs], expected.expand_as(full)[real_pairs])


def test_full_attention_masks_only_padding_and_nothing_without_it() -> None:
    """No padding (or padding that is all real): None. Padding: the (batch, 1, 1, length)
    key mask, so a padded query still sees the real tokens."""
    assert combine(None, None) is None
    assert combine(None, torch.ones(3, 9, dtype=torch.bool)) is None
    padding = torch.tensor([[True, True, True, False], [True, True, False, False]])
    mask = combine(None, padding)
    assert mask is not None
    assert mask.shape == (2, 1, 1, 4)
    assert torch.equal(mask, padding[:, None, None, :])


def test_pattern_without_padding_is_the_pattern_plus_the_diagonal() -> None:
    allowed = torch.tensor([[False, True], [False, False]])
    mask = combine(allowed, None)
    assert mask is not None and mask.shape == (1, 1, 2, 2)
    assert mask[0, 0].tolist() == [[True, True], [False, True]]


def test_density_is_the_share_of_allowed_real_pairs() -> None:
    """Two rows of length 4, the second with one pad: 16 + 9 = 25 real pairs. Causal allows
    10 + 6 of them; a window of 2 (|i - j| <= 1) allows 10 + 7; no mask allows all."""
    padding = torch.tensor([[True] * 4, [True, True, True, False]])
    causal = combine(AttentionPattern("causal").allowed(4, CPU), padding)
    assert density(causal, padding).item() == pytest.approx(16 / 25)
    window = combine(AttentionPattern("window", window=2).allowed(4, CPU), padding)
    assert density(window, padding).item() == pytest.approx(17 / 25)
    assert density(None, padding).item() == 1.0
    assert density(combine(None, padding), padding).item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# The model under a mask
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ATTENTION_PATTERNS)
def test_model_output_is_finite_with_padding_under_every_pattern(name: str) -> None:
    """Padded rows (one nearly all padding) under every pattern: no NaN, no inf, in the
    hidden states, the loss, or the gradients."""
    model = tiny_model(gate=name == "learned_gate")
    pattern = AttentionPattern(name, seed=2, window=4, block_size=4, n_global=1, density=0.2)
    ids, padding, labels, selected = padded_batch([24, 9, 2], 24)
    mask = combine(pattern.allowed(24, CPU, step=3), padding)
    hidden, gate_mean = model.encode(ids, padding, mask)
    assert torch.isfinite(hidden).all()
    out = model(ids, labels, selected, padding, mask)
    assert torch.isfinite(out.loss_sum)
    assert out.count.item() == selected.sum().item()
    out.loss_sum.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert (gate_mean is not None) == (name == "learned_gate")


def test_causal_model_cannot_see_later_tokens() -> None:
    """Changing token t leaves every hidden state before t unchanged (through 2 layers),
    and changes t and the positions after it."""
    model = tiny_model(n_layers=2).eval()
    length, t = 24, 11
    mask = combine(AttentionPattern("causal").allowed(length, CPU), None)
    ids, *_ = padded_batch([length], length)
    changed = ids.clone()
    changed[0, t] = N_SPECIAL + (int(ids[0, t]) - N_SPECIAL + 1) % (VOCAB - N_SPECIAL)
    with torch.no_grad():
        before, _ = model.encode(ids, None, mask)
        after, _ = model.encode(changed, None, mask)
    diff = (before - after).abs().amax(dim=-1)[0]
    assert diff[:t].max().item() < 1e-6
    assert diff[t:].min().item() > 1e-4


def test_window_model_cannot_see_beyond_half_the_window() -> None:
    """One layer, window 6: a token more than 3 positions away has no influence at a
    position; the tokens within 3 positions do influence it."""
    model = tiny_model(n_layers=1).eval()
    length, t, half = 24, 12, 3
    mask = combine(AttentionPattern("window", window=2 * half).allowed(length, CPU), None)
    ids, *_ = padded_batch([length], length)
    changed = ids.clone()
    changed[0, t] = N_SPECIAL + (int(ids[0, t]) - N_SPECIAL + 1) % (VOCAB - N_SPECIAL)
    with torch.no_grad():
        before, _ = model.encode(ids, None, mask)
        after, _ = model.encode(changed, None, mask)
    diff = (before - after).abs().amax(dim=-1)[0]
    near = (torch.arange(length) - t).abs() <= half
    assert diff[~near].max().item() < 1e-6
    assert diff[near].min().item() > 1e-4


# ---------------------------------------------------------------------------------------------
# The learned gate
# ---------------------------------------------------------------------------------------------


def gated_model() -> MaskedLM:
    """A gated model whose gate scores vary visibly from token to token (the default
    init puts every weight near 0.5, which would hide a wrong average)."""
    model = tiny_model(n_layers=2, gate=True)
    torch.manual_seed(1)
    for block in model.blocks:
        torch.nn.init.normal_(block.attn.gate.weight, std=0.3)
        torch.nn.init.constant_(block.attn.gate.bias, 0.4)
    return model


def gate_weights(model: MaskedLM, *args: torch.Tensor | None) -> tuple[list[torch.Tensor], ...]:
    """encode's outputs, with every layer's returned gate weights captured on the way."""
    captured: list[torch.Tensor] = []
    hooks = [
        block.attn.register_forward_hook(lambda _m, _i, out: captured.append(out[1]))
        for block in model.blocks
    ]
    try:
        hidden, gate_mean = model.encode(*args)
    finally:
        for hook in hooks:
            hook.remove()
    return captured, hidden, gate_mean


def test_gate_weights_lie_strictly_between_0_and_1_and_the_mean_skips_padding() -> None:
    model = gated_model()
    ids, padding, *_ = padded_batch([20, 12, 5], 20)
    weights, hidden, gate_mean = gate_weights(model, ids, padding)
    assert len(weights) == 2 and all(w.shape == (3, 20) for w in weights)
    for w in weights:
        assert (w > 0).all() and (w < 1).all()
        assert w.std().item() > 0.05  # they vary, so the averages below can differ
    assert torch.isfinite(hidden).all()
    assert gate_mean is not None and 0 < gate_mean.item() < 1
    real_mean = torch.stack([w[padding].mean() for w in weights]).mean()
    all_mean = torch.stack([w.mean() for w in weights]).mean()
    assert gate_mean.item() == pytest.approx(real_mean.item(), abs=1e-6)
    assert abs(all_mean.item() - real_mean.item()) > 1e-3  # padding would have moved it


def test_gate_bias_is_log_weight_off_the_diagonal_zero_on_it_and_minus_inf_if_forbidden() -> None:
    """softmax(s_ij + log D_j) scales key j by D_j; a token keeps its own weight (0 on the
    diagonal), even where the allowed mask would forbid the diagonal; forbidden pairs get
    -inf."""
    weights = torch.tensor([[0.5, 0.25, 0.8], [0.1, 0.9, 1e-9]])
    allowed = torch.tensor(
        [[True, False, True], [True, True, True], [False, True, False]]
    )  # forbids (0, 1), (2, 0), and the diagonal at (2, 2)
    bias = SelfAttention._gate_bias(weights, allowed)
    assert bias.shape == (2, 1, 3, 3)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                if i == j:
                    expected = 0.0
                elif not allowed[i, j]:
                    expected = float("-inf")
                else:
                    expected = torch.log(weights[b, j].clamp_min(1e-6)).item()
                assert bias[b, 0, i, j].item() == pytest.approx(expected), (b, i, j)
    # No pattern: only the log weights and the zero diagonal, nothing forbidden.
    free = SelfAttention._gate_bias(weights, None)
    assert torch.isfinite(free).all()
    assert free[1, 0, 0, 2].item() == pytest.approx(torch.log(torch.tensor(1e-6)).item())


def test_gate_with_padding_hides_padded_keys_and_stays_finite() -> None:
    """With a (batch, 1, 1, length) padding mask the bias is -inf at padded keys for real
    queries, and a real token's output ignores whatever the padded positions hold."""
    model = gated_model().eval()
    ids, padding, *_ = padded_batch([16, 10], 16)
    other = ids.clone()
    other[1, 10:] = MASK_ID  # different content where row 1 is padded
    with torch.no_grad():
        hidden, _ = model.encode(ids, padding)
        hidden_other, _ = model.encode(other, padding)
    assert torch.isfinite(hidden).all()
    real = padding[1]
    assert torch.allclose(hidden[1, real], hidden_other[1, real], atol=1e-6)
    weights = torch.full((1, 4), 0.5)
    bias = SelfAttention._gate_bias(weights, torch.tensor([[[[True, True, True, False]]]]))
    assert torch.isinf(bias[0, 0, :3, 3]).all() and bias[0, 0, 3, 3].item() == 0.0


def gate_batch() -> dict[str, torch.Tensor]:
    ids, padding, labels, selected = padded_batch([20, 15, 8], 20, seed=4)
    return {"input_ids": ids, "labels": labels, "selected": selected, "attention_mask": padding}


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_gate_penalty_adds_penalty_times_squared_gap_to_the_loss() -> None:
    """training_step's loss is the mean cross-entropy plus gate_penalty * (mean gate -
    density)^2, measured here for penalties 0, 1 and 2.5 on one model and one batch."""
    model = gated_model()
    batch = gate_batch()
    target = 0.2
    losses = {}
    for penalty in (0.0, 1.0, 2.5):
        config = AttentionConfig(pattern="learned_gate", density=target, gate_penalty=penalty)
        module = MLMModule(model, OptimConfig(), config)
        losses[penalty] = module.training_step(batch, 0).item()
        assert module.realised_attention_density() is not None
    out = model(batch["input_ids"], batch["labels"], batch["selected"], batch["attention_mask"])
    assert out.gate_mean is not None
    gap_squared = (out.gate_mean.item() - target) ** 2
    assert gap_squared > 0.01  # the gate starts far from the target: the test has teeth
    assert losses[0.0] == pytest.approx(out.loss_sum.item() / out.count.item(), rel=1e-5)
    assert losses[1.0] - losses[0.0] == pytest.approx(gap_squared, rel=1e-4)
    assert losses[2.5] - losses[0.0] == pytest.approx(2.5 * gap_squared, rel=1e-4)
    assert module.realised_attention_density() == pytest.approx(out.gate_mean.item(), rel=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_gate_penalty_pulls_the_mean_gate_towards_the_density_target() -> None:
    """A few plain gradient steps on training_step's loss, gate parameters only, with a
    strong penalty: the mean gate moves from 0.46 most of the way to the 0.2 target."""
    model = gated_model()
    batch = gate_batch()
    config = AttentionConfig(pattern="learned_gate", density=0.2, gate_penalty=50.0)
    module = MLMModule(model, OptimConfig(), config)
    gate_params = [p for block in model.blocks for p in block.attn.gate.parameters()]
    optimizer = torch.optim.SGD(gate_params, lr=0.2)

    def mean_gate() -> float:
        with torch.no_grad():
            _, gate_mean = model.encode(batch["input_ids"], batch["attention_mask"])
        assert gate_mean is not None
        return gate_mean.item()

    start = mean_gate()
    for _ in range(10):
        optimizer.zero_grad()
        module.training_step(batch, 0).backward()
        optimizer.step()
    end = mean_gate()
    assert start == pytest.approx(0.46, abs=0.02)
    assert end == pytest.approx(0.2, abs=0.04)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_training_records_the_realised_density_of_a_fixed_pattern() -> None:
    """For a fixed pattern the module reports density() of the mask it applied."""
    module = MLMModule(tiny_model(), OptimConfig(), AttentionConfig(pattern="causal"))
    batch = gate_batch()
    module.training_step(batch, 0)
    padding = batch["attention_mask"]
    mask = combine(AttentionPattern("causal").allowed(20, CPU), padding)
    expected = density(mask, padding).item()
    # Causal over real pairs: rows of 20, 15 and 8 real tokens -> sum n(n+1)/2 / sum n^2.
    assert expected == pytest.approx((210 + 120 + 36) / (400 + 225 + 64))
    assert module.realised_attention_density() == pytest.approx(expected)
