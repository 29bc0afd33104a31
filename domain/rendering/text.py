"""Validate and normalise caption text before it reaches FreeType.

Rejects what cannot be a caption (control characters, absurd lengths) with a
clear reason, instead of letting it render as tofu or stall the fitter.
"""

from __future__ import annotations

import unicodedata

from domain.rendering.errors import InvalidText

#: Hard ceiling even if settings allow more: beyond this no box can show the text.
ABSOLUTE_MAX_TEXT = 2000
_ALLOWED_CONTROLS = {"\n", "\t", "\r"}
# Format characters that carry meaning for bidi text and emoji sequences.
_ALLOWED_FORMAT = {
    "\u200c",
    "\u200d",
    "\u200e",
    "\u200f",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\ufe0e",
    "\ufe0f",
}


def max_text_length() -> int:
    from domain.settings import get_settings

    return min(get_settings().max_text_length, ABSOLUTE_MAX_TEXT)


def clean_text(
    text: object, index: int, *, uppercase: bool = False, limit: int | None = None
) -> str:
    """Return the text to draw for box `index` (0-based), or raise InvalidText."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise InvalidText(f"text {index + 1} must be a string, got {type(text).__name__}")
    limit = max_text_length() if limit is None else limit
    if len(text) > limit:
        raise InvalidText(f"text {index + 1} is {len(text)} characters long; the limit is {limit}")
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cc" and ch not in _ALLOWED_CONTROLS:
            raise InvalidText(f"text {index + 1} contains control character U+{ord(ch):04X}")
        if cat in ("Cs", "Co") or (cat == "Cf" and ch not in _ALLOWED_FORMAT):
            raise InvalidText(f"text {index + 1} contains unsupported character U+{ord(ch):04X}")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = text.replace("\t", " ")
    lines = [" ".join(line.split()) for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    text = "\n".join(lines)
    if text.count("\n") > 20:
        raise InvalidText(f"text {index + 1} has more than 20 line breaks")
    return text.upper() if uppercase else text
