"""What the machine can do, measured in this process: its matrix-multiply peak, and the
process's peak memory.

A fraction of a data-sheet peak says little on a shared 2-core VM (turbo, noisy
neighbours, which vector units the build uses); a fraction of what this very process
reaches with square matrix multiplies, in the same precision and thread count, says how
much of the reachable speed the training step leaves unused.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a wall-clock reading covers the work (GPU only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(
    dtype: torch.dtype,
    device: torch.device,
    sizes: tuple[int, ...] = (1024, 2048, 4096),
    seconds: float = 0.4,
) -> float:
    """The best FLOP/s of ``n x n @ n x n`` products over ``sizes``, each timed for about
    ``seconds`` after a warm-up product. The best, not the median: it is an upper bound."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up: allocation, kernel choice
        synchronize(device)
        reps, started = 0, time.perf_counter()
        while True:
            torch.mm(a, b, out=out)
            reps += 1
            synchronize(device)
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                break
        best = max(best, 2.0 * n**3 * reps / elapsed)
    return best


def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the process's peak resident set (VmHWM) to its
    current size, so the next reading is the peak of what runs in between."""
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")


def peak_rss_mb() -> float | None:
    """The process's peak resident memory in MiB since start or the last reset; None where
    /proc is not there."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
