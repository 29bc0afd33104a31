"""Ephemeral room messages (presence counts, draft edits) to every replica, over Redis pub/sub.

They are not feed events: nobody replays them (a draft's state is in Redis, a presence count is
recomputed), so at-most-once pub/sub fits. Each replica, the sender included, receives the
message from Redis and hands it to its hub; when Redis is unreachable the sender's own clients
still get it, so a single replica keeps working without Redis.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from redis.asyncio import Redis

from api.feed.hub import Hub
from api.feed.messages import room_message
from sinks.redis.client import REDIS_ERRORS

log = logging.getLogger(__name__)
CHANNEL = "memestream:feed:rooms"


class RoomBus:
    def __init__(self, redis: Redis, hub: Hub) -> None:
        """`redis`: a subscriber client (`create_redis(..., subscriber=True)`), so the
        bus follows a Sentinel failover like every other Redis client."""
        self.hub = hub
        self.redis = redis
        self.connected = asyncio.Event()

    async def publish(self, room: str, kind: str, body: dict[str, Any]) -> None:
        try:
            if not self.connected.is_set():
                raise ConnectionError("room bus not subscribed")
            await self.redis.publish(CHANNEL, orjson.dumps([room, kind, body]))
        except REDIS_ERRORS as exc:
            log.debug("room bus down, delivering locally: %s", exc)
            self.hub.deliver(room_message(room, kind, body))

    async def run(self) -> None:
        """Listens until cancelled, reconnecting with backoff."""
        delay = 0.2
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self.connected.set()
                delay = 0.2
                async for raw in pubsub.listen():
                    room, kind, body = orjson.loads(raw["data"])
                    self.hub.deliver(room_message(room, kind, body))
            except REDIS_ERRORS as exc:
                log.warning("room bus lost Redis (%s); retrying in %.1fs", exc, delay)
            finally:
                self.connected.clear()
                await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        await self.redis.aclose()
