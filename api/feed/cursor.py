"""Event ids that survive restarts and replicas: the transport's log positions.

An id is the position vector after the event: `k:12.40.7` is "Kafka partitions 0, 1, 2 read
up to offsets 12, 40, 7"; `n:553` is "JetStream stream sequence 553". Every replica using the
same transport gives the same event the same id, so a client resumes on any replica, and after
a restart the history is refilled from the log so old ids still resolve.
"""

from __future__ import annotations

from dataclasses import dataclass


class BadCursor(ValueError):
    """A Last-Event-ID we did not issue: treated like a gap that is too old (reload)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    tag: str
    positions: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.tag}:{'.'.join(map(str, self.positions))}"

    def at(self, partition: int) -> int:
        """The last position seen on a partition; -1 when the cursor predates it."""
        return self.positions[partition] if partition < len(self.positions) else -1

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        tag, sep, rest = raw.strip().partition(":")
        if not sep or not tag.isalpha() or len(raw) > 512:
            raise BadCursor(raw)
        try:
            positions = tuple(int(p) for p in rest.split("."))
        except ValueError as exc:
            raise BadCursor(raw) from exc
        if not positions or any(p < -1 for p in positions):
            raise BadCursor(raw)
        return cls(tag, positions)
