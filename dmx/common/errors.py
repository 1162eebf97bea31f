"""The one exception type that means "the user can fix this", and how it is shown."""

from __future__ import annotations

ERROR_PREFIX = "dmx: error: "


class UserError(Exception):
    """A mistake in what the user asked for: a bad option, a missing file, an empty folder.

    The CLI prints its message on one line (no traceback) and exits with code 2, so
    the message itself must name the fix.
    """

    exit_code = 2


def one_line(text: object) -> str:
    """Any message, folded onto one line: a report row or an error must never break a line."""
    return " ".join(str(text).split())


def error_line(message: object) -> str:
    """What the user reads on stderr for a mistake: ``dmx: error: <one line>``."""
    return f"{ERROR_PREFIX}{one_line(message)}"


# Lines OmegaConf appends to its errors to locate a key; the message before them says it.
_LOCATOR_LINES = ("full_key", "object_type", "reference_type")


def exception_line(err: BaseException) -> str:
    """An exception from Hydra or OmegaConf (often several lines, the cause in a second
    exception) as one line: its own lines, then the first line of its cause, repeats and
    key-locating lines dropped."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    cause = err.__cause__
    if cause is not None:
        lines += [line.strip() for line in str(cause).splitlines()[:1] if line.strip()]
    useful = [line for line in lines if not line.startswith(_LOCATOR_LINES)]
    return one_line(" ".join(dict.fromkeys(useful))) or type(err).__name__
