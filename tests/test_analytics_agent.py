"""The analytics worker end to end: Kafka -> chDB (owned by the worker) -> its web route -> the
API's `/api/analytics/...`; plus its Redis side duties and the DLQ for undecodable messages."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.events import ImageVariant, MemeRendered, MemeRequested, RenderStatus, View, Vote
from domain.ids import new_id
from domain.settings import Settings
from memestream.testing import processes
from memestream.testing.environment import environment
from producers.producer import EventProducer
from producers.roles import ANALYTICS
from producers.topics import MEME_RENDERED, MEME_REQUESTS, MEME_VIEWS, MEME_VOTES
from sinks.redis import create_redis
from sinks.redis.recent import RecentMemes
from sinks.redis.status import StatusWaiter
from tests.data_helpers import kafka_tail

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def analytics_worker(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The worker's web URL; it owns a chDB folder of its own (not this process' folder)."""
    folder: Path = tmp_path_factory.mktemp("worker-chdb")
    port, base_port = processes.worker_web_port("analytics")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    env = environment(stack_settings) | {
        "CLICKHOUSE_URL": f"chdb://{folder}",
        "WORKER_WEB_PORT": base_port,
        "CONSUMER_GROUP_PREFIX": prefix,
        "KAFKA_AUTO_OFFSET_RESET": "latest",
        "ANALYTICS_FLUSH_INTERVAL_S": "0.2",
    }
    args = ["-m", "streams", "worker", "--role", "analytics"]
    group = ANALYTICS.group_id_for(prefix)
    bootstrap = stack_settings.kafka_bootstrap_servers
    processes.pin_group_offsets(bootstrap, group, ANALYTICS.topics)
    with processes.process("worker-analytics", args, env) as proc:
        processes.wait_for_group(bootstrap, group, proc)
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(stack_settings: Settings, analytics_worker: str) -> Iterator[TestClient]:
    settings = stack_settings.model_copy(update={"analytics_worker_url": analytics_worker})
    with TestClient(create_app(settings)) as client:
        yield client


async def _produce_and_listen(settings: Settings, request: MemeRequested) -> str | None:
    """Produces a meme's events; once the worker's side duties show (the recent list has the
    meme), what the meme's status channel carried meanwhile: the render worker publishes a
    render's status (tests/test_render_pipeline.py), so the analytics worker must not."""
    producer = EventProducer(settings, client_id="test-analytics")
    redis = create_redis(settings)
    recent = RecentMemes(redis, 1000)
    try:
        async with StatusWaiter(redis, request.meme_id) as waiter:
            await producer.send(MEME_REQUESTS.name, request)
            outcome = MemeRendered.for_request(
                request,
                status=RenderStatus.RENDERED,
                render_ms=42.0,
                variants=[
                    ImageVariant(
                        size="full", key="k", width=1, height=1, bytes=10, media_type="image/png"
                    )
                ],
            )
            await producer.send(MEME_RENDERED.name, outcome)
            for i in range(3):
                await producer.send(MEME_VIEWS.name, View(meme_id=request.meme_id))
                await producer.send(
                    MEME_VOTES.name, Vote(meme_id=request.meme_id, user_id=f"u{i}", value=1)
                )
            deadline = time.monotonic() + 20
            while request.meme_id not in await recent.list(1000):
                assert time.monotonic() < deadline, "the worker never listed the meme"
                await asyncio.sleep(0.1)
            return await waiter.next(0.5)
    finally:
        producer.close()
        await redis.aclose()


def test_events_reach_clickhouse_and_the_api_reads_them(
    client: TestClient, stack_settings: Settings
) -> None:
    request = MemeRequested(meme_id=new_id(), template_id="drake", texts=["analytics"])
    heard = asyncio.run(_produce_and_listen(stack_settings, request))
    assert heard is None  # one publisher of a render's status: the render worker

    async def recent() -> list[str]:
        redis = create_redis(stack_settings)
        try:
            return await RecentMemes(redis, 1000).list(1000)
        finally:
            await redis.aclose()

    assert request.meme_id in asyncio.run(recent())
    deadline = time.monotonic() + 30
    views = upvotes = 0
    while time.monotonic() < deadline:
        answer = client.get(
            "/api/analytics/engagement",
            params={"minutes": 10, "step_minutes": 10, "meme_id": request.meme_id},
        )
        assert answer.status_code == 200, answer.text
        rows = answer.json()["rows"]
        views = sum(r["views"] for r in rows)
        upvotes = sum(r["upvotes"] for r in rows)
        if (views, upvotes) == (3, 3):
            break
        time.sleep(0.3)
    assert (views, upvotes) == (3, 3)
    rate = client.get("/api/analytics/generation-rate", params={"minutes": 10}).json()["rows"]
    assert sum(r["requested"] for r in rate) >= 1 and sum(r["rendered"] for r in rate) >= 1
    for path in ("top-templates", "render-latency"):
        assert client.get(f"/api/analytics/{path}").status_code == 200
    bad = client.get("/api/analytics/generation-rate", params={"minutes": 5, "step_minutes": 9})
    assert bad.status_code == 422


def test_undecodable_messages_go_to_the_dlq(
    analytics_worker: str, stack_settings: Settings
) -> None:
    key = new_id()

    async def send_garbage() -> None:
        producer = EventProducer(stack_settings, client_id="test-analytics-dlq")
        try:
            await producer.send_raw(MEME_VIEWS.name, key.encode(), b"\x00not avro")
        finally:
            producer.close()

    with kafka_tail(stack_settings, MEME_VIEWS.dlq) as tail:
        asyncio.run(send_garbage())
        deadline = time.monotonic() + 30
        found = None
        while time.monotonic() < deadline and found is None:
            message = tail.poll(0.5)
            if message is not None and message.error() is None and message.key() == key.encode():
                found = message
    assert found is not None and found.value() == b"\x00not avro"
    headers = dict(found.headers() or [])
    assert headers["dlq.original.topic"] == MEME_VIEWS.name.encode()


def test_analytics_unavailable_is_503(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(update={"analytics_worker_url": "http://127.0.0.1:1"})
    with TestClient(create_app(settings)) as client:
        answer = client.get("/api/analytics/generation-rate")
    assert answer.status_code == 503 and answer.json()["service"] == "analytics"
