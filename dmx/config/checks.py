"""The range and choice checks every section of the schema runs in ``__post_init__``: a
wrong value becomes one :class:`UserError` line naming the setting and what it may be."""

from __future__ import annotations

from dmx.common.errors import UserError


def check(ok: bool, message: str) -> None:
    """Refuse a value: ``message`` is the one line the user reads."""
    if not ok:
        raise UserError(message)


def check_split(prefix: str, mask_token_frac: float, random_token_frac: float) -> None:
    """The corruption split of selected tokens: [MASK], a random token, or unchanged."""
    for key, value in (
        ("mask_token_frac", mask_token_frac),
        ("random_token_frac", random_token_frac),
    ):
        check(0.0 <= value <= 1.0, f"{prefix}{key} must be in [0, 1], got {value}")
    check(
        mask_token_frac + random_token_frac <= 1.0,
        f"{prefix}mask_token_frac + {prefix}random_token_frac must be <= 1, got "
        f"{mask_token_frac} + {random_token_frac}",
    )


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    check(value in choices, f"{key} must be one of {', '.join(choices)}; got {value!r}")
