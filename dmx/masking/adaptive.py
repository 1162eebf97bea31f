"""Adaptive masking: a selection rate per token id that follows the model during training.

Uniform masking spends most of its budget on tokens the model already predicts well
("the", "."). Two rules move each id's rate, up for ids the model still gets wrong and down
for ids it has learned:

``weighting=loss`` (dmx's rule), from the cross-entropy of the selected tokens:

* every training step adds each selected token's loss to its id's window sums;
* every ``every`` steps, each id seen in the window gets the target weight
  ``(its mean loss / the window's mean loss) ^ power``, and its weight moves ``smoothing``
  of the way there (an exponential moving average, so one noisy window moves it little);
  ids not seen keep their weight;
* the weights are clipped to ``[lo, hi]`` and renormalised to a mean of 1 over the training
  tokens (dmx.masking.weights), so the expected rate stays ``mask.prob`` (or the schedule's
  rate): token ``v`` is selected with probability ``rate x weight[v]``.

``weighting=amlm`` (AMLM, Edman and Fraser, BabyLM 2025, as its released ``train_mask.py``),
from whether the model's top prediction at each selected token was right:

* every ``every`` steps, each id's accuracy over the window is ``(correct + 0.5) /
  (seen + 1)`` (an id not seen counts as 50%), its weight ``w`` (in rate units, starting at
  ``prob``) moves ``smoothing`` of the way to ``prob x (1 - accuracy)``, is floored at
  ``floor`` and rescaled so its mean over the *vocabulary* is ``prob``; the window resets;
* the masker normalises the weights within each sequence (TokenMasker): token ``j`` is
  selected with probability ``rate x n x w(x_j) / sum of w`` over the sequence's ``n``
  ordinary tokens, so every sequence's expected count is the rate's.

The table is training state, not configuration: it is in every checkpoint (through the
DataModule's state_dict), so a resumed run continues with the same table and the same
window, and the draws stay keyed (the table moves the thresholds, never the uniforms).
Under data parallelism the window sums are summed across processes before each update, so
every process holds the same table. ``history`` keeps a summary of the table after every
update, for the report's plot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dmx.common.shares import Transform
from dmx.masking.weights import normalise, weighted_mean, weighted_quantiles

RULES = ("loss", "amlm")  # the weightings whose table moves in training
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# Ids are split into bands of equal token mass by frequency (the ids that make up the most
# frequent quarter of the training tokens, the next quarter, ...), to plot how rates moved
# for frequent and rare ids.
N_BANDS = 4


class AdaptiveRates:
    @classmethod
    def from_config(cls, mask: Any, freq: torch.Tensor) -> AdaptiveRates:
        """The table a ``mask`` config (:class:`dmx.config.MaskConfig`) asks for, over the
        training split's token counts ``freq``."""
        return cls(
            freq,
            mask.prob,
            mask.adapt_every,
            mask.adapt_smoothing,
            mask.adapt_power,
            mask.weight_min,
            mask.weight_max,
            rule=mask.weighting,
            floor=mask.amlm_floor,
        )

    def __init__(
        self,
        freq: torch.Tensor,
        prob: float,
        every: int,
        smoothing: float,
        power: float,
        lo: float,
        hi: float,
        rule: str = "loss",
        floor: float = 0.005,
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
        self.freq = freq.to(torch.float64)
        self.prob, self.every, self.smoothing, self.power = prob, every, smoothing, power
        self.lo, self.hi, self.rule, self.floor = lo, hi, rule, floor
        vocab = len(freq)
        self.weights = normalise(torch.ones(vocab), self.freq, lo, hi)
        self.loss_sum = torch.zeros(vocab, dtype=torch.float64)
        self.correct = torch.zeros(vocab, dtype=torch.float64)
        self.count = torch.zeros(vocab, dtype=torch.float64)
        self.steps_in_window = 0
        self.updates = 0
        self.history: list[dict[str, Any]] = []
        self.bands = _frequency_bands(self.freq, N_BANDS)

    def to(self, device: torch.device) -> AdaptiveRates:
        """Keep the table and the window on the device the batches are masked on."""
        for name in ("weights", "loss_sum", "correct", "count"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def observe(self, ids: torch.Tensor, losses: torch.Tensor, hits: torch.Tensor) -> None:
        """Add one step's selected tokens to the window: their ids, cross-entropies and
        whether the model's top prediction was right."""
        if self.loss_sum.device != ids.device:
            self.to(ids.device)
        self.loss_sum.index_add_(0, ids, losses.detach().to(torch.float64))
        self.correct.index_add_(0, ids, hits.detach().to(torch.float64))
        self.count.index_add_(0, ids, torch.ones_like(losses, dtype=torch.float64))
        self.steps_in_window += 1

    def due(self) -> bool:
        return self.steps_in_window >= self.every

    def update(
        self, step: int, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> dict[str, Any]:
        """Move the weights by the rule and start a new window; ``reduce`` sums a tensor
        across processes. Returns the table's summary."""
        window = torch.stack([self.loss_sum, self.correct, self.count])
        if reduce is not None:
            window = reduce(window)
        if self.rule == "amlm":
            self.weights = self._amlm(window[1], window[2])
        else:
            self.weights = self._loss(window[0], window[2])
        for sums in (self.loss_sum, self.correct, self.count):
            sums.zero_()
        self.steps_in_window = 0
        self.updates += 1
        summary = self.summary()
        self.history.append({"step": step, **summary, "bands": self.band_rates()})
        return summary

    def _loss(self, loss_sum: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """dmx's rule: towards each seen id's relative mean loss, clipped, mean 1."""
        seen = count > 0
        if not bool(seen.any()):
            return self.weights
        mean_loss = loss_sum[seen].sum() / count[seen].sum()
        relative = torch.where(seen, loss_sum / count.clamp_min(1) / mean_loss, 1.0)
        target = relative.clamp_min(0).pow(self.power).to(self.weights.dtype)
        moved = self.weights + self.smoothing * (target - self.weights)
        weights = torch.where(seen, moved, self.weights)
        return normalise(weights, self.freq.to(weights.device), self.lo, self.hi)

    def _amlm(self, correct: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        """AMLM's rule, in rate units (``prob x weights``), on every id of the vocabulary;
        the weights stay relative (a vocabulary mean of 1): the masker rescales them per
        sequence anyway."""
        accuracy = (correct + 0.5) / (count + 1)
        target = self.prob * (1 - accuracy)
        current = self.prob * self.weights.to(torch.float64)
        moved = (current + self.smoothing * (target - current)).clamp_min(self.floor)
        return (moved / moved.mean()).to(self.weights.dtype)

    def rates(self) -> torch.Tensor:
        """Each id's selection probability at the configured rate. For AMLM, whose weights
        are normalised per sequence, the rate in a sequence of the corpus's average mix."""
        weights = self.weights
        if self.rule == "amlm":
            weights = weights / weighted_mean(weights, self.freq.to(weights.device))
        return (self.prob * weights).clamp(max=1.0)

    def summary(self) -> dict[str, Any]:
        """The spread of the per-id rates over the training tokens: quantiles and std."""
        rates = self.rates().cpu().to(torch.float64)
        freq = self.freq.cpu()
        mean = float((rates * freq).sum() / freq.sum())
        std = float(((rates - mean) ** 2 * freq).sum().div(freq.sum()).sqrt())
        q = weighted_quantiles(rates, freq, QUANTILES)
        out = {"adaptive_rate_mean": mean, "adaptive_rate_std": std}
        for quantile, value in zip(QUANTILES, q, strict=True):
            out[f"adaptive_rate_p{round(100 * quantile):02d}"] = value
        out["adaptive_updates"] = self.updates
        return out

    def band_rates(self) -> list[float]:
        """The mean rate of each frequency band (most frequent first), token-weighted."""
        rates = self.rates().cpu().to(torch.float64)
        freq = self.freq.cpu()
        out = []
        for band in self.bands:
            f = freq[band]
            out.append(float((rates[band] * f).sum() / f.sum().clamp_min(1e-12)))
        return out

    def record(self) -> dict[str, Any]:
        """What adaptive_rates.json holds: the settings, the frequency bands, and the table's
        summary after every update."""
        freq = self.freq.cpu()
        return {
            "rule": self.rule,
            "prob": self.prob,
            "every": self.every,
            "smoothing": self.smoothing,
            "power": self.power,
            "weight_min": self.lo,
            "weight_max": self.hi,
            "floor": self.floor,
            "bands": [
                {"ids": len(band), "token_share": float(freq[band].sum() / freq.sum())}
                for band in self.bands
            ],
            "history": self.history,
        }

    def state_dict(self, gather: Transform | None = None) -> dict[str, Any]:
        """The table and the window so far; under data parallelism ``gather`` stacks every
        process's window (dmx.common.shares): the table is the same in all of them."""
        keep = gather or (lambda t: t)
        return {
            "weights": self.weights.cpu(),
            "loss_sum": keep(self.loss_sum.cpu()),
            "correct": keep(self.correct.cpu()),
            "count": keep(self.count.cpu()),
            "steps_in_window": self.steps_in_window,
            "updates": self.updates,
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any], own: Transform | None = None) -> None:
        """The saved table and window; ``own`` takes this process's share of a gathered
        window."""
        take = own or (lambda t: t)
        device = self.weights.device
        self.weights = state["weights"].to(device)
        self.loss_sum = take(state["loss_sum"]).to(device)
        self.correct = take(state["correct"]).to(device)
        self.count = take(state["count"]).to(device)
        self.steps_in_window = int(state["steps_in_window"])
        self.updates = int(state["updates"])
        self.history = list(state["history"])


def _frequency_bands(freq: torch.Tensor, n: int) -> list[torch.Tensor]:
    """Ids split into ``n`` bands of about equal token mass, most frequent first."""
    order = torch.argsort(freq, descending=True, stable=True)
    order = order[freq[order] > 0]
    mass = torch.cumsum(freq[order], 0) / freq.sum().clamp_min(1e-12)
    band_of = (mass * n).ceil().clamp(1, n).to(torch.int64) - 1
    return [order[band_of == b] for b in range(n)]
