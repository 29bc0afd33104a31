"""Status changes of memes over Redis pub/sub, so a client waiting on a generation is told.

One channel per meme (`meme-status:<id>`): a waiter subscribes *before* its request reaches
Kafka, so a fast render cannot publish before anyone listens. Pub/sub is fire-and-forget, so a
waiter also polls the source of truth as a fallback (see `api/routes/memes/waiting.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.asyncio.client import PubSub


def channel(meme_id: str) -> str:
    return f"meme-status:{meme_id}"


async def publish_status(redis: Redis, meme_id: str, status: str) -> int:
    """Returns how many subscribers heard it."""
    return int(await redis.publish(channel(meme_id), status))


class StatusWaiter:
    """`async with StatusWaiter(redis, id) as waiter: ... await waiter.next(timeout)`."""

    def __init__(self, redis: Redis, meme_id: str) -> None:
        self.redis = redis
        self.meme_id = meme_id
        self._pubsub: PubSub | None = None

    async def __aenter__(self) -> StatusWaiter:
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(channel(self.meme_id))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.unsubscribe()
            await self._pubsub.aclose()

    async def next(self, timeout_s: float) -> str | None:
        """The next published status, or None when `timeout_s` passes first."""
        assert self._pubsub is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                async for status in self._statuses():
                    return status
        return None

    async def _statuses(self) -> AsyncIterator[str]:
        assert self._pubsub is not None
        while True:
            message = await self._pubsub.get_message(timeout=0.2)
            if message is not None and message.get("type") == "message":
                yield message["data"].decode()
