"""A small BERT-style encoder for masked-language modelling, in one readable file.

Pre-LayerNorm blocks (stable without a long warm-up), learned positions, tied input and
output embeddings, and torch's scaled_dot_product_attention, which picks the fastest kernel
for the hardware (flash attention on a GPU when no mask tensor is passed). The MLM head
projects to the vocabulary only at the selected positions: at 15% masking that skips about
85% of the largest matrix multiply in the model. The model knows nothing of devices,
precision or parallelism; Lightning applies those from outside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from dmx.common.fields import from_fields


@dataclass(frozen=True)
class EncoderShape:
    vocab_size: int
    n_layers: int
    d_model: int
    n_heads: int
    d_ff: int
    max_seq_len: int
    dropout: float = 0.1
    attn_dropout: float = 0.0
    # A learned weight in (0, 1) per key and layer (attention=learned_gate).
    gate: bool = False

    @classmethod
    def from_config(cls, model: Any, vocab_size: int, gate: bool = False) -> EncoderShape:
        """The shape a ``model`` config (:class:`dmx.config.ModelConfig`) describes, by field
        name; the vocabulary comes from the tokenizer, the gate from the attention pattern."""
        return from_fields(cls, model, vocab_size=vocab_size, gate=gate)


def cpu_bf16(x: torch.Tensor) -> bool:
    """Whether ``x`` is computed on a CPU under bf16 autocast: the fast path below.

    fp32 is dmx's reference arithmetic (every figure in the README was measured with it)
    and keeps torch's own kernels, bit for bit; on a GPU torch's kernels are already fast.
    """
    return x.device.type == "cpu" and torch.is_autocast_enabled("cpu")


class Dropout(nn.Module):
    """Inverted dropout; on a CPU under bf16 autocast its keep-mask is cut from 64-bit
    random words, four 16-bit draws per word.

    On a CPU, torch's dropout draws one random float per element (``bernoulli_``): under
    bf16 autocast at the benchmark shape that took 14% of the training step, about a third
    of what the matrix multiplies took. A quarter as many 64-bit words do the same job in
    a fifth of the time: each element is dropped with probability round(p * 2^16) / 2^16
    (p = 0.1 becomes 0.100006). The words come from torch's generator, so
    ``torch.manual_seed`` still fixes every mask.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.threshold = -(2**15) + round(p * 2**16)  # keep an int16 draw at or above this

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if not cpu_bf16(x):
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
        words.random_(-(2**63), 2**63 - 1)  # every bit random (the default leaves the sign 0)
        keep = words.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLMOutput(NamedTuple):
    loss_sum: torch.Tensor  # summed cross-entropy over the selected tokens
    # How many of them were predicted exactly; None in training, where nothing reads it and
    # the argmax over (selected x vocabulary) logits cost 3% of a bf16 CPU step.
    correct: torch.Tensor | None
    count: torch.Tensor  # how many were selected
    gate_mean: torch.Tensor | None  # mean learned key weight over real keys and layers
    # Each selected token's cross-entropy, in the order of labels[selected]; only when asked
    # (adaptive masking reads them), as summing them is not bit-identical to reduction="sum".
    token_losses: torch.Tensor | None = None
    token_hits: torch.Tensor | None = None  # bool: the top prediction was the label


class SelfAttention(nn.Module):
    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.n_heads = shape.n_heads
        self.qkv = nn.Linear(shape.d_model, 3 * shape.d_model)
        self.out = nn.Linear(shape.d_model, shape.d_model)
        # Dropout on attention probabilities makes SDPA leave its fused kernels for the
        # plain math path (about 3x slower per attention call on a CPU), so it is off by
        # default; the residual and embedding dropout (``dropout``) stay.
        self.dropout = shape.attn_dropout
        # The learned gate (DynamicViT's form): key j's weight D_j = sigmoid(score(h_j)), and
        # attention softmax(s_ij + log D_j), which scales each key's weight by D_j before
        # renormalising; a token's weight on itself is kept (D = 1 on the diagonal).
        self.gate = nn.Linear(shape.d_model, 1) if shape.gate else None

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        query: torch.Tensor | None = None,
        qkv: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``query`` (one position per row): attend from that position only, over every key;
        the output is then (batch, 1, width). Scoring reads one position of each row.
        ``qkv``: the projections of ``x``, already computed (see :meth:`MaskedLM.logits_at`)."""
        batch, length, width = x.shape
        qkv = self.qkv(x) if qkv is None else qkv
        q, k, v = qkv.view(batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        if query is not None:
            q, length = q[torch.arange(batch, device=x.device), :, query][:, :, None], 1
        weights = None
        if self.gate is not None:
            weights = torch.sigmoid(self.gate(x).squeeze(-1))  # (batch, length): D_j
            attn_mask = self._gate_bias(weights, attn_mask)
        dropout = self.dropout if self.training else 0.0
        if cpu_bf16(x):
            y = _attention_matmuls(q, k, v, attn_mask, dropout)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        return self.out(y.transpose(1, 2).reshape(batch, length, width)), weights

    @staticmethod
    def _gate_bias(weights: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """An additive mask: log D_j off the diagonal, 0 on it, -inf where not allowed."""
        length = weights.shape[1]
        log_d = torch.log(weights.clamp_min(1e-6))[:, None, None, :].expand(-1, 1, length, -1)
        eye = torch.eye(length, dtype=torch.bool, device=weights.device)
        bias = torch.where(eye, torch.zeros_like(log_d), log_d)
        if allowed is not None:
            bias = bias.masked_fill(~(allowed | eye), float("-inf"))
        return bias


def _attention_matmuls(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout: float
) -> torch.Tensor:
    """Attention as two batched matrix multiplies with an fp32 softmax between them.

    Used under bf16 autocast on a CPU, where torch's fused CPU kernel (flash attention) runs
    its bf16 backward about three times slower than these multiplies do (measured at
    sequence 128, head 64: 9 ms per call, forward and backward, against 26 ms); in fp32 the
    two take the same time, so fp32 keeps the fused kernel. The scores and softmax stay in
    fp32, as inside the fused kernel: a bf16 softmax was no faster in the whole step, and
    one of three seeds then ended 0.04 higher. The same function as
    scaled_dot_product_attention: a bool mask allows where True, a float mask is added.
    """
    scores = (q @ k.transpose(-2, -1)).float() * q.shape[-1] ** -0.5
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1).to(v.dtype)
    if dropout:
        weights = F.dropout(weights, dropout)
    return weights @ v


class Block(nn.Module):
    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(shape.d_model)
        self.attn = SelfAttention(shape)
        self.ln2 = nn.LayerNorm(shape.d_model)
        self.ff = nn.Sequential(
            nn.Linear(shape.d_model, shape.d_ff), nn.GELU(), nn.Linear(shape.d_ff, shape.d_model)
        )
        self.drop = Dropout(shape.dropout)

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None,
        query: torch.Tensor | None = None,
        qkv: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attn(self.ln1(x) if qkv is None else x, attn_mask, query, qkv)
        if query is not None:  # the residual stream at the queried position only
            x = x[torch.arange(len(x), device=x.device), query][:, None]
        x = x + self.drop(attended)
        return x + self.drop(self.ff(self.ln2(x))), weights


class MaskedLM(nn.Module):
    """Encoder plus an MLM head whose decoder is the (tied) token embedding."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.shape = shape
        self.tok = nn.Embedding(shape.vocab_size, shape.d_model)
        self.pos = nn.Embedding(shape.max_seq_len, shape.d_model)
        self.drop = Dropout(shape.dropout)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layers))
        self.ln_f = nn.LayerNorm(shape.d_model)
        # BERT's head: a transform, then the tied decoder with its own bias.
        self.head_transform = nn.Sequential(
            nn.Linear(shape.d_model, shape.d_model), nn.GELU(), nn.LayerNorm(shape.d_model)
        )
        self.head_bias = nn.Parameter(torch.zeros(shape.vocab_size))
        # Segment (token type) embeddings exist only once a sentence-pair task asks for them
        # (add_segments): pretraining reads one segment, and creating them here would draw
        # from the generator and change every pretraining result.
        self.segment: nn.Embedding | None = None
        self.apply(self._init_weights)
        # GPT-2's scaled init of residual projections keeps the residual stream's scale flat.
        for name, p in self.named_parameters():
            if name.endswith(("attn.out.weight", "ff.2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * shape.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def add_segments(self) -> None:
        """Segment embeddings for sentence pairs (type 0: ``[CLS] a [SEP]``, type 1:
        ``b [SEP]``), both zero to begin with: the encoder first computes exactly what it
        was pretrained to (one segment, no segment vector), and fine-tuning learns the two
        from there. No draw from any generator."""
        if self.segment is None:
            # from zeros: nn.Embedding(...) would first draw a normal init, moving the
            # generator that the classifier head's initialisation reads next
            zeros = torch.zeros(2, self.shape.d_model, device=self.tok.weight.device)
            self.segment = nn.Embedding.from_pretrained(zeros, freeze=False)

    def encode(
        self,
        input_ids: torch.Tensor,
        padding: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        token_types: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Hidden states (batch, length, d_model), and the mean learned key weight.

        ``padding``: bool, True at real tokens. ``attn_mask``: bool, broadcastable to
        (batch, 1, length, length), True where a query may attend to a key; it already
        includes the padding when given (see :func:`dmx.masking.attention_masks.combine`).
        Without one, padded keys are hidden from every query, and no mask tensor is passed
        at all when nothing is padded, so SDPA may use its fastest kernel. ``token_types``
        (0 or 1 per position) adds the segment embeddings (see :meth:`add_segments`).
        """
        x = self._embed(input_ids, token_types)
        if attn_mask is None and padding is not None and not bool(padding.all()):
            attn_mask = padding[:, None, None, :]
        gate_means = []
        for block in self.blocks:
            x, weights = block(x, attn_mask)
            if weights is not None:
                real = (
                    padding if padding is not None else torch.ones_like(weights, dtype=torch.bool)
                )
                gate_means.append(weights[real].mean())
        gate_mean = torch.stack(gate_means).mean() if gate_means else None
        return self.ln_f(x), gate_mean

    def _embed(self, input_ids: torch.Tensor, token_types: torch.Tensor | None) -> torch.Tensor:
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)
        x = self.tok(input_ids) + self.pos(positions)
        if token_types is not None:
            if self.segment is None:
                raise ValueError("token_types given before add_segments()")
            x = x + self.segment(token_types)
        return self.drop(x)

    def logits_at(self, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits (batch, vocab) at one position of each unpadded row, as
        ``mlm_logits(encode(input_ids)[0], one-hot positions)`` computes them, for less: the
        last block runs its query, residual and feed-forward at that position only (its
        keys and values still see the whole row), then the head there. With two layers that
        is about half the work of encoding every position (pseudo-log-likelihood needs one
        masked copy of a sentence per token, and reads one position of each).

        The first block's projections depend only on a (token, position) pair, and the
        masked copies of a sentence share all but one or a few of theirs: each distinct pair
        is projected once and gathered back."""
        if self.shape.gate:  # the gate's bias is per query row: encode every position
            hidden, _ = self.encode(input_ids)
            selected = torch.zeros_like(input_ids, dtype=torch.bool)
            selected[torch.arange(len(input_ids), device=input_ids.device), positions] = True
            return self.mlm_logits(hidden, selected)
        x = self._embed(input_ids, None)
        first = self.blocks[0]
        length = input_ids.shape[1]
        pairs = input_ids * length + torch.arange(length, device=input_ids.device)
        distinct, where = torch.unique(pairs, return_inverse=True)
        once = self.tok(distinct // length) + self.pos(distinct % length)
        qkv = first.attn.qkv(first.ln1(once))[where]
        last = len(self.blocks) - 1
        x, _ = first(x, None, positions if last == 0 else None, qkv)
        for i in range(1, len(self.blocks)):
            x, _ = self.blocks[i](x, None, positions if i == last else None)
        h = self.head_transform(self.ln_f(x[:, 0]))
        return F.linear(h, self.tok.weight, self.head_bias)

    def mlm_logits(self, hidden: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """Logits (n_selected, vocab) at the selected positions only."""
        h = self.head_transform(hidden[selected])
        return F.linear(h, self.tok.weight, self.head_bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        selected: torch.Tensor,
        padding: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        token_losses: bool = False,
    ) -> MLMOutput:
        """Summed cross-entropy over selected tokens, the number correct, and the count
        (and with ``token_losses``, each selected token's cross-entropy and whether the top
        prediction was right: adaptive masking reads them).

        Sums rather than means, so a caller can average exactly over a whole split
        instead of averaging batch means of different sizes.
        """
        hidden, gate_mean = self.encode(input_ids, padding, attn_mask)
        logits = self.mlm_logits(hidden, selected)
        targets = labels[selected]
        losses = hits = None
        if token_losses:
            losses = F.cross_entropy(logits.float(), targets, reduction="none")
            loss_sum = losses.sum()
            hits = logits.argmax(dim=-1) == targets
        else:
            loss_sum = F.cross_entropy(logits.float(), targets, reduction="sum")
        correct = None if self.training else (logits.argmax(dim=-1) == targets).sum()
        count = targets.new_tensor(targets.numel())
        return MLMOutput(loss_sum, correct, count, gate_mean, losses, hits)

    def compile_blocks(self) -> None:
        """torch.compile each encoder block, in place: parameter names (and so checkpoints)
        stay as they are, and the head and loss, which see a varying number of masked
        positions per batch, stay eager instead of recompiling."""
        for block in self.blocks:
            block.compile()

    def num_parameters(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.pos.weight.numel() if non_embedding else n

    def flops_per_token(self, seq_len: int, mask_rate: float) -> float:
        """Training FLOPs per input token (forward + backward = 3x forward), for MFU later.

        The vocabulary projection counts only at the masked fraction of positions.
        """
        s = self.shape
        per_layer = 2 * (4 * s.d_model**2 + 2 * s.d_model * s.d_ff) + 4 * seq_len * s.d_model
        head = mask_rate * 2 * (s.d_model**2 + s.d_model * s.vocab_size)
        return 3.0 * (s.n_layers * per_layer + head)
