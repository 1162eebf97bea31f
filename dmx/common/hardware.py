"""What the machine can do and did, measured in this process: the matrix-multiply peak,
peak memory, the device's name.

Low on purpose (torch only): a run's provenance and MFU (:mod:`dmx.run.callbacks`) and the
benchmarks (:mod:`dmx.bench`) read the same numbers the same way.

A fraction of a data-sheet peak says little on a shared 2-core VM (turbo, noisy
neighbours, which vector units the build uses); a fraction of what this very process
reaches with square matrix multiplies, in the same precision and thread count, says how
much of the reachable speed the training step leaves unused.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
from pathlib import Path

import torch

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a wall-clock reading covers the work (GPU only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({os.cpu_count()} cores)"


def matmul_peak(
    dtype: torch.dtype,
    device: torch.device,
    sizes: tuple[int, ...] = (1024, 2048, 4096),
    seconds: float = 0.4,
    max_product_s: float = 5.0,
) -> float:
    """The best FLOP/s of ``n x n @ n x n`` products over ``sizes``, each timed for about
    ``seconds`` after a warm-up product. The best, not the median: it is an upper bound.

    A size whose one product would take longer than ``max_product_s`` at the rate the
    previous size reached is skipped: without bf16 units (AVX2 only) a CPU multiplies bf16
    at about 1 GFLOP/s, where one 4096 product takes minutes and says nothing new.
    """
    best = 0.0
    for n in sizes:
        if best and 2.0 * n**3 / best > max_product_s:
            break
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


_GPU_PEAKS: dict[tuple[str, str], float] = {}


def gpu_matmul_peak(device: torch.device, precision: str) -> float | None:
    """A GPU's measured matrix-multiply FLOP/s in a Lightning ``precision``, once per process
    (about a second), for every run's MFU; None on a CPU, where ``dmx bench`` measures it
    instead of every run."""
    if device.type != "cuda":
        return None
    key = (str(device), precision)
    if key not in _GPU_PEAKS:
        dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(
            precision.split("-")[0], torch.float32
        )
        _GPU_PEAKS[key] = matmul_peak(dtype, device, sizes=(4096, 8192), seconds=0.3)
    return _GPU_PEAKS[key]


def peak_memory_kind(device: torch.device) -> str:
    """What :func:`peak_memory_mb` measures there: the two are not comparable with each other."""
    return "cuda_allocated" if device.type == "cuda" else "process_rss"


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or on Linux the process's peak
    resident set (writing 5 to clear_refs resets VmHWM to the current size)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError):
            _CLEAR_REFS.write_text("5")


def peak_memory_mb(device: torch.device) -> float:
    """The peak since start or the last :func:`reset_peak_memory`, in MiB: memory CUDA's
    allocator handed out, or the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """The process's peak resident memory in MiB (VmHWM; getrusage where /proc is not)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
