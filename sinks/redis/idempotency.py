"""`Idempotency-Key` records: the first request with a key runs, replays get its stored answer.

A record is claimed with SET NX (state `running`) before the work and replaced by the response
afterwards, both with a TTL. The request's body fingerprint is stored too, so reusing a key for a
different body is refused rather than silently answered with another request's result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

RUNNING_TTL_S = 60


@dataclass(frozen=True, slots=True)
class Stored:
    fingerprint: str
    status: int | None  # None while the first request still runs
    body: Any = None


class IdempotencyStore:
    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    @staticmethod
    def key(scope: str, idempotency_key: str) -> str:
        return f"idem:{scope}:{idempotency_key}"

    async def claim(self, key: str, fingerprint: str) -> Stored | None:
        """None if this request owns the key now; else what an earlier request left."""
        running = orjson.dumps({"fingerprint": fingerprint, "status": None})
        if await self.redis.set(key, running, nx=True, ex=RUNNING_TTL_S):
            return None
        raw = await self.redis.get(key)
        if raw is None:  # expired between the two calls: claim again
            return await self.claim(key, fingerprint)
        data = orjson.loads(raw)
        return Stored(data["fingerprint"], data["status"], data.get("body"))

    async def complete(self, key: str, fingerprint: str, status: int, body: Any) -> None:
        record = {"fingerprint": fingerprint, "status": status, "body": body}
        await self.redis.set(key, orjson.dumps(record), ex=self.ttl_s)

    async def release(self, key: str) -> None:
        """Forget a claim whose request failed, so the client may retry with the same key."""
        await self.redis.delete(key)
