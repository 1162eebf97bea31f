"""Mask-rate schedules: the rate at a point of training, from 0 (first step) to 1 (last).

A schedule moves the threshold that the keyed uniforms are compared with, never the
uniforms themselves, so masks nest (a token selected at rate r is selected at every
higher rate) and a static schedule stays static: the same sequence at the same rate
always gets the same mask. Ankner et al. (EACL 2024) decrease the rate linearly from 30%
to 15% over BERT pretraining.
"""

from __future__ import annotations

import math

from dmx.common.choices import MASK_SCHEDULES


def rate_at(schedule: str, prob: float, start: float, end: float, progress: float) -> float:
    """The mask rate at ``progress`` in [0, 1]: ``prob`` when constant; else from ``start``
    to ``end``, in a straight line, along half a cosine, or in one step at the halfway
    point."""
    t = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return prob
    if schedule == "linear":
        return start + (end - start) * t
    if schedule == "cosine":
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "step":
        return start if t < 0.5 else end
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(MASK_SCHEDULES)}")
