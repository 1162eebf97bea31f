"""One way a config section becomes an object: by field name.

``from_fields(TokenMasker, mask_config, seed=3, ...)`` fills every field of the object from
the same-named setting, so a new setting that the object also declares needs no mapping
code at all, and a renamed one cannot shift its neighbours (as positional arguments could).
Imports nothing from dmx: the masking code (torch only) and the model use it too.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def from_fields(cls: type[T], source: Any, **given: Any) -> T:
    """``cls`` built from ``given`` and, for every other field of ``cls``, the attribute of
    ``source`` with the same name (fields ``source`` lacks keep their defaults)."""
    assert dataclasses.is_dataclass(cls), f"{cls.__name__} is not a dataclass"
    names = {f.name for f in dataclasses.fields(cls) if f.init} - given.keys()
    copied = {name: getattr(source, name) for name in names if hasattr(source, name)}
    return cls(**copied, **given)  # type: ignore[call-arg]
