"""Read-through cache of meme metadata as Redis hashes with a TTL.

Final states (rendered, failed) are cached for `ttl_s`: they change only on delete or review,
and both invalidate. A pending meme changes when the worker finishes, so it is cached only for
`pending_ttl_s` (1 s by default): under a render backlog, clients polling their pending memes
would otherwise send every read to PostgreSQL (the memory load run's hit ratio was 0.008). The
analytics worker drops the Redis entry when the meme's `MemeRendered` arrives, so a poll sees
the render within `pending_ttl_s` at worst. Hits and misses go to
`memestream_cache_{hits,misses}_total{cache="meme"}`.
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
PENDING = "pending"
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
        self,
        redis: Redis,
        ttl_s: int,
        *,
        local_ttl_s: float = 0.0,
        local_max: int = 10_000,
        pending_ttl_s: float = 0.0,
    ) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self.pending_ttl_s = pending_ttl_s
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
        ttl = self.local_ttl_s
        if record.status == PENDING:
            ttl = min(ttl, self.pending_ttl_s)
        if ttl <= 0:
            return
        if len(self._local) >= self.local_max:
            self._local.clear()
        self._local[record.id] = (time.monotonic() + ttl, record)

    def _ttl_ms(self, record: MemeRecord) -> int:
        """How long Redis keeps the record; 0: not cached."""
        if record.status in CACHEABLE:
            return self.ttl_s * 1000
        if record.status == PENDING:
            return int(self.pending_ttl_s * 1000)
        return 0

    async def put(self, record: MemeRecord) -> None:
        await self.put_many([record])

    async def put_many(self, records: Iterable[MemeRecord]) -> int:
        cacheable = [(r, ttl_ms) for r in records if (ttl_ms := self._ttl_ms(r)) > 0]
        if not cacheable:
            return 0
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for record, ttl_ms in cacheable:
                    key = cache_key(record.id)
                    pipe.delete(key)
                    pipe.hset(key, mapping=encode(record))
                    pipe.pexpire(key, ttl_ms)
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
            self._remember(record)
        return record
