"""Each process's share of a running sum, through a data-parallel checkpoint.

Under data parallelism every process keeps its own running sums (the training loss of the
epoch so far, the mask counts, an adaptive rule's window) and they are summed across
processes only when read. A checkpoint is written by rank 0 alone, so each process's sums
are gathered into it, stacked in rank order, and on resume every process takes its own
back: the sums then add up in the order an uninterrupted run adds them, to the bit. A run
resumed with another number of processes gives rank 0 the total and the others zero: the
same sums, up to the order of a float addition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Transform = Callable[[torch.Tensor], torch.Tensor]


def _world(trainer: Any) -> tuple[int, int]:
    if trainer is None:
        return 0, 1
    return trainer.global_rank, trainer.world_size


def gather(trainer: Any) -> Transform | None:
    """Every process's value of a tensor, stacked by rank on the CPU; every process must
    call it at the same point. None in one process, where nothing needs gathering."""
    if _world(trainer)[1] <= 1:
        return None

    def stacked(t: torch.Tensor) -> torch.Tensor:
        device = trainer.strategy.root_device
        return trainer.strategy.all_gather(t.to(device)).cpu()

    return stacked


def own(trainer: Any, saved_world: int) -> Transform:
    """This process's share of a tensor saved by ``saved_world`` processes (stacked by
    :func:`gather` when more than one)."""
    rank, world = _world(trainer)

    def share(saved: torch.Tensor) -> torch.Tensor:
        if saved_world == world:
            return saved[rank] if world > 1 else saved
        total = saved.sum(0) if saved_world > 1 else saved
        return total if rank == 0 else torch.zeros_like(total)

    return share


__all__ = ["Transform", "gather", "own"]
