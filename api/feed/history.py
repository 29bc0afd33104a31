"""The bounded history a reconnecting client resumes from.

`floors[p]` is the first offset of partition p from which the history is complete (where the
relay started reading, then one past the last evicted entry). A cursor whose next needed
offset is below a floor has a gap we cannot fill: `GapTooOld`, and the client is told to
reload, never silently skipped forward.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from api.feed.cursor import Cursor
from api.feed.messages import Message


class GapTooOld(LookupError):
    """The events after this cursor are no longer all in the history."""


@dataclass(slots=True)
class Entry:
    partition: int
    offset: int
    message: Message


class History:
    def __init__(self, tag: str, capacity: int) -> None:
        self.tag = tag
        self.capacity = capacity
        self.entries: deque[Entry] = deque()
        self.floors: list[int] = []
        self.positions: list[int] = []
        self.cursor = Cursor(tag, ())

    def start(self, partition: int, offset: int) -> None:
        """The relay reads `partition` from `offset` on: the history is complete from there."""
        while len(self.floors) <= partition:
            self.floors.append(0)
            self.positions.append(-1)
        self.floors[partition] = offset
        self.positions[partition] = max(self.positions[partition], offset - 1)
        self.cursor = Cursor(self.tag, tuple(self.positions))

    def append(self, partition: int, offset: int, message: Message) -> None:
        if partition >= len(self.positions):
            self.start(partition, offset)
        if len(self.entries) >= self.capacity:
            old = self.entries.popleft()
            self.floors[old.partition] = max(self.floors[old.partition], old.offset + 1)
        self.entries.append(Entry(partition, offset, message))
        self.positions[partition] = offset
        self.cursor = Cursor(self.tag, tuple(self.positions))

    def next_cursor(self, partition: int, offset: int) -> Cursor:
        """The id an event at this position gets: the positions once it is appended."""
        positions = list(self.positions)
        while len(positions) <= partition:
            positions.append(-1)
        positions[partition] = offset
        return Cursor(self.tag, tuple(positions))

    def since(self, cursor: Cursor) -> list[Message]:
        if cursor.tag != self.tag or len(cursor.positions) > len(self.positions):
            raise GapTooOld(str(cursor))
        for partition, floor in enumerate(self.floors):
            seen = cursor.at(partition)
            if seen + 1 < floor or seen > self.positions[partition]:
                # Too old, or from the future (another topic, a recreated stream).
                raise GapTooOld(str(cursor))
        return [e.message for e in self.entries if e.offset > cursor.at(e.partition)]
