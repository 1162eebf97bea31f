"""AdamW with BERT's weight-decay exemptions, and a warm-up then linear-decay schedule.

The exemption is a rule about what a parameter is, not what it is called: no decay on
parameters with fewer than 2 dimensions (biases, LayerNorm gains and shifts) nor on the
weights of the module types in :data:`NO_DECAY_MODULES` (embeddings: decaying a rarely
seen token's vector towards zero only erases what little it has learned).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dmx.config import OptimConfig

NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (nn.Embedding,)


def decays(module: nn.Module, param: nn.Parameter) -> bool:
    """Whether ``param``, owned directly by ``module``, gets weight decay."""
    return param.ndim >= 2 and not isinstance(module, NO_DECAY_MODULES)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups, decayed and not, in the model's parameter order; a parameter
    shared by two modules (tied embeddings) is placed once, by its first owner."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            (decay if decays(module, param) else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    cuda = torch.cuda.is_available()
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        # Fused on a GPU; elsewhere foreach (one kernel per op over all tensors).
        fused=cuda or None,
        foreach=None if cuda else True,
    )


def lr_lambda(cfg: OptimConfig, total_steps: int) -> Callable[[int], float]:
    """The lr multiplier at each step: linear warm-up, then linear decay to final_lr_frac."""
    total = max(1, total_steps)
    warmup = int(cfg.warmup_frac * total)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 1.0 - (1.0 - cfg.final_lr_frac) * min(1.0, progress)

    return schedule
