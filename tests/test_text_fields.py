"""api/text_fields.py: text that reaches PostgreSQL is refused with NUL or a control character."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from api.text_fields import StoredText

ADAPTER = TypeAdapter(StoredText)


@pytest.mark.parametrize("text", ["a\x00b", "a\r\nb", "\x1b[2J", "a\x85b", "a\ue000b", "\ud800"])
def test_control_and_unsupported_characters_are_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python(text)


@pytest.mark.parametrize("text", ["drake", "Caf\u00e9 \u202e", "x' OR '1'='1", "\U0001f600"])
def test_printable_text_passes_unchanged(text: str) -> None:
    assert ADAPTER.validate_python(text) == text
