"""`memestream backup restore --to`: an ISO time with its UTC offset, nothing vaguer."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import typer

from memestream.backup_cli import parse_target


def test_offset_forms() -> None:
    expected = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
    assert parse_target("2026-12-07 22:00:00+00") == expected
    assert parse_target("2026-12-07T22:00:00+00:00") == expected
    assert parse_target("2026-12-07 23:00:00+01:00") == expected


@pytest.mark.parametrize("text", ["2026-12-07 22:00:00", "yesterday"])
def test_refuses_a_time_without_offset_or_not_a_time(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_target(text)
