"""The Redis client: one blocking pool of `REDIS_POOL_SIZE` connections per process.

Why blocking: under load a request waits briefly for a free connection instead of failing; why
short timeouts: when Redis is down, callers must fall back to PostgreSQL within milliseconds, not
hang on the network.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from domain.settings import Settings

#: What a caller catches to degrade when Redis misbehaves.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


def create_redis(settings: Settings, *, timeout_s: float = 0.5) -> Redis:
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_pool_size,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )
    return Redis(connection_pool=pool)
