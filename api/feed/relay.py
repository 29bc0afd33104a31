"""The feed relay of one API process: transport -> hub, plus presence and drafts.

Started and stopped by the API's lifespan. The transport runs under a supervisor that restarts
it with backoff, so a Kafka or NATS outage degrades the live feed (clients keep their
connections and heartbeats and resume once it is back) instead of failing the API's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.asyncio import Redis

from api.feed.drafts import Drafts
from api.feed.drain import drain_on_exit
from api.feed.hub import Hub
from api.feed.kafka_transport import KafkaFeed
from api.feed.nats_transport import NatsFeed
from api.feed.presence import Presence
from api.feed.rooms import RoomBus
from api.feed.transport import FeedTransport
from domain.settings import Settings
from producers.producer import EventProducer
from producers.serialization import AvroCodec
from sinks.redis.client import create_redis

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 15.0


def make_transport(settings: Settings, codec: AvroCodec) -> FeedTransport:
    if settings.feed_transport == "nats":
        return NatsFeed(settings, codec)
    return KafkaFeed(settings, codec)


class FeedRelay:
    def __init__(self, settings: Settings, producer: EventProducer) -> None:
        self.settings = settings
        self.transport = make_transport(settings, producer.codec)
        self.hub = Hub(self.transport.tag, settings.feed_history_size, settings.feed_client_queue)
        self.redis: Redis = create_redis(settings, timeout_s=1.0)
        self.rooms = RoomBus(create_redis(settings, timeout_s=1.0, subscriber=True), self.hub)
        self.presence = Presence(self.redis, self.rooms, settings.feed_presence_ttl_s)
        self.hub.listeners.append(self.presence.on_change)
        self.drafts = Drafts(self.redis, settings.feed_draft_ttl_s)
        self.ready = asyncio.Event()
        #: Unsent bytes after which a directly written client counts as slow.
        self.direct_limit = settings.feed_client_queue * 1024
        self.restarts = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Returns once the history is backfilled, or after READY_TIMEOUT_S regardless."""
        self._tasks = [
            asyncio.create_task(self._supervise(), name="feed-transport"),
            asyncio.create_task(self.rooms.run(), name="feed-rooms"),
            asyncio.create_task(self.presence.run(), name="feed-presence"),
            asyncio.create_task(drain_on_exit(self.hub), name="feed-drain"),
            asyncio.create_task(self._heartbeats(), name="feed-heartbeat"),
        ]
        try:
            await asyncio.wait_for(self.ready.wait(), READY_TIMEOUT_S)
        except TimeoutError:
            log.warning("live feed not ready after %.0fs; serving, it catches up", READY_TIMEOUT_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.rooms.connected.wait(), 2.0)

    async def _supervise(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.transport.run(self.hub, self.ready)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.restarts += 1
                log.warning("feed transport failed (%s); restarting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                delay = 0.5

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.settings.feed_heartbeat_s)
            self.hub.beat()

    async def stop(self) -> None:
        for client in list(self.hub.clients):
            self.hub.disconnect(client, "server-shutdown")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.transport.close()
        await self.rooms.close()
        await self.redis.aclose()

    def status(self) -> dict[str, Any]:
        return {
            **self.hub.status(),
            **self.transport.status(),
            "ready": self.ready.is_set(),
            "restarts": self.restarts,
        }

    async def cluster_status(self) -> list[dict[str, Any]]:
        if isinstance(self.transport, NatsFeed):
            return await self.transport.cluster_status()
        return []
