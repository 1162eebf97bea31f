"""What the masks actually did, measured on the batches (never copied from the config).

Counts are kept as tensors on the batch's device and read once, at the end of an epoch,
so measuring costs no synchronisation per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dmx.common.shares import Transform
from dmx.masking.token_masks import MaskedBatch


class MaskStats:
    """Running totals of the training masks: realised rate, corruption split, diversity."""

    def __init__(self) -> None:
        self.totals: dict[str, torch.Tensor] = {}
        self.target_rate_sum = 0.0
        self.batches = 0
        self.seconds = 0.0  # wall time spent masking (host time: on a GPU, launch time)
        # Per training sequence, how many different masks it has been given so far.
        self.distinct: torch.Tensor | None = None
        self._keys_before: set[int] = set()  # keys of the finished epochs
        self._epoch: int | None = None
        self._epoch_keys: set[int] = set()

    def update(self, masked: MaskedBatch, target_rate: float, seconds: float) -> None:
        counts = {
            "eligible": masked.eligible.sum(),
            "selected": masked.selected.sum(),
            "to_mask": masked.to_mask.sum(),
            "to_random": masked.to_random.sum(),
        }
        if masked.multiword is not None:  # PMI units: selected tokens in multi-word units
            counts["multiword"] = (masked.selected & masked.multiword).sum()
        for name, value in counts.items():
            self.totals[name] = self.totals.get(name, 0) + value
        self.target_rate_sum += target_rate
        self.batches += 1
        self.seconds += seconds

    def seen(self, index: torch.Tensor, epoch: int, key: int, n_sequences: int) -> None:
        """Record that the sequences ``index`` were masked under ``key`` in ``epoch``.

        Every epoch before the current one covered every sequence, so a sequence gets a new
        mask exactly when ``key`` was not the key of an earlier epoch: the count comes from
        the keys, no mask is stored.
        """
        if self.distinct is None:
            self.distinct = torch.zeros(n_sequences, dtype=torch.int32)
        if epoch != self._epoch:
            if self._epoch is not None:
                self._keys_before |= self._epoch_keys
            self._epoch, self._epoch_keys = epoch, set()
        self._epoch_keys.add(key)
        if key not in self._keys_before:
            self.distinct[index.cpu()] += 1

    def summary(
        self, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> dict[str, float]:
        """The realised figures. Under data parallelism every process masks its own share
        of the rows, so ``reduce`` (a sum across processes, which every process must call)
        turns the counts and each row's distinct masks into the whole run's; the masking
        time stays this process's, next to its own training time."""
        if not self.batches:
            return {}
        names = sorted(self.totals)
        counts = torch.stack([torch.as_tensor(self.totals[k]).double().cpu() for k in names])
        distinct = self.distinct.double() if self.distinct is not None else None
        if reduce is not None:
            counts = reduce(counts)
            if distinct is not None:
                distinct = reduce(distinct)
        t = dict(zip(names, counts.tolist(), strict=True))
        selected = max(t["selected"], 1.0)
        out = {
            "mask_rate": t["selected"] / max(t["eligible"], 1.0),
            "mask_rate_target": self.target_rate_sum / self.batches,
            "mask_frac_mask": t["to_mask"] / selected,
            "mask_frac_random": t["to_random"] / selected,
            "mask_frac_kept": (t["selected"] - t["to_mask"] - t["to_random"]) / selected,
            "mask_time_s": self.seconds,
        }
        if "multiword" in t:
            out["mask_multiword_share"] = t["multiword"] / selected
        if distinct is not None:
            out["mask_diversity"] = float(distinct.mean())
        return out

    def state_dict(self, gather: Transform | None = None) -> dict[str, Any]:
        """The running totals, so a resumed run's diagnostics equal an uninterrupted one's;
        under data parallelism ``gather`` stacks every process's counts (dmx.common.shares)."""
        keep = gather or (lambda t: t)
        distinct = self.distinct
        return {
            "totals": {k: keep(torch.as_tensor(v).cpu()) for k, v in self.totals.items()},
            "target_rate_sum": self.target_rate_sum,
            "batches": self.batches,
            "seconds": self.seconds,
            "distinct": keep(distinct) if distinct is not None else None,
            "keys_before": sorted(self._keys_before),
            "epoch": self._epoch,
            "epoch_keys": sorted(self._epoch_keys),
        }

    def load_state_dict(self, state: dict[str, Any], own: Transform | None = None) -> None:
        """The saved totals; ``own`` takes this process's share of gathered counts."""
        take = own or (lambda t: t)
        self.totals = {k: take(v) for k, v in state["totals"].items()}
        distinct = state["distinct"]
        self.distinct = take(distinct) if distinct is not None else None
        self.target_rate_sum = state["target_rate_sum"]
        self.batches = state["batches"]
        self.seconds = state["seconds"]
        self._keys_before = set(state["keys_before"])
        self._epoch = state["epoch"]
        self._epoch_keys = set(state["epoch_keys"])
