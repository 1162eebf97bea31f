"""Per-token-id selection weights: masks that prefer some tokens, at the same overall rate.

A token with id ``v`` is selected with probability ``rate x w[v]`` (capped at 1), so a
weight table changes *which* tokens are masked, never how many on average: the weights are
normalised so their mean over the training tokens (each id weighted by its count in the
training split) is 1, and the expected rate stays ``mask.prob``. They are clipped to
``[weight_min, weight_max]`` so no id is never masked or masked nearly always; with
``weight_max x rate <= 1`` the cap at 1 never binds and the expected rate is exact.

Corpus-weighted masking fixes the table from corpus statistics (dmx.data.corpus_weights);
loss-weighted masking and AMLM move it during training (dmx.masking.adaptive). InforMask's
table (dmx.data.informask) holds its own rates, used as they are: not clipped, and not
normalised beyond what its sample-and-score step gives (a mean near the rate).
The draws themselves stay keyed: the weights move a threshold, never the uniforms.
"""

from __future__ import annotations

import torch


def weighted_mean(weights: torch.Tensor, freq: torch.Tensor) -> torch.Tensor:
    """The mean weight of a training token: ids weighted by how often they occur."""
    return (weights * freq).sum() / freq.sum().clamp_min(1e-12)


def normalise(
    weights: torch.Tensor, freq: torch.Tensor, lo: float, hi: float, iters: int = 100
) -> torch.Tensor:
    """Scale ``weights`` to a frequency-weighted mean of 1 within ``[lo, hi]``.

    Scaling and clipping alternate until the mean is 1 (to 1e-6): clipping moves the mean,
    and rescaling moves the clipped ones back inside. With ``lo <= 1 <= hi`` all ones is a
    solution, so it converges; ids that never occur (``freq`` 0) are only clipped.
    """
    w = weights.to(torch.float64).clamp(min=0.0)
    f = freq.to(torch.float64)
    for _ in range(iters):
        mean = weighted_mean(w, f)
        if mean <= 0:
            w = torch.ones_like(w)
            continue
        w = (w / mean).clamp(lo, hi)
        if abs(float(weighted_mean(w, f)) - 1.0) < 1e-6:
            break
    return w.to(torch.float32)


def expected_rate(weights: torch.Tensor, freq: torch.Tensor, rate: float) -> float:
    """The rate the weights give on the training tokens, with the cap at 1 applied."""
    p = (rate * weights.to(torch.float64)).clamp(max=1.0)
    return float(weighted_mean(p, freq.to(torch.float64)))


def weighted_quantiles(
    values: torch.Tensor, freq: torch.Tensor, qs: tuple[float, ...]
) -> list[float]:
    """Quantiles of ``values`` over the training tokens (each id counted ``freq`` times)."""
    order = torch.argsort(values)
    v, f = values[order].to(torch.float64), freq[order].to(torch.float64)
    cumulative = torch.cumsum(f, 0)
    total = float(cumulative[-1]) if len(cumulative) else 0.0
    if total <= 0:
        return [float("nan")] * len(qs)
    at = torch.searchsorted(cumulative, torch.tensor([q * total for q in qs], dtype=f.dtype))
    return [float(v[min(int(i), len(v) - 1)]) for i in at]
