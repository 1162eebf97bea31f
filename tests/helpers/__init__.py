"""Helpers shared by the test files; import them as ``from helpers import ...``.

Fixtures live in ``tests/conftest.py``; nothing here is a fixture, and no test imports
from ``conftest``.
"""

from helpers.runs import DMX, TIMINGS, TINY, make_config, run_dmx, train_run

__all__ = ["DMX", "TIMINGS", "TINY", "make_config", "run_dmx", "train_run"]
