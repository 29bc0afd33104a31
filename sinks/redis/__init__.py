"""Redis, the hot and derived store: client pool, meme cache, rate limits, sessions,
idempotency records, the recent-memes list and status pub/sub. Everything here can be rebuilt
from PostgreSQL and Kafka, so callers treat Redis errors as a degraded mode, never as truth lost.
"""

from sinks.redis.client import REDIS_ERRORS, PoolBusy, create_redis, describe

__all__ = ["REDIS_ERRORS", "PoolBusy", "create_redis", "describe"]
