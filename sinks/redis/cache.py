"""Read-through cache of meme metadata as Redis hashes with a TTL.

Only final states (rendered, failed) are cached: a pending meme changes when the worker finishes,
so caching it would need an invalidation on every render; final rows change only on delete, and
delete invalidates. Hits and misses go to `memestream_cache_{hits,misses}_total{cache="meme"}`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import orjson
from redis.asyncio import Redis

from domain.metrics import CACHE_HITS, CACHE_MISSES
from sinks.postgres.memes import MemeRecord
from sinks.redis.client import REDIS_ERRORS

log = logging.getLogger(__name__)
CACHE_NAME = "meme"
CACHEABLE = frozenset({"rendered", "failed"})
_JSON_FIELDS = ("texts", "variants")
_TIME_FIELDS = ("created_at", "rendered_at", "updated_at")


def cache_key(meme_id: str) -> str:
    return f"meme:{meme_id}"


def encode(record: MemeRecord) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name in MemeRecord.__slots__:  # type: ignore[attr-defined]
        value = getattr(record, name)
        if value is None:
            continue
        if name in _JSON_FIELDS:
            fields[name] = orjson.dumps(value).decode()
        elif isinstance(value, datetime):
            fields[name] = value.isoformat()
        else:
            fields[name] = str(value)
    return fields


def decode(raw: dict[bytes, bytes]) -> MemeRecord:
    values: dict[str, Any] = {name: None for name in MemeRecord.__slots__}  # type: ignore[attr-defined]
    for key, value in raw.items():
        values[key.decode()] = value.decode()
    for name in _JSON_FIELDS:
        values[name] = orjson.loads(values[name])
    for name in _TIME_FIELDS:
        if values[name] is not None:
            values[name] = datetime.fromisoformat(values[name])
    if values["render_ms"] is not None:
        values["render_ms"] = float(values["render_ms"])
    return MemeRecord(**values)


class MemeCache:
    """Redis hashes (shared, `ttl_s`) behind a small per-process copy (`local_ttl_s`).

    The local copy saves a Redis round trip on hot memes; it lives `local_ttl_s` (2 s by
    default), so a delete done by another process shows there within that time (this process'
    own deletes drop it at once). `local_ttl_s=0` disables it.
    """

    def __init__(
        self, redis: Redis, ttl_s: int, *, local_ttl_s: float = 0.0, local_max: int = 10_000
    ) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.local_ttl_s = local_ttl_s
        self.local_max = local_max
        self._local: dict[str, tuple[float, MemeRecord]] = {}
        # Bound once: a `labels()` lookup per read cost more than the local hit itself.
        self._hits = CACHE_HITS.labels(cache=CACHE_NAME)
        self._misses = CACHE_MISSES.labels(cache=CACHE_NAME)

    async def get(self, meme_id: str) -> MemeRecord | None:
        """The cached record, or None on a miss (Redis errors count as misses)."""
        local = self._local.get(meme_id)
        if local is not None:
            if local[0] >= time.monotonic():
                self._hits.inc()
                return local[1]
            del self._local[meme_id]
        try:
            raw = await self.redis.hgetall(cache_key(meme_id))  # type: ignore[misc]
        except REDIS_ERRORS as exc:
            log.debug("meme cache read failed: %s", exc)
            raw = None
        if not raw:
            self._misses.inc()
            return None
        self._hits.inc()
        record = decode(raw)
        self._remember(record)
        return record

    def _remember(self, record: MemeRecord) -> None:
        if self.local_ttl_s <= 0:
            return
        if len(self._local) >= self.local_max:
            self._local.clear()
        self._local[record.id] = (time.monotonic() + self.local_ttl_s, record)

    async def put(self, record: MemeRecord) -> None:
        await self.put_many([record])

    async def put_many(self, records: Iterable[MemeRecord]) -> int:
        cacheable = [r for r in records if r.status in CACHEABLE]
        if not cacheable:
            return 0
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for record in cacheable:
                    key = cache_key(record.id)
                    pipe.delete(key)
                    pipe.hset(key, mapping=encode(record))
                    pipe.expire(key, self.ttl_s)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            log.debug("meme cache write failed: %s", exc)
            return 0
        return len(cacheable)

    async def invalidate(self, meme_id: str) -> None:
        """Raises on a Redis error: a delete must not leave a stale entry silently."""
        self._local.pop(meme_id, None)
        await self.redis.delete(cache_key(meme_id))

    async def read_through(
        self, meme_id: str, load: Callable[[str], Awaitable[MemeRecord | None]]
    ) -> MemeRecord | None:
        cached = await self.get(meme_id)
        if cached is not None:
            return cached
        record = await load(meme_id)
        if record is not None:
            await self.put(record)
        return record
