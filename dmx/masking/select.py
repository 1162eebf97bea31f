"""Which positions a mask selects, for every unit: tokens, whole words, spans of words.

Each function takes the keyed uniforms of a batch and returns a bool (batch, length) tensor,
computed for the whole batch at once, on the batch's device. Rows never interact, so a
sample's selection depends only on its own ids, word starts and uniforms: never on the
batch it shares, its order or the loader's workers.

Two ways to count:

* ``bernoulli``: each unit is selected with probability ``rate`` (HuggingFace's collator);
* ``fixed``: units are taken in the order of their uniforms until a budget of tokens is
  reached (BERT's preprocessing, cramming), so every sequence has the same rate.

Both *nest*: a unit selected at rate r is selected at every higher rate, because the
uniforms do not change with the rate; a rate schedule then moves one threshold over the
same draws, and a static mask stays static.
"""

from __future__ import annotations

import math

import torch


def word_first(word_starts: torch.Tensor) -> torch.Tensor:
    """For every position, the position of the first token of its word (batch, length)."""
    positions = torch.arange(word_starts.shape[1], device=word_starts.device)
    marked = torch.where(word_starts.bool(), positions, torch.zeros_like(positions))
    return torch.cummax(marked, dim=1).values


def by_coin(u_unit: torch.Tensor, eligible: torch.Tensor, rate: float) -> torch.Tensor:
    """Each unit (token or word, whose tokens share one uniform) is selected w.p. ``rate``."""
    return (u_unit < rate) & eligible


def by_budget(
    u_unit: torch.Tensor, first: torch.Tensor, eligible: torch.Tensor, budget: torch.Tensor
) -> torch.Tensor:
    """Units in the order of their uniforms, as many whole units as fit in ``budget`` tokens.

    ``first`` names each token's unit (its first position); for single tokens it is the
    position itself, and exactly ``budget`` tokens are taken. A word that does not fit is
    where the prefix ends, so the count falls short of the budget by less than a word.
    """
    length = u_unit.shape[1]
    # One integer key per token: its unit's uniform (24 exact bits), then the unit itself,
    # so a unit's tokens sort next to each other and two units never tie.
    # Special tokens keep their unit's place but count nothing (a special token inside a
    # word neither blocks the word nor uses budget); they are never selected.
    key = (u_unit * (1 << 24)).to(torch.int64) * length + first
    order = torch.argsort(key, dim=1, stable=True)
    taken = torch.cumsum(eligible.gather(1, order).to(torch.int64), dim=1)
    cumulative = torch.empty_like(taken).scatter_(1, order, taken)  # back to positions
    # A unit costs the count at its last token: the most its tokens reach.
    unit_total = torch.zeros_like(cumulative).scatter_reduce(
        1, first, cumulative, reduce="amax", include_self=False
    )
    return eligible & (unit_total.gather(1, first) <= budget[:, None])


def by_budget_skipping(
    u_unit: torch.Tensor,
    first: torch.Tensor,
    eligible: torch.Tensor,
    budget: torch.Tensor,
    max_rounds: int = 32,
) -> torch.Tensor:
    """Units in the order of their uniforms, each taken if it still fits in ``budget``: a
    unit too big for what is left is skipped and smaller ones after it are still taken
    (AI21's PMI-Masking collator), so multi-word units do not leave the rate short.

    The same greedy scan, a whole batch at once, in rounds: each round takes the longest
    prefix (in uniform order) of the untaken units that are no bigger than the row's
    remaining budget. A unit that blocks a prefix is bigger than what then remains, so it
    is filtered out of every later round, exactly as the scan skips it; the rounds end when
    no row takes anything (a few rounds: the remaining budget only shrinks).
    """
    ones = eligible.to(torch.int64)
    size = torch.zeros_like(ones).scatter_add_(1, first, ones).gather(1, first)
    selected = torch.zeros_like(eligible)
    remaining = budget.clone()
    for _ in range(max_rounds):
        candidates = eligible & ~selected & (size <= remaining[:, None])
        if not bool(candidates.any()):
            break
        taken = by_budget(u_unit, first, candidates, remaining)
        if not bool(taken.any()):
            break
        selected |= taken
        remaining = remaining - taken.sum(dim=1)
    return selected


def fixed_budget(eligible: torch.Tensor, rate: float, rounding: str = "round") -> torch.Tensor:
    """round (or ceil) of ``rate`` times each row's number of eligible tokens."""
    scaled = eligible.sum(dim=1).to(torch.float64) * rate
    # 1e-9 keeps 0.15 * 20 = 3.0000000000000004 from becoming 4 under ceil.
    budget = torch.ceil(scaled - 1e-9) if rounding == "ceil" else torch.round(scaled)
    return budget.to(torch.int64)


def geometric_lengths(u: torch.Tensor, p: float, max_len: int) -> torch.Tensor:
    """Span lengths in words: geometric(p) truncated to [1, max_len], renormalised
    (SpanBERT: p=0.2, max 10, mean about 3.8 words), by inverting its distribution."""
    probs = torch.tensor([p * (1 - p) ** k for k in range(max_len)], dtype=torch.float64)
    cdf = (torch.cumsum(probs, 0) / probs.sum()).to(device=u.device, dtype=torch.float32)
    cdf[-1] = 1.0
    # How many cdf steps u has passed (searchsorted, right=True): ten comparisons per draw,
    # much faster on a CPU than torch.searchsorted for a batch of small draws.
    passed = (u.unsqueeze(-1) >= cdf).sum(dim=-1)
    return passed.clamp_max(max_len - 1) + 1


def mean_geometric_length(p: float, max_len: int) -> float:
    weights = [p * (1 - p) ** k for k in range(max_len)]
    return sum((k + 1) * w for k, w in enumerate(weights)) / math.fsum(weights)


def by_spans(
    word_starts: torch.Tensor,
    eligible: torch.Tensor,
    budget: torch.Tensor,
    u_anchor: torch.Tensor,
    u_length: torch.Tensor,
    p: float,
    max_len: int,
) -> torch.Tensor:
    """SpanBERT's span masking, for a whole batch at once.

    Candidate span ``j`` of a row starts at a random eligible token (``u_anchor[:, j]``;
    never [CLS], [SEP] or padding, as SpanBERT anchors inside the text), snapped back to
    the start of its word, and covers ``geometric(p)`` words from there.
    Spans are added in order until the row's ``budget`` of tokens is reached, the last one
    cut at the budget; a candidate whose anchor is already masked is skipped, and
    overlapping spans merge, as in SpanBERT's ``PairWithSpanMaskingScheme``. Special
    tokens count as words but are never selected. Candidates are processed one at a time
    for all rows together, and the loop stops as soon as every row has its budget. A row
    may use at most ``candidate_limit(budget)`` candidates, a number of its own, so a row
    whose anchors keep landing on masked tokens ends the same way whatever batch it is in.
    """
    batch, length = word_starts.shape
    word_id = torch.cumsum(word_starts.to(torch.int64), dim=1) - 1
    # The k-th eligible position is the first where the running count of eligible ones
    # reaches k + 1.
    eligible_count = torch.cumsum(eligible.to(torch.int64), dim=1)
    n_eligible = eligible_count[:, -1]
    lengths = geometric_lengths(u_length, p, max_len)
    selected = torch.zeros_like(eligible)
    count = torch.zeros(batch, dtype=torch.int64, device=eligible.device)
    limit = candidate_limit(budget)
    for j in range(u_anchor.shape[1]):
        remaining = torch.where(limit > j, budget - count, torch.zeros_like(count))
        if not bool((remaining > 0).any()):
            break
        k = (u_anchor[:, j] * n_eligible).to(torch.int64).clamp(min=0)
        k = torch.minimum(k, (n_eligible - 1).clamp(min=0))[:, None]
        anchor = torch.searchsorted(eligible_count, k + 1).clamp(max=length - 1)
        active = (remaining > 0) & ~selected.gather(1, anchor).squeeze(1)
        start = word_id.gather(1, anchor)
        span = (word_id >= start) & (word_id < start + lengths[:, j : j + 1])
        new = span & eligible & ~selected & active[:, None]
        keep = new & (torch.cumsum(new.to(torch.int64), dim=1) <= remaining[:, None])
        selected |= keep
        count += keep.sum(dim=1)
    return selected


def candidate_limit(budget: torch.Tensor) -> torch.Tensor:
    """How many candidate spans a row may draw: every candidate whose anchor is not masked
    yet adds at least one token, so four per budgeted token is far more than a row of text
    uses."""
    return 4 * budget + 16


def run_first(selected: torch.Tensor) -> torch.Tensor:
    """For every position, the first position of the run of selected tokens it is in: a
    merged span's tokens share one corruption decision (SpanBERT's 80/10/10 per span)."""
    before = torch.nn.functional.pad(selected[:, :-1], (1, 0), value=False)
    return word_first(selected & ~before)
