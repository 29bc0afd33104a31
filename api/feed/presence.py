"""Who is looking at a meme or editing a draft, across replicas, in Redis with expiry.

A room is a sorted set `feed:presence:<room>` of connection ids scored by when they expire;
each replica refreshes its own members every `ttl / 3` seconds, so a crashed replica's viewers
vanish within `ttl` without anyone cleaning up. Counts are pushed to the room when they change.
Rooms are the `meme:` and `draft:` channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import Redis

from api.feed.hub import Client
from api.feed.rooms import RoomBus
from sinks.redis.client import REDIS_ERRORS

log = logging.getLogger(__name__)
PRESENCE_PREFIXES = ("meme:", "draft:")


def is_presence_room(channel: str) -> bool:
    return channel.startswith(PRESENCE_PREFIXES)


def key(room: str) -> str:
    return f"feed:presence:{room}"


class Presence:
    def __init__(self, redis: Redis, bus: RoomBus, ttl_s: int) -> None:
        self.redis = redis
        self.bus = bus
        self.ttl_s = ttl_s
        self.members: dict[str, set[str]] = {}
        self.counts: dict[str, int] = {}
        self._known: dict[str, set[str]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()

    def on_change(self, client: Client, channel: str, joined: bool) -> None:
        """Hub listener: synchronous, so it only records; `run` talks to Redis."""
        if not is_presence_room(channel):
            return
        members = self.members.setdefault(channel, set())
        if joined:
            members.add(client.id)
        else:
            members.discard(client.id)
        self._dirty.add(channel)
        self._wake.set()

    async def count(self, room: str) -> int:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key(room), "-inf", now)
            pipe.zcard(key(room))
            _, count = await pipe.execute()
        return int(count)

    async def run(self) -> None:
        """Writes joins and leaves at once, refreshes everything every ttl/3 s."""
        refresh_every = self.ttl_s / 3
        next_refresh = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=refresh_every)
            self._wake.clear()
            now = time.monotonic()
            rooms = set(self._dirty)
            self._dirty.clear()
            if now >= next_refresh:
                rooms |= set(self.members)
                next_refresh = now + refresh_every
            try:
                await self._sync(rooms)
            except REDIS_ERRORS as exc:
                log.warning("presence not written (Redis: %s)", exc)
                self._dirty |= rooms

    async def _sync(self, rooms: set[str]) -> None:
        if not rooms:
            return
        now = time.time()
        ordered = sorted(rooms)
        async with self.redis.pipeline(transaction=False) as pipe:
            for room in ordered:
                members = self.members.get(room, set())
                gone = self._known.get(room, set()) - members
                # Every room queues exactly four commands, so results index by position.
                if gone:
                    pipe.zrem(key(room), *gone)
                else:
                    pipe.exists(key(room))
                if members:
                    pipe.zadd(key(room), dict.fromkeys(members, now + self.ttl_s))
                else:
                    pipe.exists(key(room))
                pipe.zremrangebyscore(key(room), "-inf", now)
                pipe.zcard(key(room))
                self._known[room] = set(members)
                if not members:
                    self.members.pop(room, None)
                    self._known.pop(room, None)
            results = await pipe.execute()
        for n, room in enumerate(ordered):
            count = int(results[n * 4 + 3])
            if self.counts.get(room) != count:
                self.counts[room] = count
                await self.bus.publish(room, "presence", {"room": room, "count": count})
            if count == 0:
                self.counts.pop(room, None)
