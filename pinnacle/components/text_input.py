"""Why a value is not usable as a text model's input: shared by the text encoders."""

from __future__ import annotations

import typing as t

__all__ = ["check_text"]


def check_text(text: t.Any, max_chars: int) -> t.Optional[str]:
    """A short reason ``text`` cannot be encoded, or ``None`` when it can.

    Example:
        >>> check_text("", 100)
        'the text is empty'
    """
    if text is None:
        return "the text is missing (None)"
    if isinstance(text, (bytes, bytearray)):
        return "expected text but got bytes; decode them to str first"
    if not isinstance(text, str):
        return f"expected text (str) but got {type(text).__name__}"
    if not text.strip():
        return "the text is empty"
    if len(text) > max_chars:
        return f"the text has {len(text):,} characters, more than the {max_chars:,} allowed"
    return None
