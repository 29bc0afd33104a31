"""API keys resolved at most once per `API_KEY_CACHE_TTL_S` per process, not on every request.

Every request with a key cost a PostgreSQL round trip before any work: in the burst load run
(reports/load/burst.json) the API's 10-connection pool emptied and about 42,000 requests
answered 503 from authentication alone. Who owns a key changes rarely, so the answer is kept
briefly, unknown keys included (a flood of made-up keys must not reach PostgreSQL either). A
key revoked through this process is forgotten at once; a change made elsewhere (another API
replica, an operator in the database, a disabled user) takes effect within the TTL.
"""

from __future__ import annotations

import asyncio

from cachetools import TTLCache

from sinks.postgres.users import User, UserRepository, hash_key


class ApiKeyCache:
    """The owner of a key as `UserRepository.by_api_key` answers it, kept for `ttl_s`."""

    def __init__(self, users: UserRepository, ttl_s: float, size: int) -> None:
        self.users = users
        # ttl 0: every request asks PostgreSQL (the behaviour before the cache).
        self._entries: TTLCache[bytes, User | None] | None = (
            TTLCache(maxsize=size, ttl=ttl_s) if ttl_s > 0 else None
        )
        # One PostgreSQL query per key at a time: a burst of requests with a key the cache
        # does not hold waits for the first one's answer instead of each taking a connection.
        self._pending: dict[bytes, asyncio.Future[User | None]] = {}

    async def resolve(self, secret: str) -> User | None:
        """The key's owner, or None when the key is unknown, revoked or its owner disabled."""
        if self._entries is None:
            return await self.users.by_api_key(secret)
        digest = hash_key(secret)
        if digest in self._entries:
            return self._entries[digest]
        pending = self._pending.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[User | None] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            user = await self.users.by_api_key(secret)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            del self._pending[digest]
        future.set_result(user)
        self._entries[digest] = user
        return user

    def forget_user(self, user_id: str) -> None:
        """Drops every cached key of `user_id` (after a revocation through this process)."""
        if self._entries is None:
            return
        for digest, user in list(self._entries.items()):
            if user is not None and user.id == user_id:
                self._entries.pop(digest, None)
