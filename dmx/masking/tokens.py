"""BERT's token corruption, keyed: which tokens are selected and what they become.

Of the non-special tokens, a fraction ``prob`` is selected (a per-token Bernoulli draw, as
HuggingFace's DataCollatorForLanguageModeling does); of those, ``mask_token_frac`` become
[MASK], ``random_token_frac`` a random ordinary token, and the rest stay as they are. The
loss is taken on the selected positions only.

Every draw comes from :func:`dmx.masking.keyed.keyed_uniform`, so the mask of sample ``i``
is a pure function of (seed, key, i). The key is where strategies differ:
``copies=None`` (dynamic) uses key = epoch, ``copies=K`` (static) uses key = epoch mod K.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dmx.masking.keyed import keyed_uniform

IGNORE_INDEX = -100  # the label of positions that carry no loss (torch's cross_entropy default)

# Separate streams, so the selection, the corruption choice and the random token are
# independent draws about the same token.
_SELECT, _CORRUPT, _RANDOM_TOKEN = 0, 1, 2

# A key no training epoch ever uses: the fixed evaluation mask.
EVAL_KEY = -1


@dataclass(frozen=True)
class MaskedBatch:
    input_ids: torch.Tensor  # corrupted ids, what the model reads
    labels: torch.Tensor  # original ids at selected positions, IGNORE_INDEX elsewhere
    selected: torch.Tensor  # bool, the positions that carry loss


@dataclass(frozen=True)
class TokenMasker:
    """Masks a batch; holds only settings, never state.

    Special tokens must occupy ids ``[0, n_special)``: they are never selected, and random
    replacements are drawn from ``[n_special, vocab_size)``.
    """

    seed: int
    copies: int | None
    prob: float
    mask_token_frac: float
    random_token_frac: float
    mask_token_id: int
    n_special: int
    vocab_size: int

    @property
    def strategy(self) -> str:
        """The label runs, reports and W&B groups carry: derived from how keys are drawn,
        so it cannot disagree with what the masker does."""
        return "dynamic" if self.copies is None else f"static(K={self.copies})"

    def key(self, epoch: int) -> int:
        """The mask key of an epoch: the whole static-to-dynamic continuum in one line."""
        return epoch if self.copies is None else epoch % self.copies

    def __call__(self, input_ids: torch.Tensor, index: torch.Tensor, key: int) -> MaskedBatch:
        """Mask ``input_ids`` (batch, length) of the samples ``index`` (batch,) under ``key``."""
        length = input_ids.shape[1]
        u_select = keyed_uniform(self.seed, _SELECT, key, index, length)
        selected = (u_select < self.prob) & (input_ids >= self.n_special)

        u_corrupt = keyed_uniform(self.seed, _CORRUPT, key, index, length)
        to_mask = selected & (u_corrupt < self.mask_token_frac)
        to_random = (
            selected
            & (u_corrupt >= self.mask_token_frac)
            & (u_corrupt < self.mask_token_frac + self.random_token_frac)
        )
        u_token = keyed_uniform(self.seed, _RANDOM_TOKEN, key, index, length)
        n_ordinary = self.vocab_size - self.n_special
        random_ids = self.n_special + (u_token * n_ordinary).to(torch.int64).clamp_max(
            n_ordinary - 1
        )

        corrupted = torch.where(to_mask, torch.full_like(input_ids, self.mask_token_id), input_ids)
        corrupted = torch.where(to_random, random_ids.to(input_ids.dtype), corrupted)
        labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
        return MaskedBatch(input_ids=corrupted, labels=labels, selected=selected)
