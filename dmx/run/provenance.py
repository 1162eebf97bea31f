"""What a run records about where and with what it ran: package versions, device, memory.

Kept apart from the training code so a later addition (the git commit of dmx, the
corpus fingerprint, the CPU model) has one home, and so the run-folder callback only
decides when to write, not how to find out. What is measured (peak memory, the matmul
peak, the device's name) is in :mod:`dmx.common.hardware`.
"""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

import torch

import dmx

PACKAGES = ("dmx", "torch", "lightning", "hydra-core", "omegaconf", "wandb", "tokenizers")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@cache
def git_commit() -> dict[str, object] | None:
    """The commit of the dmx source that runs, and whether it had uncommitted changes;
    None for an installed copy outside a git checkout (its version names it then)."""
    # The checkout holds the dmx package: its parent, wherever in the package this file is.
    root = Path(dmx.__file__).resolve().parent.parent
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
