"""What a run records about where and with what it ran: package versions, device, memory.

Kept apart from the training code so a later addition (the git commit of dmx, the
corpus fingerprint, the CPU model) has one home, and so the run-folder callback only
decides when to write, not how to find out.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

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


@cache
def git_commit() -> dict[str, object] | None:
    """The commit of the dmx source that runs, and whether it had uncommitted changes;
    None for an installed copy outside a git checkout (its version names it then)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status)}


@cache
def hardware() -> dict[str, object]:
    """What computed: the CPU's model and core count, and each visible GPU."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out: dict[str, object] = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return out
