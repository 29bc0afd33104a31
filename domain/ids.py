"""Identifiers: time-ordered UUIDv7 for memes and events.

Time order keeps B-tree inserts append-only and lets a meme id imply its month
partition; derived ids (uuid5 of a parent event) make replays produce the same ids.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import uuid6


def new_id() -> str:
    return str(uuid6.uuid7())


def derived_id(parent_event_id: str, purpose: str) -> str:
    """The same parent and purpose always give the same id, so a replayed event dedupes."""
    return str(uuid.uuid5(uuid.UUID(parent_event_id), purpose))


def is_valid_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def id_time(value: str) -> datetime:
    """The creation time a UUIDv7 carries in its first 48 bits (milliseconds)."""
    parsed = uuid.UUID(value)
    if parsed.version != 7:
        raise ValueError(f"{value} is not a UUIDv7")
    return datetime.fromtimestamp((parsed.int >> 80) / 1000, tz=UTC)
