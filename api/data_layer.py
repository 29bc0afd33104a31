"""The data layer's clients for request handlers: Redis (cache, limits, sessions, idempotency,
recent list, status pub/sub), the PostgreSQL repositories of users, votes and templates, the view
counter, the analytics reader and the upload cleanup task. One object on `Services.data`, opened
in the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from api.analytics_reader import AnalyticsReader
from api.api_key_cache import ApiKeyCache
from api.uploads import cleanup_forever
from api.views import ViewCounter
from domain.settings import Settings
from producers.producer import EventProducer
from sinks.postgres.lifecycle import recent_rendered
from sinks.postgres.templates import TemplateRepository
from sinks.postgres.users import UserRepository
from sinks.postgres.votes import VoteRepository
from sinks.redis import REDIS_ERRORS, create_redis
from sinks.redis.cache import MemeCache
from sinks.redis.idempotency import IdempotencyStore
from sinks.redis.ratelimit import RateLimiter
from sinks.redis.recent import RecentMemes
from sinks.redis.sessions import SessionStore
from sinks.storage import ObjectStore
from sinks.storage.lifecycle import apply_lifecycle

log = logging.getLogger(__name__)
WARM_COUNT = 500


@dataclass(slots=True)
class DataLayer:
    redis: Redis
    cache: MemeCache
    limiter: RateLimiter
    sessions: SessionStore
    idempotency: IdempotencyStore
    recent: RecentMemes
    users: UserRepository
    api_keys: ApiKeyCache
    votes: VoteRepository
    templates: TemplateRepository
    views: ViewCounter
    analytics: AnalyticsReader
    _warming: asyncio.Task[None] | None = None
    _cleanup: asyncio.Task[None] | None = None
    _lifecycle: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings,
        pool: AsyncConnectionPool,
        producer: EventProducer,
        storage: ObjectStore | None = None,
    ) -> DataLayer:
        redis = create_redis(settings)
        layer = cls(
            redis=redis,
            cache=MemeCache(
                redis,
                settings.meme_cache_ttl_s,
                local_ttl_s=settings.meme_local_cache_ttl_s,
                pending_ttl_s=settings.meme_pending_cache_ttl_s,
            ),
            limiter=RateLimiter(redis),
            sessions=SessionStore(redis, settings.session_ttl_s),
            idempotency=IdempotencyStore(redis, settings.idempotency_ttl_s),
            recent=RecentMemes(redis, settings.recent_memes_max),
            users=UserRepository(pool),
            api_keys=ApiKeyCache(
                UserRepository(pool), settings.api_key_cache_ttl_s, settings.api_key_cache_size
            ),
            votes=VoteRepository(pool),
            templates=TemplateRepository(pool),
            views=ViewCounter(settings, settings.view_queue_size, producer.codec),
            analytics=AnalyticsReader(settings),
        )
        layer.views.start()
        layer._warming = asyncio.create_task(layer.warm(pool))
        if storage is not None:
            layer._lifecycle = asyncio.create_task(layer.apply_lifecycle(settings, storage))
        folder = settings.resolved(settings.upload_tmp_dir)
        layer._cleanup = asyncio.create_task(cleanup_forever(folder))
        return layer

    async def apply_lifecycle(self, settings: Settings, storage: ObjectStore) -> None:
        """The bucket's lifecycle policy (sinks/storage/lifecycle.py), best effort at start-up."""
        try:
            if await asyncio.to_thread(apply_lifecycle, storage, settings):
                log.info("bucket lifecycle policy applied")
        except Exception as exc:
            log.warning("bucket lifecycle policy not applied: %s", exc)

    async def warm(self, pool: AsyncConnectionPool) -> None:
        """Start-up cache warming: the newest rendered memes, the likeliest to be read."""
        try:
            records = await recent_rendered(pool, WARM_COUNT)
            warmed = await self.cache.put_many(records)
            log.info("meme cache warmed with %d memes", warmed)
        except (*REDIS_ERRORS, Exception) as exc:  # warming is best effort
            log.warning("meme cache warming skipped: %s", exc)

    async def close(self) -> None:
        for task in (self._warming, self._cleanup, self._lifecycle):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.views.close()
        await self.analytics.close()
        await self.redis.aclose()
