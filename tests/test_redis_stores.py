"""The Redis stores against the real Redis: meme cache, sessions, recent list, pub/sub,
idempotency records, and the pool size from REDIS_POOL_SIZE."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from redis.asyncio import Redis

from api.app import create_app
from domain.ids import new_id
from domain.metrics import CACHE_HITS, CACHE_MISSES
from domain.settings import Settings
from sinks.postgres.memes import MemeRecord
from sinks.redis import REDIS_ERRORS, create_redis
from sinks.redis.cache import MemeCache, cache_key
from sinks.redis.idempotency import IdempotencyStore
from sinks.redis.recent import RECENT_KEY, RecentMemes
from sinks.redis.sessions import Session, SessionStore
from sinks.redis.status import StatusWaiter, publish_status
from tests.data_helpers import insert_meme


@pytest.fixture
async def redis(stack_settings: Settings) -> AsyncIterator[Redis]:
    client = create_redis(stack_settings)
    try:
        yield client
    finally:
        await client.aclose()


def record(status: str = "rendered") -> MemeRecord:
    now = datetime.now(UTC)
    return MemeRecord(
        id=new_id(),
        created_at=now,
        template_id="drake",
        texts=["a", "b"],
        status=status,
        owner_id=None,
        format="png",
        variants=[
            {
                "size": "full",
                "key": "k",
                "width": 1,
                "height": 2,
                "bytes": 3,
                "media_type": "image/png",
            }
        ],
        render_ms=1.5,
        error=None,
        rendered_at=now,
        updated_at=now,
    )


def counts() -> tuple[float, float]:
    return (
        CACHE_HITS.labels(cache="meme")._value.get(),
        CACHE_MISSES.labels(cache="meme")._value.get(),
    )


async def test_cache_read_through_counts_and_round_trips(redis: Redis) -> None:
    cache = MemeCache(redis, ttl_s=60)
    original = record()
    loads: list[str] = []

    async def load(meme_id: str) -> MemeRecord | None:
        loads.append(meme_id)
        return original

    hits, misses = counts()
    first = await cache.read_through(original.id, load)
    second = await cache.read_through(original.id, load)
    assert first == second == original and loads == [original.id]
    assert counts() == (hits + 1, misses + 1)
    assert 0 < await redis.ttl(cache_key(original.id)) <= 60
    await cache.invalidate(original.id)
    assert await cache.get(original.id) is None


async def test_pending_memes_are_not_cached(redis: Redis) -> None:
    cache = MemeCache(redis, ttl_s=60)
    pending = record("pending")
    await cache.put(pending)
    assert await redis.exists(cache_key(pending.id)) == 0


async def test_cache_treats_a_dead_redis_as_a_miss(stack_settings: Settings) -> None:
    dead = create_redis(stack_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        cache = MemeCache(dead, ttl_s=60)
        original = record()

        async def load(meme_id: str) -> MemeRecord | None:
            return original

        assert await cache.read_through(original.id, load) == original
        with pytest.raises(REDIS_ERRORS):
            await cache.invalidate(original.id)
    finally:
        await dead.aclose()


def test_api_warms_the_cache_and_reads_through_it(stack_settings: Settings) -> None:
    meme_id = insert_meme(stack_settings)

    async def cached(drop: bool = False) -> int:
        redis = create_redis(stack_settings)
        try:
            if drop:
                await redis.delete(cache_key(meme_id))
            return int(await redis.exists(cache_key(meme_id)))
        finally:
            await redis.aclose()

    asyncio.run(cached(drop=True))
    with TestClient(create_app(stack_settings)) as client:
        # Start-up warming caches the newest rendered memes, this one included.
        deadline = time.monotonic() + 5
        while not asyncio.run(cached()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert asyncio.run(cached()) == 1
        asyncio.run(cached(drop=True))
        hits, misses = counts()
        assert client.get(f"/api/meme/{meme_id}").status_code == 200
        assert client.get(f"/api/meme/{meme_id}").status_code == 200
        assert counts() == (hits + 1, misses + 1)
    assert asyncio.run(cached()) == 1


async def test_sessions_expire_and_log_out(redis: Redis) -> None:
    store = SessionStore(redis, ttl_s=60)
    token = await store.create(Session("u1", "alice", "user"))
    assert await store.get(token) == Session("u1", "alice", "user")
    assert await store.get(token + "x") is None and await store.get("msk_nope") is None
    assert token.encode() not in b"".join(await redis.keys("session:*"))
    await store.delete(token)
    assert await store.get(token) is None


async def test_recent_list_is_capped_newest_first_and_deduplicated(redis: Redis) -> None:
    await redis.delete(RECENT_KEY)
    recent = RecentMemes(redis, max_items=3)
    await recent.push("a", "b")
    await recent.push("c", "d")
    await recent.push("b")
    assert await recent.list() == ["b", "d", "c"]
    await recent.remove("d")
    assert await recent.list() == ["b", "c"]
    await redis.delete(RECENT_KEY)


async def test_status_pub_sub_reaches_a_waiter(redis: Redis) -> None:
    meme_id = new_id()
    async with StatusWaiter(redis, meme_id) as waiter:
        assert await waiter.next(0.2) is None
        assert await publish_status(redis, meme_id, "rendered") == 1
        assert await waiter.next(2.0) == "rendered"


async def test_idempotency_claim_complete_release(redis: Redis) -> None:
    store = IdempotencyStore(redis, ttl_s=120)
    key = store.key("scope", str(uuid.uuid4()))
    assert await store.claim(key, "fp") is None
    running = await store.claim(key, "fp")
    assert running is not None and running.status is None
    await store.complete(key, "fp", 202, {"meme_id": "m"})
    done = await store.claim(key, "fp")
    assert done is not None and (done.status, done.body) == (202, {"meme_id": "m"})
    await store.release(key)
    assert await store.claim(key, "fp") is None


async def test_pool_size_comes_from_settings(stack_settings: Settings) -> None:
    client = create_redis(stack_settings.model_copy(update={"redis_pool_size": 7}))
    try:
        assert client.connection_pool.max_connections == 7
        assert await client.ping()
    finally:
        await client.aclose()


def test_recent_endpoint_lists_the_redis_list_or_falls_back(stack_settings: Settings) -> None:
    newest = insert_meme(stack_settings)

    async def push(*ids: str) -> list[str]:
        redis = create_redis(stack_settings)
        try:
            saved = await RecentMemes(redis, 1000).list(1000)
            await redis.delete(RECENT_KEY)
            await RecentMemes(redis, 1000).push(*ids)
            return saved
        finally:
            await redis.aclose()

    older = insert_meme(stack_settings)
    saved = asyncio.run(push(older, newest))
    try:
        with TestClient(create_app(stack_settings)) as client:
            listed = client.get("/api/meme/recent", params={"limit": 5}).json()
            assert [m["id"] for m in listed] == [newest, older]
            asyncio.run(push())  # an empty list: PostgreSQL answers
            fallback = client.get("/api/meme/recent", params={"limit": 3}).json()
            assert len(fallback) == 3 and all(m["status"] == "rendered" for m in fallback)
    finally:
        asyncio.run(push(*reversed(saved)))


def test_redis_down_degrades_to_postgres(stack_settings: Settings) -> None:
    meme_id = insert_meme(stack_settings)
    dead = stack_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(dead)) as client:
        assert client.get(f"/api/meme/{meme_id}").json()["id"] == meme_id
        drake = {"template_id": "drake", "texts": ["a", "b"]}
        assert client.post("/api/meme/generate", json=drake).status_code == 202
        keyed = client.post("/api/meme/generate", json=drake, headers={"Idempotency-Key": "k"})
        assert keyed.status_code == 503 and keyed.headers["retry-after"]
        login = client.post("/api/auth/login", json={"username": "nobody", "password": "x" * 9})
        assert login.status_code == 401  # PostgreSQL answers; no session is needed to refuse
        assert client.get("/api/meme/recent").status_code == 200  # PostgreSQL fallback
