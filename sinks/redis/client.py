"""The Redis client: one blocking pool of `REDIS_POOL_SIZE` connections per process.

Why blocking: under load a command waits for a free connection, up to `REDIS_POOL_TIMEOUT_S`,
instead of failing: a busy pool is a queue, not an outage. Only a pool still busy at that
deadline raises, as `PoolBusy` (a `REDIS_ERRORS` member, so callers take their documented
degraded path, and logs can tell "pool too small for the load" from "Redis down"). Why short
socket timeouts: when Redis is down, callers must fall back to PostgreSQL within milliseconds,
not hang on the network.

Sentinel mode (REDIS_SENTINELS set): the pool asks the Sentinels for the current master of
REDIS_SENTINEL_MASTER before each new connection, and drops idle connections when the master
changes (redis-py's `SentinelConnectionPool`), with the same queueing and `PoolBusy` deadline.
A failover is then a few seconds of `REDIS_ERRORS` (callers degrade as when Redis is down),
after which commands reach the promoted replica without a restart.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from domain.settings import Settings

#: What a caller catches to degrade when Redis misbehaves.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


class PoolBusy(RedisConnectionError):
    """Every connection of this process's pool stayed in use past `REDIS_POOL_TIMEOUT_S`.

    Redis itself may be healthy: the pool is too small for the load (raise REDIS_POOL_SIZE)
    or the process too busy to give connections back in time.
    """


class QueuedPool(BlockingConnectionPool):
    """redis-py's blocking pool, whose deadline raises `PoolBusy` instead of a bare
    "No connection available." that reads like an outage."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):
                raise PoolBusy(
                    f"Redis pool busy: all {self.max_connections} connections in use for "
                    f"{self.timeout:g} s (REDIS_POOL_SIZE, REDIS_POOL_TIMEOUT_S)"
                ) from exc
            raise


class SentinelQueuedPool(SentinelConnectionPool, QueuedPool):
    """Sentinel's master lookup on top of the queued pool: connections go to whichever
    server the Sentinels name master, and a busy pool still raises `PoolBusy`."""


def sentinel_addresses(sentinels: str) -> list[tuple[str, int]]:
    """`host:port,host:port` (REDIS_SENTINELS) as redis-py wants it."""
    addresses = []
    for item in sentinels.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS: {item.strip()!r} is not host:port")
        addresses.append((host, int(port)))
    return addresses


def describe(exc: BaseException) -> str:
    """For log lines: whether Redis failed or only this process's pool was busy."""
    return "Redis pool busy" if isinstance(exc, PoolBusy) else "Redis unavailable"


def create_redis(
    settings: Settings,
    *,
    timeout_s: float = 0.5,
    pool_timeout_s: float | None = None,
    subscriber: bool = False,
) -> Redis:
    """`timeout_s` bounds each network operation; `pool_timeout_s` (default
    REDIS_POOL_TIMEOUT_S) how long a command queues for a free connection. With
    REDIS_SENTINELS, the master of REDIS_SENTINEL_MASTER, wherever it is now.
    `subscriber`: reads wait as long as they must (a pub/sub listener is idle until a
    message comes); connecting is still bounded by `timeout_s`."""
    options: dict[str, Any] = {
        "max_connections": settings.redis_pool_size,
        "timeout": settings.redis_pool_timeout_s if pool_timeout_s is None else pool_timeout_s,
        "socket_timeout": None if subscriber else timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": 30,
    }
    if not settings.redis_sentinels.strip():
        return Redis(connection_pool=QueuedPool.from_url(settings.redis_url, **options))
    url = parse_url(settings.redis_url)  # password, username and db; host and port unused
    auth = {k: url[k] for k in ("username", "password") if url.get(k)}
    sentinel = Sentinel(
        sentinel_addresses(settings.redis_sentinels),
        sentinel_kwargs={"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s},
    )
    client: Redis = sentinel.master_for(
        settings.redis_sentinel_master,
        redis_class=Redis,
        connection_pool_class=SentinelQueuedPool,
        db=url.get("db", 0),
        **auth,
        **options,
    )
    return client
