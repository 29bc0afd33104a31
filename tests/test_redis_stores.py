"""The Redis stores against the real Redis: meme cache, sessions, recent list, pub/sub,
idempotency records, the pool size from REDIS_POOL_SIZE, and a busy pool queueing up to
REDIS_POOL_TIMEOUT_S."""

from __future__ import annotations

import asyncio
import dataclasses
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
from memestream.testing.memes import insert_meme
from sinks.postgres.memes import MemeRecord
from sinks.redis import REDIS_ERRORS, PoolBusy, create_redis, describe
from sinks.redis.cache import MemeCache, cache_key
from sinks.redis.idempotency import IdempotencyStore
from sinks.redis.recent import RECENT_KEY, RecentMemes
from sinks.redis.sessions import Session, SessionStore
from sinks.redis.status import StatusWaiter, publish_status


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


async def test_pending_memes_are_not_cached_without_a_pending_ttl(redis: Redis) -> None:
    cache = MemeCache(redis, ttl_s=60)
    pending = record("pending")
    await cache.put(pending)
    assert await redis.exists(cache_key(pending.id)) == 0


async def test_a_pending_meme_is_cached_briefly_and_its_render_shows_after(redis: Redis) -> None:
    cache = MemeCache(redis, ttl_s=60, local_ttl_s=2.0, pending_ttl_s=0.5)
    pending = record("pending")
    rendered = dataclasses.replace(record(), id=pending.id)
    truth = {"now": pending}
    loads: list[str] = []

    async def load(meme_id: str) -> MemeRecord | None:
        loads.append(meme_id)
        return truth["now"]

    # A backlog of polls on one pending meme: one PostgreSQL read, the rest from the caches.
    for _ in range(20):
        assert (await cache.read_through(pending.id, load)).status == "pending"
    assert loads == [pending.id]
    assert 0 < await redis.pttl(cache_key(pending.id)) <= 500
    truth["now"] = rendered  # the worker rendered it
    await asyncio.sleep(0.6)  # both copies expired: the render shows
    assert (await cache.read_through(pending.id, load)).status == "rendered"
    assert len(loads) == 2
    assert 0.5 * 60_000 < await redis.pttl(cache_key(pending.id)) <= 60_000


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


async def test_more_concurrent_commands_than_the_pool_holds_all_succeed(
    stack_settings: Settings,
) -> None:
    """40 commands that each hold a connection 0.1 s, on a pool of 4: they queue (10 waves,
    ~1 s) within REDIS_POOL_TIMEOUT_S and all succeed. The pool used to fail them after its
    0.5 s socket timeout as "No connection available", which read as Redis being down."""
    settings = stack_settings.model_copy(update={"redis_pool_size": 4, "redis_pool_timeout_s": 3.0})
    client = create_redis(settings)
    key = f"test:empty:{uuid.uuid4().hex}"
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(client.blpop([key], timeout=0.1) for _ in range(40)))
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()
    assert results == [None] * 40  # each waited its 0.1 s on the empty list
    assert 0.9 < elapsed < 3.0, elapsed


async def test_a_pool_busy_past_its_deadline_is_pool_busy_not_an_outage(
    stack_settings: Settings,
) -> None:
    """One connection held 0.45 s, a second command allowed to queue 0.15 s: it fails as
    `PoolBusy` (a REDIS_ERRORS member, so callers degrade as documented: the meme cache
    counts a miss), while Redis itself answers."""
    settings = stack_settings.model_copy(
        update={"redis_pool_size": 1, "redis_pool_timeout_s": 0.15}
    )
    client = create_redis(settings)
    key = f"test:empty:{uuid.uuid4().hex}"
    try:
        holder = asyncio.create_task(client.blpop([key], timeout=0.45))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(PoolBusy) as caught:
            await client.get(key)
        waited = time.monotonic() - started
        assert isinstance(caught.value, REDIS_ERRORS)
        assert describe(caught.value) == "Redis pool busy"
        assert "all 1 connections in use for 0.15 s" in str(caught.value)
        assert 0.1 < waited < 0.4, waited
        assert await MemeCache(client, ttl_s=60).get(new_id()) is None  # busy: a miss
        assert await holder is None
        assert await client.ping()  # the pool was busy, Redis never down
    finally:
        await client.aclose()
    dead = create_redis(stack_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        with pytest.raises(REDIS_ERRORS) as down:
            await dead.ping()
        assert not isinstance(down.value, PoolBusy)
        assert describe(down.value) == "Redis unavailable"
    finally:
        await dead.aclose()


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
            asyncio.run(push(new_id(), new_id()))  # ids of no stored meme: PostgreSQL answers
            unknown = client.get("/api/meme/recent", params={"limit": 3}).json()
            assert [m["id"] for m in unknown] == [m["id"] for m in fallback]
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
