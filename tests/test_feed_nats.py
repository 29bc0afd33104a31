"""The NATS transport: a Kafka -> JetStream bridge shared by the replicas, every replica
following the stream (the same event ids everywhere), request/reply status across replicas."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import nats
import orjson
import pytest

from domain.settings import Settings
from tests.feed_support import collect, feed_api, hello_cursor, private_topic, produce, rendered

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def replicas(stack_settings: Settings) -> Iterator[tuple[str, str, str]]:
    suffix = uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        topic = stack.enter_context(private_topic(stack_settings))
        env = {
            "FEED_TRANSPORT": "nats",
            "FEED_TOPIC": topic,
            "FEED_NATS_STREAM": f"TEST_FEED_{suffix}",
            "FEED_NATS_SUBJECT": f"test.feed.{suffix}",
            "CONSUMER_GROUP_PREFIX": f"test-{suffix}",
            "KAFKA_AUTO_OFFSET_RESET": "earliest",
        }
        a = stack.enter_context(feed_api(stack_settings, "api-feed-nats-a", **env))
        b = stack.enter_context(feed_api(stack_settings, "api-feed-nats-b", **env))
        yield topic, a, b
        asyncio.run(_delete_stream(stack_settings.nats_url, env["FEED_NATS_STREAM"]))


async def _delete_stream(url: str, stream: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


async def test_every_replica_delivers_the_same_events_with_the_same_ids(
    replicas: tuple[str, str, str], stack_settings: Settings
) -> None:
    topic, a, b = replicas
    cursor = await hello_cursor(f"{a}/api/feed/stream")
    assert cursor.startswith("n:")
    readers = [asyncio.create_task(collect(f"{u}/api/feed/stream", until=3)) for u in (a, b)]
    await asyncio.sleep(0.5)
    events = [rendered() for _ in range(3)]
    for event in events:
        await produce(stack_settings, topic, [event])
    got_a, got_b = await asyncio.gather(*readers)
    assert [orjson.loads(e.data)["meme_id"] for e in got_a] == [e.meme_id for e in events]
    assert [e.id for e in got_a] == [e.id for e in got_b]  # once each, bridged once
    # A client moving from replica A to B resumes with A's id.
    resumed = await collect(
        f"{b}/api/feed/stream", until=2, headers={"Last-Event-ID": got_a[0].id or ""}
    )
    assert [e.id for e in resumed] == [e.id for e in got_a[1:]]


async def test_status_over_request_reply_lists_every_replica(
    replicas: tuple[str, str, str],
) -> None:
    _, a, _ = replicas
    async with httpx.AsyncClient(timeout=10) as client:
        status = (await client.get(f"{a}/api/feed/status")).json()
    assert status["local"]["transport"] == "nats"
    assert len(status["replicas"]) == 2
    assert len({r["replica"] for r in status["replicas"]}) == 2
    assert all(r["cursor"].startswith("n:") and "connections" in r for r in status["replicas"])
