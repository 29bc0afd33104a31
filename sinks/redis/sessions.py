"""Login sessions: an opaque random token whose SHA-256 keys a Redis hash with a TTL.

Why hashed: a leaked Redis dump holds no usable tokens. Sliding expiry: each use extends the
session by the TTL, so an active user stays logged in and an idle one is logged out.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

SESSION_PREFIX = "mss_"


@dataclass(frozen=True, slots=True)
class Session:
    user_id: str
    username: str
    role: str


def _key(token: str) -> str:
    return "session:" + hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def create(self, session: Session) -> str:
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                _key(token),
                mapping={
                    "user_id": session.user_id,
                    "username": session.username,
                    "role": session.role,
                },
            )
            pipe.expire(_key(token), self.ttl_s)
            await pipe.execute()
        return token

    async def get(self, token: str) -> Session | None:
        if not token.startswith(SESSION_PREFIX):
            return None
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(_key(token))
            pipe.expire(_key(token), self.ttl_s, xx=True)
            raw, _ = await pipe.execute()
        if not raw:
            return None
        return Session(
            user_id=raw[b"user_id"].decode(),
            username=raw[b"username"].decode(),
            role=raw[b"role"].decode(),
        )

    async def delete(self, token: str) -> None:
        await self.redis.delete(_key(token))
