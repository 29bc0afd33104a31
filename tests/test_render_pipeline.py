"""The render pipeline in-process against the real stores: uploads at the frame cap render, a
meme deleted while it renders leaves no image behind, and the worker publishes the status."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from domain.events import MemeRendered, MemeRequested, RenderStatus
from domain.ids import new_id
from domain.settings import Settings
from memestream.testing.memes import insert_meme
from producers.producer import EventProducer
from sinks.postgres.lifecycle import soft_delete
from sinks.postgres.memes import MemeRepository
from sinks.postgres.pool import create_pool
from sinks.postgres.templates import TemplateRepository
from sinks.redis import create_redis
from sinks.redis.status import StatusWaiter
from sinks.storage import ObjectNotFound, object_store
from streams.render import RenderPipeline, RenderPool, RenderPoolClosed
from tests.data_helpers import meme_status, register

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
async def pipeline(stack_settings: Settings) -> AsyncIterator[RenderPipeline]:
    db = create_pool(stack_settings)
    await db.open(wait=False)
    storage = object_store(stack_settings)
    await asyncio.to_thread(storage.ensure_bucket)
    producer = EventProducer(stack_settings, client_id="test-render-pipeline")
    pool = RenderPool(1)
    redis = create_redis(stack_settings)
    try:
        yield RenderPipeline(
            stack_settings,
            producer,
            MemeRepository(db),
            storage,
            pool,
            redis,
            templates=TemplateRepository(db),
        )
    finally:
        await asyncio.to_thread(producer.close)
        pool.close()
        await redis.aclose()
        await db.close()


@pytest.fixture(scope="module")
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings)) as client:
        yield client


def _gif(frames: int, size: tuple[int, int] = (48, 48)) -> bytes:
    """An animation whose frames all differ (GIF writers merge identical ones)."""
    images = []
    for i in range(frames):
        im = Image.new("RGB", size, (i % 256, (i * 7) % 256, (i * 13) % 256))
        im.putpixel((i % size[0], (i // size[0]) % size[1]), (255, 255, 255))
        images.append(im.convert("P", palette=Image.Palette.ADAPTIVE))
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    return buffer.getvalue()


def _remove(pipeline: RenderPipeline, outcome: MemeRendered) -> None:
    for variant in outcome.variants:
        pipeline.storage.delete(variant.key)


async def _handle(pipeline: RenderPipeline, request: MemeRequested) -> MemeRendered:
    outcome = await pipeline.handle(
        pipeline.producer.codec.encode(request), key=None, partition=0, offset=0, headers=[]
    )
    assert outcome is not None
    return outcome


async def test_an_upload_at_max_frames_renders_every_frame(
    pipeline: RenderPipeline, client: TestClient, stack_settings: Settings
) -> None:
    """The upload's cap and the worker's are one setting: what is accepted renders."""
    cap = stack_settings.max_frames
    account = register(client, "cap")
    client.cookies.clear()
    response = client.post(
        "/api/templates",
        headers=account["headers"],
        data={"name": "at the cap"},
        files={"file": ("cap.gif", _gif(cap), "image/gif")},
    )
    assert response.status_code == 201, response.text
    assert response.json()["frame_count"] == cap
    request = MemeRequested(meme_id=new_id(), template_id=response.json()["id"], texts=["at"])
    outcome = await pipeline.render(request)
    try:
        assert outcome.status is RenderStatus.RENDERED, outcome.error
        full = next(v for v in outcome.variants if v.size == "full")
        stored = await asyncio.to_thread(pipeline.storage.get, full.key)
        with Image.open(io.BytesIO(stored.data)) as image:
            assert image.n_frames == cap
    finally:
        await asyncio.to_thread(_remove, pipeline, outcome)


async def test_a_meme_deleted_while_rendering_leaves_no_images(
    pipeline: RenderPipeline, stack_settings: Settings
) -> None:
    """The delete lands after the API read the (pending, imageless) row and before the worker
    recorded the render: the worker finds the row deleted and removes what it stored."""
    meme_id = insert_meme(stack_settings, status="pending", texts=["gone", "soon"])
    await soft_delete(pipeline.memes.pool, meme_id)
    request = MemeRequested(meme_id=meme_id, template_id="drake", texts=["gone", "soon"])
    outcome = await _handle(pipeline, request)
    assert outcome.status is RenderStatus.RENDERED and outcome.variants
    for variant in outcome.variants:
        with pytest.raises(ObjectNotFound):
            await asyncio.to_thread(pipeline.storage.get, variant.key)
    assert meme_status(stack_settings, meme_id) == "deleted"


async def test_a_meme_that_stays_keeps_its_images(
    pipeline: RenderPipeline, stack_settings: Settings
) -> None:
    meme_id = insert_meme(stack_settings, status="pending", texts=["here", "to stay"])
    request = MemeRequested(meme_id=meme_id, template_id="drake", texts=["here", "to stay"])
    outcome = await _handle(pipeline, request)
    try:
        assert outcome.status is RenderStatus.RENDERED and outcome.variants
        for variant in outcome.variants:
            stored = await asyncio.to_thread(pipeline.storage.get, variant.key)
            assert len(stored.data) == variant.bytes
        assert meme_status(stack_settings, meme_id) == "rendered"
    finally:
        await asyncio.to_thread(_remove, pipeline, outcome)


async def test_an_event_the_validator_refuses_fails_with_its_reason_and_is_dead_lettered(
    pipeline: RenderPipeline, stack_settings: Settings
) -> None:
    """An event that skipped the API (rotate:nan, which the API answers 422) is refused by the
    same validator: the meme fails with the reason and the message is parked in the DLQ."""
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    from producers.topics import MEME_REQUESTS

    meme_id = insert_meme(stack_settings, status="pending", texts=["never"])
    request = MemeRequested(
        meme_id=meme_id, template_id="drake", texts=["never"], transform=["rotate:nan"]
    )
    key = f"refused-{uuid.uuid4().hex}".encode()
    bootstrap = stack_settings.kafka_bootstrap_servers
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(MEME_REQUESTS.dlq, timeout=10).topics[
            MEME_REQUESTS.dlq
        ].partitions  # fmt: skip
        starts = [
            TopicPartition(MEME_REQUESTS.dlq, p, consumer.get_watermark_offsets(
                TopicPartition(MEME_REQUESTS.dlq, p), timeout=10)[1])
            for p in partitions
        ]  # fmt: skip
        outcome = await pipeline.handle(
            pipeline.producer.codec.encode(request), key=key, partition=0, offset=0, headers=[]
        )
        assert outcome is not None and outcome.status is RenderStatus.FAILED
        assert outcome.error and "finite" in outcome.error
        assert meme_status(stack_settings, meme_id) == "failed"
        consumer.assign(starts)
        headers: dict[str, bytes] = {}
        for _ in range(40):
            message = consumer.poll(0.5)
            if message is not None and not message.error() and message.key() == key:
                headers = dict(message.headers() or [])
                break
        assert b"finite" in headers.get("dlq.error.message", b""), headers
    finally:
        consumer.close()


async def test_the_render_worker_publishes_the_status_once_postgres_has_it(
    pipeline: RenderPipeline, stack_settings: Settings
) -> None:
    """The worker that knows first tells a `?wait=` client: the waiter wakes on pub/sub and
    the row it then reads is final (the analytics worker no longer publishes renders)."""
    meme_id = insert_meme(stack_settings, status="pending", texts=["heard", "at once"])
    request = MemeRequested(meme_id=meme_id, template_id="drake", texts=["heard", "at once"])
    async with StatusWaiter(pipeline.redis, meme_id) as waiter:
        outcome = await _handle(pipeline, request)
        try:
            heard = await waiter.next(5.0)
            assert heard == "rendered"  # the worker published the status change
            assert meme_status(stack_settings, meme_id) == heard
        finally:
            await asyncio.to_thread(_remove, pipeline, outcome)
    refused = MemeRequested(meme_id=new_id(), template_id="no-such-template", texts=["x"])
    async with StatusWaiter(pipeline.redis, refused.meme_id) as waiter:
        outcome = await _handle(pipeline, refused)
        assert outcome.status is RenderStatus.FAILED
        assert await waiter.next(5.0) == "failed"


async def test_a_render_after_the_pool_closed_is_cancelled_not_failed(
    pipeline: RenderPipeline,
) -> None:
    """A worker stopping with a backlog must leave those memes to the next worker: an error
    here became a `failed` meme ("internal render error", seen when a load run's platform
    stopped), where a cancellation leaves the event unacknowledged."""
    closed = RenderPool(1)
    closed.close()
    running, pipeline.pool = pipeline.pool, closed
    try:
        request = MemeRequested(meme_id=new_id(), template_id="drake", texts=["a", "b"])
        with pytest.raises(RenderPoolClosed):
            await pipeline.render(request)
    finally:
        pipeline.pool = running
