"""`memestream rebuild`: the derived stores recomputed from Kafka by their own workers.

Real Kafka, a real trending worker process and the real Redis (database 12, so the shared
`trending:*` sets are never touched). The trace, its producer and the offline model are the
ones tests/test_trending_replay.py checks the worker against.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from confluent_kafka.admin import AdminClient
from typer.testing import CliRunner

from domain.settings import Settings, get_settings
from memestream.cli import app as cli
from memestream.cli import console, err_console
from memestream.testing import processes
from memestream.testing.environment import environment
from producers.offsets import OffsetReader
from producers.roles import ANALYTICS, TRENDING
from streams.rebuild import RebuildError, changelog_topic, rebuild
from tests.test_trending_replay import (
    drop_worker_topics,
    make_trace,
    mismatch,
    produce,
    start_worker,
    wait_until_matches,
)

pytestmark = [pytest.mark.services, pytest.mark.e2e]

REDIS_DB = 12


@pytest.fixture
def settings(stack_settings: Settings) -> Iterator[Settings]:
    """The stack on a private Redis database and consumer-group prefix."""
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    prefix = f"test-rebuild-{uuid.uuid4().hex[:8]}"
    ours = stack_settings.model_copy(
        update={"redis_url": f"{base}/{REDIS_DB}", "consumer_group_prefix": prefix}
    )
    client = redis.Redis.from_url(ours.redis_url)
    client.flushdb()
    client.close()
    yield ours
    drop_worker_topics(ours, prefix)
    admin = AdminClient({"bootstrap.servers": ours.kafka_bootstrap_servers})
    for future in admin.delete_consumer_groups([f"{prefix}-analytics"]).values():
        future.exception()


@pytest.fixture
def rdb(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def group_offsets(settings: Settings) -> Iterator[OffsetReader]:
    """The analytics group's offsets and the ends of its topics' partitions."""
    group = ANALYTICS.group_id_for(settings.consumer_group_prefix)
    reader = OffsetReader({"bootstrap.servers": settings.kafka_bootstrap_servers}, group)
    yield reader
    reader.close()


def partitions(reader: OffsetReader, topics: tuple[str, ...]) -> list[tuple[str, int]]:
    return [(topic, p) for topic in topics for p in reader.partitions(topic)]


async def test_trending_is_recomputed_from_kafka_after_redis_lost_it(
    settings: Settings, rdb: redis.Redis
) -> None:
    prefix = settings.consumer_group_prefix
    since = datetime.now(UTC) - timedelta(seconds=1)
    worker = start_worker(settings, prefix, "worker-trending-rebuild")
    try:
        trace = make_trace(seed=11, memes=12, users=15, events=400, now=time.time())
        await produce(settings, trace)
        wait_until_matches(rdb, trace)
        with pytest.raises(RebuildError, match="live member"):
            # refused: a live worker would commit its offsets over the rewind
            await asyncio.to_thread(rebuild, settings, "trending", since)
    finally:
        processes.stop(worker)

    # The derived store is lost, and something foreign was written into it meanwhile.
    rdb.flushdb()
    rdb.zadd("trending:1h", {"not-a-meme": 1e9})
    done = await asyncio.to_thread(rebuild, settings, "trending", since)
    assert done.deleted_topics == [changelog_topic(settings)]
    assert done.deleted_keys == 1
    votes_and_views = sum(1 for e in trace if type(e).__name__ in ("Vote", "View"))
    assert done.replay["meme.votes"] + done.replay["meme.views"] >= votes_and_views
    assert rdb.zscore("trending:1h", "not-a-meme") is None

    worker = start_worker(settings, prefix, "worker-trending-rebuild", new_group=False)
    try:
        wait_until_matches(rdb, trace, timeout=60.0)
        assert mismatch(rdb, trace) is None
    finally:
        processes.stop(worker)


def test_analytics_rewinds_its_group_and_deletes_nothing(
    settings: Settings, group_offsets: OffsetReader
) -> None:
    """ClickHouse's events dedupe by event id, so the analytics rebuild only rewinds."""
    done = rebuild(settings, "analytics")
    assert done.group == group_offsets.group
    assert done.deleted_topics == [] and done.deleted_keys == 0
    assert set(done.replay) == set(ANALYTICS.topics)
    keys = partitions(group_offsets, ANALYTICS.topics)
    earliest, latest = group_offsets.earliest(keys), group_offsets.latest(keys)
    assert group_offsets.committed(keys) == earliest
    assert done.events == sum(latest[key] - earliest[key] for key in keys)


def test_a_since_after_the_last_event_starts_at_the_end(
    settings: Settings, group_offsets: OffsetReader
) -> None:
    done = rebuild(settings, "analytics", since=datetime.now(UTC) + timedelta(hours=1))
    assert done.events == 0
    keys = partitions(group_offsets, ANALYTICS.topics)
    assert group_offsets.committed(keys) == group_offsets.latest(keys)


@pytest.fixture
def cli_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """What the command reads (`get_settings()`, from the environment) set to ours."""
    for name, value in environment(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CONSUMER_GROUP_PREFIX", settings.consumer_group_prefix)
    monkeypatch.setattr(console, "_width", 200)
    monkeypatch.setattr(err_console, "_width", 200)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_the_command_refuses_a_store_that_is_not_derived(cli_settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["rebuild", "render"])
    assert result.exit_code == 1
    assert "not a derived store" in result.output


def test_the_command_rebuilds_and_says_what_to_replay(cli_settings: Settings) -> None:
    settings = cli_settings
    result = CliRunner().invoke(cli, ["rebuild", "analytics", "trending"])
    assert result.exit_code == 0, result.output
    assert (
        f"group {ANALYTICS.group_id_for(settings.consumer_group_prefix)} rewound" in result.output
    )
    assert f"group {TRENDING.group_id_for(settings.consumer_group_prefix)} rewound" in result.output
    assert "meme.votes" in result.output
