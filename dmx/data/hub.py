"""Loading a HuggingFace hub dataset without waiting on a network that is not there.

``datasets.load_dataset`` with no network and nothing cached retries for 23 to 30 s before
it gives up (five retries with a growing back-off). A user who typed a dataset name on a
machine without the hub should hear so at once. So :func:`load` asks in three steps:

1. a local folder of data files is loaded as it is;
2. otherwise the library's cache is tried with the hub switched off (offline mode, which
   never touches the network and answers at once either way);
3. only when the cache lacks it is the hub probed, one HEAD request with a short timeout,
   and the dataset downloaded when it answers; when it does not, :class:`HubUnreachable`
   (a ConnectionError) says so, within seconds.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dmx.common.net import unreachable

PROBE_TIMEOUT_S = 3.0


class HubUnreachable(ConnectionError):
    """The hub did not answer, and the dataset is not in the cache."""


def installed() -> bool:
    """Whether the datasets library is there (an extra, not a core dependency)."""
    return importlib.util.find_spec("datasets") is not None


def load(name: str, config: str | None = None, **kwargs: Any) -> Any:
    """``datasets.load_dataset(name, config, **kwargs)``, from the cache when it holds it;
    raises HubUnreachable, without the library's retries, when neither can give it."""
    import datasets

    if Path(name).exists():
        return datasets.load_dataset(name, config, **kwargs)
    try:
        with offline():
            return datasets.load_dataset(name, config, **kwargs)
    except Exception:  # not cached (or cached under other settings): ask the hub
        pass
    if not hub_reachable():
        raise HubUnreachable(
            f"{endpoint()} did not answer, and {name} is not in the HuggingFace cache"
        )
    return datasets.load_dataset(name, config, **kwargs)


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the hub answers a HEAD request within ``timeout`` seconds (any HTTP answer,
    an error status included, proves the network is there)."""
    return unreachable(endpoint(), timeout) is None


@contextmanager
def offline() -> Iterator[None]:
    """The datasets library and huggingface_hub in offline mode for the block: read from
    the cache only. Both read the flag when they are called, so setting it is enough."""
    import datasets
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved
