"""The one exception type that means "the user can fix this"."""


class UserError(Exception):
    """A mistake in what the user asked for: a bad option, a missing file, an empty folder.

    The CLI prints its message on one line (no traceback) and exits with code 2, so
    the message itself must name the fix.
    """

    exit_code = 2
