"""Views counted on reads: a `View` per read of a rendered meme, fire-and-forget, bounded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.views import ViewCounter, ViewEncoder
from domain.events import View
from domain.ids import id_time, new_id
from domain.metrics import PRODUCE_ERRORS
from domain.settings import Settings
from memestream.testing.memes import insert_meme
from producers.serialization import AvroCodec
from producers.topics import MEME_VIEWS
from tests.data_helpers import events_for, kafka_tail, register


@pytest.fixture(scope="module")
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings)) as client:
        yield client


def test_reads_of_rendered_memes_produce_views(
    client: TestClient, stack_settings: Settings
) -> None:
    user = register(client)
    client.cookies.clear()
    meme_id = insert_meme(stack_settings)
    pending = insert_meme(stack_settings, status="pending")
    with kafka_tail(stack_settings, MEME_VIEWS.name) as tail:
        assert client.get(f"/api/meme/{meme_id}").status_code == 200
        assert client.get(f"/api/meme/{meme_id}", headers=user["headers"]).status_code == 200
        assert client.get(f"/api/meme/{pending}").status_code == 200
        views = events_for(tail, meme_id)
        assert events_for(tail, pending, timeout=1.0) == []
    assert all(isinstance(v, View) for v in views)
    assert sorted(v.user_id or "" for v in views) == sorted(["", user["id"]])


async def test_a_full_queue_drops_views_instead_of_waiting(stack_settings: Settings) -> None:
    dead = stack_settings.model_copy(
        update={"kafka_bootstrap_servers": "127.0.0.1:1", "kafka_delivery_timeout_ms": 1000}
    )
    counter = ViewCounter(dead, max_queued=2)
    full = PRODUCE_ERRORS.labels(topic=MEME_VIEWS.name, reason="queue_full")
    before = full._value.get()
    try:
        assert [counter.count("m", None) for _ in range(3)] == [True, True, False]
        assert full._value.get() == before + 1
    finally:
        await counter.close(timeout_s=0.1)


def test_view_encoder_writes_what_the_codec_writes() -> None:
    """The read path's hand-written View bytes decode like the codec's own (else the counter
    falls back to the codec: `check`)."""
    codec = AvroCodec()
    encoder = ViewEncoder()
    assert encoder.check(codec)
    meme_id = new_id()
    for user_id in (None, new_id()):
        view = codec.decode_as(encoder.encode(codec.header("View"), meme_id, user_id), View)
        assert (view.meme_id, view.user_id) == (meme_id, user_id)
        assert abs(view.occurred_at - datetime.now(UTC)) < timedelta(seconds=5)
        assert abs(id_time(view.event_id) - view.occurred_at) < timedelta(seconds=5)  # UUIDv7
