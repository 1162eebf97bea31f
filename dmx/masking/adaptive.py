"""Adaptive masking: a selection rate per token id that follows the model's losses.

Uniform masking spends most of its budget on tokens the model already predicts well
("the", "."). AMLM (BabyLM 2025) moves each id's rate during training, up for ids the model
still gets wrong and down for ids it has learned, keeping the mean rate fixed. dmx does the
same from the cross-entropy of the selected tokens:

* every training step adds each selected token's loss to its id's window sums;
* every ``every`` steps, each id seen in the window gets the target weight
  ``(its mean loss / the window's mean loss) ^ power``, and its weight moves ``smoothing``
  of the way there (an exponential moving average, so one noisy window moves it little);
  ids not seen keep their weight;
* the weights are clipped to ``[lo, hi]`` and renormalised to a mean of 1 over the training
  tokens (dmx.masking.weights), so the expected rate stays ``mask.prob`` (or the schedule's
  rate): token ``v`` is selected with probability ``rate x weight[v]``.

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

from dmx.masking.weights import normalise, weighted_quantiles

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
    ) -> None:
        self.freq = freq.to(torch.float64)
        self.prob, self.every, self.smoothing, self.power = prob, every, smoothing, power
        self.lo, self.hi = lo, hi
        vocab = len(freq)
        self.weights = normalise(torch.ones(vocab), self.freq, lo, hi)
        self.loss_sum = torch.zeros(vocab, dtype=torch.float64)
        self.count = torch.zeros(vocab, dtype=torch.float64)
        self.steps_in_window = 0
        self.updates = 0
        self.history: list[dict[str, Any]] = []
        self.bands = _frequency_bands(self.freq, N_BANDS)

    def to(self, device: torch.device) -> AdaptiveRates:
        """Keep the table and the window on the device the batches are masked on."""
        for name in ("weights", "loss_sum", "count"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def observe(self, ids: torch.Tensor, losses: torch.Tensor) -> None:
        """Add one step's selected tokens (their ids and cross-entropies) to the window."""
        if self.loss_sum.device != ids.device:
            self.to(ids.device)
        self.loss_sum.index_add_(0, ids, losses.detach().to(torch.float64))
        self.count.index_add_(0, ids, torch.ones_like(losses, dtype=torch.float64))
        self.steps_in_window += 1

    def due(self) -> bool:
        return self.steps_in_window >= self.every

    def update(
        self, step: int, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> dict[str, Any]:
        """Move the weights towards the window's relative losses and start a new window;
        ``reduce`` sums a tensor across processes. Returns the table's summary."""
        window = torch.stack([self.loss_sum, self.count])
        if reduce is not None:
            window = reduce(window)
        loss_sum, count = window[0], window[1]
        seen = count > 0
        if bool(seen.any()):
            mean_loss = loss_sum[seen].sum() / count[seen].sum()
            relative = torch.where(seen, loss_sum / count.clamp_min(1) / mean_loss, 1.0)
            target = relative.clamp_min(0).pow(self.power).to(self.weights.dtype)
            moved = self.weights + self.smoothing * (target - self.weights)
            weights = torch.where(seen, moved, self.weights)
            self.weights = normalise(weights, self.freq.to(weights.device), self.lo, self.hi)
        self.loss_sum.zero_()
        self.count.zero_()
        self.steps_in_window = 0
        self.updates += 1
        summary = self.summary()
        self.history.append({"step": step, **summary, "bands": self.band_rates()})
        return summary

    def rates(self) -> torch.Tensor:
        """Each id's selection probability at the configured rate."""
        return (self.prob * self.weights).clamp(max=1.0)

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
            "prob": self.prob,
            "every": self.every,
            "smoothing": self.smoothing,
            "power": self.power,
            "weight_min": self.lo,
            "weight_max": self.hi,
            "bands": [
                {"ids": len(band), "token_share": float(freq[band].sum() / freq.sum())}
                for band in self.bands
            ],
            "history": self.history,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "weights": self.weights.cpu(),
            "loss_sum": self.loss_sum.cpu(),
            "count": self.count.cpu(),
            "steps_in_window": self.steps_in_window,
            "updates": self.updates,
            "history": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.weights.device
        self.weights = state["weights"].to(device)
        self.loss_sum = state["loss_sum"].to(device)
        self.count = state["count"].to(device)
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
