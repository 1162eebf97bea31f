"""Counter-based random numbers: every draw is a pure function of its key.

A mask must not depend on RNG state, worker count, batch order, batch composition or
rank, so nothing here holds state. Each uniform is a splitmix64 hash of
(seed, stream, key, sample index, token position), computed for a whole batch with a few
int64 multiplies, xors and shifts, on whatever device the batch lives on.

Static masking with K copies then needs no storage at all: it is the same function with
key = epoch mod K. Dynamic masking uses key = epoch.
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_UNIFORM_BITS = 24  # float32 holds 24 bits of mantissa exactly


def _signed(x: int) -> int:
    """A 64-bit pattern as the int64 torch stores."""
    x &= _MASK64
    return x - (1 << 64) if x >> 63 else x


def mix64(x: int) -> int:
    """splitmix64's finaliser on a Python int (the reference the tensor version must match)."""
    x &= _MASK64
    x = ((x ^ (x >> 30)) * _MIX1) & _MASK64
    x = ((x ^ (x >> 27)) * _MIX2) & _MASK64
    return x ^ (x >> 31)


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic on signed integers)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def mix64_tensor(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on an int64 tensor; multiplication wraps modulo 2**64."""
    x = x ^ _shr(x, 30)
    x = x * _signed(_MIX1)
    x = x ^ _shr(x, 27)
    x = x * _signed(_MIX2)
    return x ^ _shr(x, 31)


def base_hash(seed: int, stream: int, key: int) -> int:
    """Fold the scalar parts of the key on the host; only index and position go to the device."""
    h = mix64(seed * _GOLDEN + 1)
    h = mix64(h ^ ((stream + 1) * _GOLDEN))
    return mix64(h ^ ((key + 1) * _GOLDEN))


def keyed_uniform(
    seed: int, stream: int, key: int, index: torch.Tensor, length: int
) -> torch.Tensor:
    """Uniforms in [0, 1) of shape (len(index), length), one per (sample, position).

    ``stream`` separates independent decisions about the same token (is it selected? what
    does it become? which random token?), so they never share bits.
    """
    base = _signed(base_hash(seed, stream, key))
    per_sample = mix64_tensor(index.to(torch.int64) * _signed(_GOLDEN) + base)
    positions = torch.arange(length, device=index.device, dtype=torch.int64) * _signed(_GOLDEN)
    h = mix64_tensor(per_sample[:, None] ^ positions[None, :])
    return _shr(h, 64 - _UNIFORM_BITS).to(torch.float32) * (1.0 / (1 << _UNIFORM_BITS))


def keyed_uniform_reference(seed: int, stream: int, key: int, index: int, position: int) -> float:
    """One uniform computed with Python ints: the specification keyed_uniform must equal."""
    base = base_hash(seed, stream, key)
    per_sample = mix64((index * _GOLDEN + base) & _MASK64)
    h = mix64(per_sample ^ ((position * _GOLDEN) & _MASK64))
    return (h >> (64 - _UNIFORM_BITS)) / (1 << _UNIFORM_BITS)
