"""The pluggable fan-out transport: how `meme.feed` reaches this replica's hub.

A transport fills the hub's history from its log on start (so event ids from before a restart
still resolve), then publishes every new event. `run` returns only on error; the relay
restarts it with backoff, resuming from the hub's positions.
"""

from __future__ import annotations

from typing import Protocol

from api.feed.hub import Hub


class FeedTransport(Protocol):
    tag: str

    async def run(self, hub: Hub, ready: object) -> None:
        """Backfill, call `ready.set()`, then publish until cancelled or failed."""
        ...

    async def close(self) -> None: ...

    def status(self) -> dict[str, object]: ...


def backfill_start(hub: Hub, partition: int, low: int, high: int, depth: int) -> int:
    """Where to start reading a partition: after what the hub already has, else `depth` back."""
    positions = hub.history.positions
    if partition < len(positions) and positions[partition] >= 0:
        start = positions[partition] + 1
    else:
        start = high - depth
    return min(max(low, start), high)
