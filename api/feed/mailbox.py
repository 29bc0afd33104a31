"""A client's bounded queue: a full mailbox means a slow client, which is dropped with a
reason instead of holding up the broadcast to everyone else.

Hand-written rather than `asyncio.Queue` because there are 20,000 of them per process: a
list and at most one pending future is a fraction of a Queue's memory (an empty deque alone
takes 760 bytes, an empty list 56, and readers take everything at once, so nothing pops from
the front), and `get` takes an optional timeout without wrapping itself in a task.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    __slots__ = ("_items", "_waiter", "capacity", "closed")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None
        self.closed: str | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> bool:
        """False when full (the caller closes the client); never blocks the broadcaster."""
        if self.closed is not None:
            return True
        if len(self._items) >= self.capacity:
            return False
        self._items.append(item)
        self._wake()
        return True

    def put_control(self, item: T) -> None:
        """Replies to the client's own requests: bounded by the client's own rate, not ours."""
        if self.closed is None:
            self._items.append(item)
            self._wake()

    def take_all(self) -> list[T]:
        items, self._items = self._items, []
        return items

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get_batch(self, wait_s: float | None = None) -> list[T]:
        """Everything queued; [] on timeout or close (check `closed`).

        The feed passes no timeout: the hub's heartbeat is one broadcast, not a timer per client.
        """
        if not self._items and self.closed is None:
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            handle = loop.call_later(wait_s, _expire, waiter) if wait_s is not None else None
            try:
                await waiter
            finally:
                if handle is not None:
                    handle.cancel()
                self._waiter = None
        if self.closed is not None:
            return []
        return self.take_all()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
