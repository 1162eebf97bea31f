"""Helpers shared by the test files; import them as ``from helpers import ...``.

Fixtures live in ``tests/conftest.py``; nothing here is a fixture, and no test imports
from ``conftest``.
"""

from helpers.glue_files import glue_folder, write
from helpers.runs import (
    DMX,
    RESUME_FIELDS,
    TIMINGS,
    TINY,
    invoke_dmx,
    make_config,
    run_dmx,
    tiny,
    train_run,
)

__all__ = [
    "DMX",
    "RESUME_FIELDS",
    "TIMINGS",
    "TINY",
    "glue_folder",
    "make_config",
    "invoke_dmx",
    "run_dmx",
    "tiny",
    "train_run",
    "write",
]
