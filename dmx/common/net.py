"""Whether a server answers, asked once with a short timeout before anything depends on it
(the HuggingFace hub before a download, W&B before an upload), so a dead network is one
line in seconds rather than a library's retries for minutes."""

from __future__ import annotations

import urllib.error
import urllib.request


def unreachable(url: str, timeout: float) -> str | None:
    """Why ``url`` gives no answer to a HEAD request within ``timeout`` seconds, or None
    when it answers: any HTTP answer, an error status included, proves the network is
    there."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except (OSError, ValueError) as err:  # URLError, timeouts, refused connections, a bad URL
        return str(getattr(err, "reason", err))


__all__ = ["unreachable"]
