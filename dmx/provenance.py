"""What a run records about where and with what it ran: package versions, device, memory.

Kept apart from the training code so a later addition (the git commit of dmx, the
corpus fingerprint, the CPU model) has one home, and so the run-folder callback only
decides when to write, not how to find out.
"""

from __future__ import annotations

import os
import platform
import resource
from importlib import metadata

import torch

PACKAGES = ("dmx", "torch", "lightning", "hydra-core", "omegaconf", "wandb", "tokenizers")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({os.cpu_count()} cores)"


def peak_mem_kind(device: torch.device) -> str:
    """What :func:`peak_mem_mb` measures there: the two are not comparable with each other."""
    return "cuda_allocated" if device.type == "cuda" else "process_rss"


def peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is in KiB on Linux: the process's peak resident memory.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_PEAKS: dict[tuple[str, str], float] = {}


def matmul_peak_flops(device: torch.device, precision: str) -> float | None:
    """A GPU's measured matrix-multiply FLOP/s in the run's precision, once per process
    (about a second); None on a CPU, where ``dmx bench`` measures it instead of every run."""
    if device.type != "cuda":
        return None
    key = (str(device), precision)
    if key not in _PEAKS:
        from dmx.bench.peak import matmul_peak

        dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(
            precision.split("-")[0], torch.float32
        )
        _PEAKS[key] = matmul_peak(dtype, device, sizes=(4096, 8192), seconds=0.3)
    return _PEAKS[key]
