"""What every dmx command shares: a user's mistake as one line and exit code 2.

Click's usage errors (an unknown option, a missing argument, an unknown command) and dmx's
own :class:`~dmx.common.errors.UserError` both end as ``dmx: error: <one line naming the fix>``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperGroup

from dmx.common.errors import UserError, error_line

try:  # Typer vendors Click since 0.2x; older Typer runs on Click itself
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import NoArgsIsHelpError, UsageError  # type: ignore[no-redef]

# Commands that take Hydra overrides take any further words and pass them on.
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def help_text(command: Callable[..., Any]) -> str:
    """A command's docstring as its ``--help``: prose paragraphs joined into one line each,
    so rich wraps them at the terminal's width instead of breaking them again at the
    docstring's own line ends ("are read, not / trained again" at 80 columns); indented
    lines (the examples) kept one to a line, as written."""
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    kept = []
    for paragraph in paragraphs:
        lines = paragraph.splitlines()
        if any(line.startswith(" ") for line in lines):
            kept.append(paragraph)
        else:
            kept.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(kept)


def fail(message: object) -> typer.Exit:
    typer.echo(error_line(message), err=True)
    return typer.Exit(code=UserError.exit_code)


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """Click's usage errors (an unknown option, a missing argument, an unknown command)
    as dmx's one line and exit code 2, instead of a usage box."""
    try:
        yield
    except NoArgsIsHelpError:  # a bare `dmx`: the help, as asked for
        raise
    except UsageError as err:
        message = err.format_message().rstrip(".")
        command = err.ctx.command_path if err.ctx is not None else "dmx"
        raise fail(f"{message[:1].lower()}{message[1:]}; see `{command} --help`") from None


class OneLineErrors(TyperGroup):
    """The command group whose usage errors are one line."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any
    ) -> Any:
        with _one_line_usage_errors():  # `dmx --bogus`
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_usage_errors():  # `dmx nosuch`, `dmx report DIR --bogus`
            return super().invoke(ctx)
