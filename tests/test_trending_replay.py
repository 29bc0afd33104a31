"""Trending through the real Kafka, a real trending worker process and the real Redis.

A fixed trace (votes that change, repeats, duplicates produced twice, events out of order,
deletes) is produced into the topics; the worker's sorted sets must equal an offline computation
of the documented formula, written here independently of `streams/trending`. Then: crash and
recovery (SIGKILL under load, restart, tables restored from their changelogs), a delete leaving
every set within a second, and the API's fallback when Redis is down or empty.

Isolation: the worker has its own consumer group prefix and starts at the end of the topics; its
sets live in Redis database 11, and comparisons consider only this trace's memes (teammates'
tests produce into the same topics).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import redis
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from domain.events import (
    APPROVED,
    REVIEW_LABEL,
    Event,
    MemeDeleted,
    MemeRendered,
    RenderStatus,
    View,
    Vote,
)
from domain.ids import new_id
from domain.settings import Settings
from memestream.testing import processes
from memestream.testing.environment import environment
from producers.producer import EventProducer
from producers.roles import ROLES
from tests.data_helpers import kafka_tail

pytestmark = [pytest.mark.services, pytest.mark.e2e]

REDIS_DB = 11
WINDOWS = ("1h", "24h", "7d")
HALF_LIFE_S = {"1h": 3600 / 4, "24h": 86400 / 4, "7d": 7 * 86400 / 4}
VIEW_WEIGHT = 0.1
TOPIC = {
    Vote: "meme.votes",
    View: "meme.views",
    MemeDeleted: "meme.deleted",
    MemeRendered: "meme.rendered",
}


# -- the offline model ------------------------------------------------------------------------


def offline_scores(trace: list[Event], landmarks: dict[str, float]) -> dict[str, dict[str, float]]:
    """The formula from its definition: each user's latest vote (by event time, then event id)
    and each distinct view, weighted 2 ** ((t - landmark) / half-life); deleted memes absent."""
    latest: dict[tuple[str, str], tuple[float, str, int]] = {}
    views: dict[str, tuple[str, float]] = {}
    memes: set[str] = set()
    deleted: set[str] = set()
    for event in trace:
        t = event.occurred_at.timestamp()
        if isinstance(event, Vote):
            memes.add(event.meme_id)
            key = (event.meme_id, event.user_id)
            if key not in latest or (t, event.event_id) > latest[key][:2]:
                latest[key] = (t, event.event_id, event.value)
        elif isinstance(event, View):
            memes.add(event.meme_id)
            views[event.event_id] = (event.meme_id, t)
        elif isinstance(event, MemeDeleted):
            deleted.add(event.meme_id)
    scores: dict[str, dict[str, float]] = {}
    for window in WINDOWS:
        landmark, half_life = landmarks[window], HALF_LIFE_S[window]
        totals = dict.fromkeys(memes - deleted, 0.0)
        for (meme_id, _), (t, _, value) in latest.items():
            if meme_id in totals:
                totals[meme_id] += value * 2 ** ((t - landmark) / half_life)
        for meme_id, t in views.values():
            if meme_id in totals:
                totals[meme_id] += VIEW_WEIGHT * 2 ** ((t - landmark) / half_life)
        scores[window] = totals
    return scores


def ranking(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda m: (scores[m], m), reverse=True)


def make_trace(seed: int, memes: int, users: int, events: int, now: float) -> list[Event]:
    """Event times in the last 5 minutes, produced in an order jittered by up to 100 s."""
    rng = random.Random(seed)
    meme_ids = [new_id() for _ in range(memes)]
    popularity = [rng.paretovariate(1.2) for _ in meme_ids]
    timed: list[tuple[float, Event]] = []
    for meme_id in meme_ids:  # every meme gets a few views, so no score is (nearly) zero
        for _ in range(3):
            t = now - rng.uniform(0, 300)
            timed.append((t, View(meme_id=meme_id, occurred_at=_at(t))))
    for _ in range(events):
        meme_id = rng.choices(meme_ids, popularity)[0]
        t = now - rng.uniform(0, 300)
        if rng.random() < 0.6:
            event: Event = View(meme_id=meme_id, user_id=None, occurred_at=_at(t))
        else:
            value = rng.choices([1, -1, 0], [6, 3, 1])[0]
            user = f"user-{rng.randrange(users)}"
            event = Vote(meme_id=meme_id, user_id=user, value=value, occurred_at=_at(t))
        timed.append((t, event))
    order = sorted(timed, key=lambda te: te[0] + rng.uniform(0, 100))
    trace = [e for _, e in order]
    for i in rng.sample(range(len(trace)), len(trace) // 20):  # at-least-once duplicates
        trace.insert(rng.randrange(i, len(trace)), trace[i])
    return trace


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(round(t, 3), UTC)


# -- processes and clients --------------------------------------------------------------------


@pytest.fixture(scope="module")
def trending_settings(stack_settings: Settings) -> Settings:
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    settings = stack_settings.model_copy(update={"redis_url": f"{base}/{REDIS_DB}"})
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter("trending:*"))
    if keys:
        client.delete(*keys)
    return settings


def worker_env(settings: Settings, prefix: str) -> dict[str, str]:
    return environment(settings) | {
        "WORKER_WEB_PORT": processes.worker_web_port("trending")[1],
        "CONSUMER_GROUP_PREFIX": prefix,
        "KAFKA_AUTO_OFFSET_RESET": "latest",
        "TRENDING_GRACE_S": "600",
        "TRENDING_TOP_N": "5000",
        "TRENDING_TICK_S": "0.5",
        "TRENDING_BATCH_WITHIN_S": "0.02",
        "PYTHONUNBUFFERED": "1",
    }


def start_worker(
    settings: Settings, prefix: str, name: str, *, new_group: bool = True
) -> subprocess.Popen[bytes]:
    if new_group:
        processes.pin_group_offsets(
            settings.kafka_bootstrap_servers, f"{prefix}-trending", ROLES["trending"].topics
        )
    processes.ARTIFACTS.mkdir(exist_ok=True)
    log = (processes.ARTIFACTS / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "--role", "trending"],
        cwd=processes.PROJECT_ROOT,
        env={**os.environ, **worker_env(settings, prefix)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    processes.wait_for_group(settings.kafka_bootstrap_servers, f"{prefix}-trending", proc)
    return proc


def drop_worker_topics(settings: Settings, prefix: str) -> None:
    """The worker's changelog and leader topics and its group: nothing of a test run stays."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{prefix}-")]
    futures = list(admin.delete_topics(topics, operation_timeout=30).values()) if topics else []
    futures += admin.delete_consumer_groups([f"{prefix}-trending"], request_timeout=30).values()
    for future in futures:
        future.exception()


@pytest.fixture(scope="module")
def worker(trending_settings: Settings) -> Iterator[str]:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    proc = start_worker(trending_settings, prefix, "worker-trending")
    try:
        yield prefix
    finally:
        processes.stop(proc)
        drop_worker_topics(trending_settings, prefix)


@pytest.fixture
def rdb(trending_settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(trending_settings.redis_url, decode_responses=True)
    yield client
    client.close()


async def produce(settings: Settings, events: list[Event], rate: float | None = None) -> None:
    producer = EventProducer(settings, client_id="test-trending")
    try:
        if rate is None:
            await asyncio.gather(*(producer.send(TOPIC[type(e)], e) for e in events))
            return
        chunk = max(1, int(rate / 20))
        for i in range(0, len(events), chunk):
            part = events[i : i + chunk]
            await asyncio.gather(*(producer.send(TOPIC[type(e)], e) for e in part))
            await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(producer.close)


def landmarks(rdb: redis.Redis) -> dict[str, float] | None:
    metas = {w: rdb.hgetall(f"trending:{w}:meta") for w in WINDOWS}
    if not all(metas.values()):
        return None
    return {w: float(m["landmark"]) for w, m in metas.items()}


def redis_scores(rdb: redis.Redis, memes: set[str]) -> dict[str, dict[str, float]]:
    return {
        w: {m: s for m, s in rdb.zrange(f"trending:{w}", 0, -1, withscores=True) if m in memes}
        for w in WINDOWS
    }


def mismatch(rdb: redis.Redis, trace: list[Event]) -> str | None:
    """Why Redis differs from the offline model, or None when it equals it."""
    marks = landmarks(rdb)
    if marks is None:
        return "no landmark yet"
    expected = offline_scores(trace, marks)
    actual = redis_scores(rdb, {e.meme_id for e in trace})
    for window in WINDOWS:
        want, got = expected[window], actual[window]
        if set(want) != set(got):
            missing, extra = set(want) - set(got), set(got) - set(want)
            return f"{window}: members differ: missing {missing}, extra {extra}"
        for meme_id, score in want.items():
            if got[meme_id] != pytest.approx(score, rel=1e-9, abs=1e-9):
                return f"{window}: {meme_id} scored {got[meme_id]}, expected {score}"
        if ranking(got) != ranking(want):
            return f"{window}: ranking differs"
    return None


def wait_until_matches(rdb: redis.Redis, trace: list[Event], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    reason = mismatch(rdb, trace)
    while reason is not None and time.monotonic() < deadline:
        time.sleep(0.2)
        reason = mismatch(rdb, trace)
    assert reason is None, reason


# -- tests ------------------------------------------------------------------------------------


def test_the_worker_declares_its_changelog_topics(worker: str, trending_settings: Settings) -> None:
    """The broker does not auto-create topics: Faust declares its changelogs itself."""
    admin = AdminClient({"bootstrap.servers": trending_settings.kafka_bootstrap_servers})
    names = [f"{worker}-trending-state-changelog"]
    deadline = time.monotonic() + 15
    topics = admin.list_topics(timeout=10).topics
    while not all(n in topics for n in names) and time.monotonic() < deadline:
        time.sleep(0.5)  # a just-created topic reaches the metadata a moment later
        topics = admin.list_topics(timeout=10).topics
    for name in names:
        assert name in topics, name
        assert len(topics[name].partitions) == 6
        resource = ConfigResource(ResourceType.TOPIC, name)
        config = admin.describe_configs([resource])[resource].result(timeout=10)
        assert "compact" in config["cleanup.policy"].value


async def test_replay_of_a_fixed_trace_equals_the_offline_computation(
    worker: str, trending_settings: Settings, rdb: redis.Redis
) -> None:
    trace = make_trace(seed=5, memes=25, users=30, events=1500, now=time.time())
    deletes = [MemeDeleted(meme_id=m) for m in sorted({e.meme_id for e in trace})[:2]]
    await produce(trending_settings, trace + deletes)
    wait_until_matches(rdb, trace + deletes)


async def test_a_changed_vote_moves_the_score_both_ways(
    worker: str, trending_settings: Settings, rdb: redis.Redis
) -> None:
    meme_id, now = new_id(), time.time()
    trace: list[Event] = [View(meme_id=meme_id, occurred_at=_at(now - 30))]
    await produce(trending_settings, trace)
    wait_until_matches(rdb, trace)
    low = rdb.zscore("trending:1h", meme_id)
    for value, age in ((1, 20), (-1, 10), (0, 5)):
        trace.append(Vote(meme_id=meme_id, user_id="ann", value=value, occurred_at=_at(now - age)))
        await produce(trending_settings, trace[-1:])
        wait_until_matches(rdb, trace)
        score = rdb.zscore("trending:1h", meme_id)
        assert score is not None and low is not None
        assert {1: score > low, -1: score < 0, 0: score == pytest.approx(low)}[value]


async def test_duplicate_delivery_counts_once(
    worker: str, trending_settings: Settings, rdb: redis.Redis
) -> None:
    meme_id, now = new_id(), time.time()
    view = View(meme_id=meme_id, occurred_at=_at(now - 3))
    vote = Vote(meme_id=meme_id, user_id="bob", value=1, occurred_at=_at(now - 2))
    await produce(trending_settings, [view, vote, view, vote, view])
    wait_until_matches(rdb, [view, vote])
    expected = offline_scores([view, vote], landmarks(rdb) or {})["1h"][meme_id]
    assert rdb.zscore("trending:1h", meme_id) == pytest.approx(expected, rel=1e-9)


async def test_an_undecodable_vote_is_dead_lettered_and_the_next_ones_count(
    worker: str, trending_settings: Settings, rdb: redis.Redis
) -> None:
    meme_id, now = new_id(), time.time()
    poison = b"\x00not avro"
    vote = Vote(meme_id=meme_id, user_id="cat", value=1, occurred_at=_at(now - 1))
    with kafka_tail(trending_settings, "meme.votes.dlq") as tail:
        producer = EventProducer(trending_settings, client_id="test-trending-dlq")
        try:  # the same key, so the same partition: the vote comes after the poison
            await producer.send_raw("meme.votes", meme_id.encode(), poison)
        finally:
            await asyncio.to_thread(producer.close)
        await produce(trending_settings, [vote])
        wait_until_matches(rdb, [vote])
        deadline, parked = time.monotonic() + 30, None
        while parked is None and time.monotonic() < deadline:
            message = tail.poll(0.5)
            if message is None or message.error() is not None or message.value() != poison:
                continue
            headers = dict(message.headers() or [])
            if headers.get("dlq.consumer.group") == f"{worker}-trending".encode():
                parked = headers  # analytics parks its own copy, with its own group
    assert parked is not None, "the trending worker did not dead-letter the poison"
    assert parked["dlq.original.topic"] == b"meme.votes"
    assert parked["dlq.error.class"] == b"SerializationError"


async def test_a_deleted_meme_leaves_every_set_within_a_second(
    worker: str, trending_settings: Settings, rdb: redis.Redis
) -> None:
    meme_id, now = new_id(), time.time()
    votes = [
        Vote(meme_id=meme_id, user_id=f"u{i}", value=1, occurred_at=_at(now - i)) for i in range(5)
    ]
    await produce(trending_settings, votes)
    wait_until_matches(rdb, list(votes))
    producer = EventProducer(trending_settings, client_id="test-trending-delete")
    try:
        await producer.send("meme.deleted", MemeDeleted(meme_id=meme_id))
        acknowledged = time.monotonic()
        keys = [f"trending:{w}" for w in WINDOWS]
        while any(rdb.zscore(k, meme_id) is not None for k in keys):
            assert time.monotonic() - acknowledged < 1.0, "still trending a second after delete"
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - acknowledged
    finally:
        await asyncio.to_thread(producer.close)
    assert elapsed < 1.0
    # Votes after the delete do not bring it back.
    await produce(trending_settings, [Vote(meme_id=meme_id, user_id="late", value=1)])
    await asyncio.sleep(1.5)
    assert all(rdb.zscore(k, meme_id) is None for k in keys)


async def test_a_meme_held_back_for_review_leaves_every_set(
    worker: str, trending_settings: Settings, rdb: redis.Redis
) -> None:
    """Moderation flags a meme after it gathered votes: it stops trending (the feed holds it
    back too), and later votes do not bring it back."""
    meme_id, now = new_id(), time.time()
    votes = [
        Vote(meme_id=meme_id, user_id=f"u{i}", value=1, occurred_at=_at(now - i)) for i in range(3)
    ]
    await produce(trending_settings, votes)
    wait_until_matches(rdb, list(votes))
    flagged = MemeRendered(
        meme_id=meme_id,
        template_id="drake",
        status=RenderStatus.RENDERED,
        variants=[],
        render_ms=12.0,
        requested_at=_at(now - 30),
        moderation="flagged",
        moderation_reason="review",
    )
    await produce(trending_settings, [flagged])
    keys = [f"trending:{w}" for w in WINDOWS]
    deadline = time.monotonic() + 5
    while any(rdb.zscore(k, meme_id) is not None for k in keys):
        assert time.monotonic() < deadline, "a flagged meme still trends"
        await asyncio.sleep(0.05)
    await produce(trending_settings, [Vote(meme_id=meme_id, user_id="late", value=1)])
    await asyncio.sleep(1.5)
    assert all(rdb.zscore(k, meme_id) is None for k in keys)


async def test_an_approved_meme_trends_again_with_the_votes_it_had(
    worker: str, trending_settings: Settings, rdb: redis.Redis
) -> None:
    """An admin approves a flagged meme (the MemeRendered api/routes/review.py produces): it
    is back in every set with the score of its earlier votes, and new votes count again."""
    meme_id, now = new_id(), time.time()
    votes: list[Event] = [
        Vote(meme_id=meme_id, user_id=f"u{i}", value=1, occurred_at=_at(now - i)) for i in range(3)
    ]
    await produce(trending_settings, votes)
    wait_until_matches(rdb, votes)
    review = {
        "meme_id": meme_id,
        "template_id": "drake",
        "variants": [],
        "render_ms": 12.0,
        "requested_at": _at(now - 30),
    }
    flagged = MemeRendered(status=RenderStatus.RENDERED, moderation="flagged", **review)
    await produce(trending_settings, [flagged])
    keys = [f"trending:{w}" for w in WINDOWS]
    deadline = time.monotonic() + 5
    while any(rdb.zscore(k, meme_id) is not None for k in keys):
        assert time.monotonic() < deadline, "a flagged meme still trends"
        await asyncio.sleep(0.05)
    approved = MemeRendered(
        status=RenderStatus.RENDERED, moderation=APPROVED, moderation_label=REVIEW_LABEL, **review
    )
    await produce(trending_settings, [approved])
    wait_until_matches(rdb, votes, timeout=10)
    late = Vote(meme_id=meme_id, user_id="late", value=1, occurred_at=_at(time.time()))
    await produce(trending_settings, [late])
    wait_until_matches(rdb, [*votes, late], timeout=10)


async def test_sigkill_under_load_then_restart_restores_the_tables(
    trending_settings: Settings,
) -> None:
    # A Redis database of its own: the module's other worker must not fill these sets.
    base = trending_settings.redis_url.rsplit("/", 1)[0]
    trending_settings = trending_settings.model_copy(update={"redis_url": f"{base}/14"})
    rdb = redis.Redis.from_url(trending_settings.redis_url, decode_responses=True)
    rdb.flushdb()
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    trace = make_trace(seed=11, memes=40, users=200, events=6000, now=time.time())
    log = processes.ARTIFACTS / "worker-trending-crash.log"
    log.unlink(missing_ok=True)
    pins = processes.pin_group_offsets(
        trending_settings.kafka_bootstrap_servers, f"{prefix}-trending", ROLES["trending"].topics
    )
    proc = start_worker(trending_settings, prefix, "worker-trending-crash", new_group=False)
    try:
        load = asyncio.create_task(produce(trending_settings, trace, rate=1000))
        # Under load, once every partition has a committed offset (the restarted worker would
        # otherwise start at the end of the topic, the tests' reset policy, and skip the rest).
        await asyncio.to_thread(wait_for_commits, trending_settings, f"{prefix}-trending", pins)
        assert not load.done()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        await load
        for w in WINDOWS:  # nothing left to lean on but the changelogs
            rdb.delete(f"trending:{w}")
        proc = start_worker(trending_settings, prefix, "worker-trending-crash", new_group=False)
        wait_until_matches(rdb, trace, timeout=60)
    finally:
        processes.stop(proc)
        drop_worker_topics(trending_settings, prefix)
        rdb.flushdb()
        rdb.close()
    restored = [line for line in log.read_text().splitlines() if "trending state loaded" in line]
    assert len(restored) >= 2 and " 0 memes" not in restored[-1], restored


async def test_partitions_that_move_between_workers_keep_every_count(
    trending_settings: Settings,
) -> None:
    """A second worker joins under load (half the partitions move to it, read back from the
    changelog in bulk), then is SIGKILLed (they move back, read again): the sets still equal the
    offline computation, so no event was lost or counted twice across the moves."""
    base = trending_settings.redis_url.rsplit("/", 1)[0]
    trending_settings = trending_settings.model_copy(update={"redis_url": f"{base}/15"})
    rdb = redis.Redis.from_url(trending_settings.redis_url, decode_responses=True)
    rdb.flushdb()
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    trace = make_trace(seed=12, memes=40, users=200, events=6000, now=time.time())
    names = ("worker-trending-move-a", "worker-trending-move-b")
    for name in names:
        (processes.ARTIFACTS / f"{name}.log").unlink(missing_ok=True)
    first = start_worker(trending_settings, prefix, names[0])
    second: subprocess.Popen[bytes] | None = None
    try:
        load = asyncio.create_task(produce(trending_settings, trace, rate=300))
        await asyncio.sleep(2)
        second = await asyncio.to_thread(
            start_worker, trending_settings, prefix, names[1], new_group=False
        )
        joined = processes.ARTIFACTS / f"{names[1]}.log"
        deadline = time.monotonic() + 30
        while "trending changelog read" not in joined.read_text():
            assert time.monotonic() < deadline, "the second worker read no changelog"
            await asyncio.sleep(0.2)
        assert not load.done()
        os.kill(second.pid, signal.SIGKILL)
        second.wait()
        await load
        wait_until_matches(rdb, trace, timeout=60)
    finally:
        for proc in (first, second):
            if proc is not None:
                processes.stop(proc)
        drop_worker_topics(trending_settings, prefix)
        rdb.flushdb()
        rdb.close()
    reads = [
        line
        for name in names
        for line in (processes.ARTIFACTS / f"{name}.log").read_text().splitlines()
        if "trending changelog read" in line and " 0 records" not in line
    ]
    assert len(reads) >= 2, reads  # the joiner's read, and the survivor's after the kill


def wait_for_commits(
    settings: Settings, group: str, since: dict[tuple[str, int], int], timeout: float = 20.0
) -> None:
    """Until the group committed past `since` on every partition of votes and views."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    wanted = [TopicPartition(t, p) for t in ("meme.votes", "meme.views") for p in range(6)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = [ConsumerGroupTopicPartitions(group, wanted)]
        result = admin.list_consumer_group_offsets(request)[group].result(timeout=10)
        if all(tp.offset > since[(tp.topic, tp.partition)] for tp in result.topic_partitions):
            return
        time.sleep(0.2)
    raise TimeoutError(f"{group} committed no offset on some partitions")


# -- the API's fallbacks ----------------------------------------------------------------------


def start_api(settings: Settings, redis_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = processes.free_port()
    env = environment(settings) | {"API_PORT": str(port), "REDIS_URL": redis_url}
    args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
    processes.ARTIFACTS.mkdir(exist_ok=True)
    log = (processes.ARTIFACTS / "api-trending.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=processes.PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    processes.wait_for_http(f"{url}/health", proc)
    return proc, url


@pytest.fixture(scope="module")
async def voted_meme(trending_settings: Settings) -> str:
    """A meme with three up-votes in PostgreSQL, in the refreshed `trending_daily` view."""
    from memestream.testing.memes import insert_meme
    from sinks.postgres.pool import create_pool
    from sinks.postgres.users import UserRepository
    from sinks.postgres.votes import VoteRepository, refresh_trending_daily

    meme_id = insert_meme(trending_settings)  # rendered: only public memes trend
    pool = create_pool(trending_settings)
    await pool.open()
    try:
        users = UserRepository(pool)
        for i in range(3):
            user = await users.create(f"tr_{uuid.uuid4().hex[:12]}_{i}", "correct horse battery")
            await VoteRepository(pool).cast(meme_id, user.id, 1)
        await refresh_trending_daily(pool)
    finally:
        await pool.close()
    return meme_id


async def test_redis_down_answers_from_a_fallback_store(
    trending_settings: Settings, voted_meme: str
) -> None:
    proc, url = start_api(trending_settings, "redis://127.0.0.1:1/0")
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            params = {"window": "24h", "limit": 100}
            response = await client.get("/api/meme/trending", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["source"] in ("clickhouse", "postgres")
            assert body["rewarmed"] is False
            if body["source"] == "postgres":
                assert voted_meme in [item["meme_id"] for item in body["items"]]
            bad = await client.get("/api/meme/trending", params={"window": "2h"})
            assert bad.status_code == 422
    finally:
        processes.stop(proc)


async def test_an_empty_set_is_answered_by_a_fallback_and_rewarmed(
    trending_settings: Settings, voted_meme: str
) -> None:
    base = trending_settings.redis_url.rsplit("/", 1)[0]
    empty_db = f"{base}/12"
    client = redis.Redis.from_url(empty_db, decode_responses=True)
    client.delete("trending:7d", "trending:7d:warm", "trending:7d:meta")
    proc, url = start_api(trending_settings, empty_db)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            first = (await http.get("/api/meme/trending", params={"window": "7d"})).json()
            assert first["source"] in ("clickhouse", "postgres")
            assert first["rewarmed"] is True
            assert client.get("trending:7d:warm") == "1"
            second = (await http.get("/api/meme/trending", params={"window": "7d"})).json()
            assert second["source"] == "redis"
            assert [i["meme_id"] for i in second["items"]] == [i["meme_id"] for i in first["items"]]
            if first["next_cursor"]:
                page = await http.get(
                    "/api/meme/trending", params={"window": "7d", "cursor": first["next_cursor"]}
                )
                assert page.json()["items"][0]["rank"] == len(first["items"]) + 1
            bad = await http.get("/api/meme/trending", params={"cursor": "nope"})
            assert bad.status_code == 422
    finally:
        processes.stop(proc)
        client.delete("trending:7d", "trending:7d:warm")
        client.close()
