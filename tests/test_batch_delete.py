"""Batch generation, Idempotency-Key replays, `?wait=`, and deletes (owner or admin only)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from api.app import create_app
from domain.events import MemeDeleted, MemeRendered, MemeRequested, RenderStatus
from domain.ids import id_time, new_id
from domain.settings import Settings
from memestream.testing.memes import insert_meme
from producers.topics import MEME_DELETED, MEME_REQUESTS
from sinks.postgres.memes import MemeRepository
from sinks.postgres.pool import create_pool
from sinks.redis import create_redis
from sinks.redis.status import publish_status
from sinks.storage import ObjectNotFound, object_store
from tests.data_helpers import (
    events_for,
    kafka_tail,
    make_admin,
    meme_status,
    register,
)

DRAKE = {"template_id": "drake", "texts": ["Writing tests", "Shipping memes"]}


@pytest.fixture(scope="module")
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings)) as client:
        yield client


def test_batch_gives_per_item_results_and_pending_rows(
    client: TestClient, stack_settings: Settings
) -> None:
    items = [DRAKE, {"template_id": "nope", "texts": ["x"]}, {**DRAKE, "texts": ["a"]}]
    with kafka_tail(stack_settings, MEME_REQUESTS.name) as tail:
        response = client.post("/api/meme/batch", json={"items": items})
        assert response.status_code == 207, response.text
        body = response.json()
        assert (body["accepted"], body["rejected"]) == (2, 1)
        assert [r["status"] for r in body["results"]] == [202, 422, 202]
        assert body["results"][1]["problem"]["type"].endswith("/unknown-template")
        first = body["results"][0]["meme_id"]
        assert [type(e) for e in events_for(tail, first)] == [MemeRequested]
    for result in (body["results"][0], body["results"][2]):
        assert meme_status(stack_settings, result["meme_id"]) == "pending"
    all_good = client.post("/api/meme/batch", json={"items": [DRAKE] * 3})
    assert all_good.status_code == 202 and all_good.json()["accepted"] == 3


def test_batch_limits(client: TestClient) -> None:
    assert client.post("/api/meme/batch", json={"items": [DRAKE] * 101}).status_code == 422
    assert client.post("/api/meme/batch", json={"items": []}).status_code == 422


def test_idempotency_key_replays_the_first_answer(client: TestClient) -> None:
    headers = {"Idempotency-Key": f"gen-{uuid.uuid4()}"}
    first = client.post("/api/meme/generate", json=DRAKE, headers=headers)
    again = client.post("/api/meme/generate", json=DRAKE, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["meme_id"] == first.json()["meme_id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/api/meme/generate", json={**DRAKE, "texts": ["other"]}, headers=headers)
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
    fresh = client.post("/api/meme/generate", json=DRAKE, headers={"Idempotency-Key": "x" * 300})
    assert fresh.status_code == 400
    batch_headers = {"Idempotency-Key": f"batch-{uuid.uuid4()}"}
    one = client.post("/api/meme/batch", json={"items": [DRAKE]}, headers=batch_headers)
    two = client.post("/api/meme/batch", json={"items": [DRAKE]}, headers=batch_headers)
    assert one.json() == two.json()


def test_keys_are_scoped_to_the_caller(client: TestClient) -> None:
    alice, bob = register(client), register(client)
    client.cookies.clear()
    key = {"Idempotency-Key": f"shared-{uuid.uuid4()}"}
    a = client.post("/api/meme/generate", json=DRAKE, headers={**alice["headers"], **key})
    b = client.post("/api/meme/generate", json=DRAKE, headers={**bob["headers"], **key})
    assert a.json()["meme_id"] != b.json()["meme_id"]


def _render_later(settings: Settings, meme_id: str, delay: float) -> threading.Thread:
    """Plays the render worker's part: the row, then the status on pub/sub."""

    async def render() -> None:
        await asyncio.sleep(delay)
        pool = create_pool(settings)
        await pool.open()
        redis = create_redis(settings)
        try:
            record = await MemeRepository(pool).get(meme_id)
            assert record is not None
            request = MemeRequested(
                meme_id=meme_id, template_id=record.template_id, texts=record.texts
            )
            outcome = MemeRendered.for_request(
                request, status=RenderStatus.RENDERED, variants=[], render_ms=5.0
            )
            await MemeRepository(pool).record_render(request, outcome)
            await publish_status(redis, meme_id, "rendered")
        finally:
            await redis.aclose()
            await pool.close()

    thread = threading.Thread(target=asyncio.run, args=(render(),))
    return thread


def test_wait_returns_the_rendered_meme(client: TestClient, stack_settings: Settings) -> None:
    # The meme id is only known from the answer, so hook the render onto the pending row.
    started = time.monotonic()
    holder: dict[str, threading.Thread] = {}

    def watch() -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with psycopg.connect(stack_settings.database_url) as conn:
                row = conn.execute(
                    "SELECT id FROM memes WHERE status = 'pending' AND texts = %s"
                    " ORDER BY created_at DESC LIMIT 1",
                    (marker,),
                ).fetchone()
            if row:
                holder["t"] = _render_later(stack_settings, str(row[0]), 0.2)
                holder["t"].start()
                return
            time.sleep(0.05)

    marker = [f"wait-{uuid.uuid4().hex[:8]}"]
    watcher = threading.Thread(target=watch)
    watcher.start()
    response = client.post(
        "/api/meme/generate", params={"wait": 5}, json={"template_id": "drake", "texts": marker}
    )
    watcher.join()
    holder["t"].join()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "rendered" and body["meme"]["status"] == "rendered"
    assert time.monotonic() - started < 4


def test_wait_times_out_as_pending(client: TestClient) -> None:
    started = time.monotonic()
    response = client.post("/api/meme/generate", params={"wait": 0.6}, json=DRAKE)
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert 0.5 < time.monotonic() - started < 3
    assert client.post("/api/meme/generate", params={"wait": 31}, json=DRAKE).status_code == 422


def test_delete_needs_the_owner_or_an_admin(client: TestClient, stack_settings: Settings) -> None:
    owner, other, admin = register(client), register(client), register(client)
    client.cookies.clear()
    make_admin(stack_settings, admin["id"])
    meme_id = insert_meme(stack_settings, owner_id=owner["id"])
    assert client.delete(f"/api/meme/{meme_id}").status_code == 401
    forbidden = client.delete(f"/api/meme/{meme_id}", headers=other["headers"])
    assert forbidden.status_code == 403 and forbidden.json()["type"].endswith("/forbidden")
    assert meme_status(stack_settings, meme_id) == "rendered"
    # Admins may delete anyone's meme (their session reads the role at login).
    admin_login = client.post(
        "/api/auth/login", json={"username": admin["username"], "password": "correct horse battery"}
    ).json()
    client.cookies.clear()
    victim = insert_meme(stack_settings, owner_id=owner["id"])
    as_admin = {"Authorization": f"Bearer {admin_login['token']}"}
    assert client.delete(f"/api/meme/{victim}", headers=as_admin).status_code == 204
    assert client.delete(f"/api/meme/{new_id()}", headers=as_admin).status_code == 404


def test_delete_tombstones_invalidates_cache_and_removes_images(
    client: TestClient, stack_settings: Settings
) -> None:
    owner = register(client)
    client.cookies.clear()
    storage = object_store(stack_settings)
    storage.ensure_bucket()
    key = f"memes/test/{uuid.uuid4().hex}/full.png"
    storage.put(key, b"\x89PNG fake", "image/png")
    variant = {
        "size": "full",
        "key": key,
        "width": 1,
        "height": 1,
        "bytes": 9,
        "media_type": "image/png",
    }
    meme_id = insert_meme(stack_settings, owner_id=owner["id"], variants=[variant])
    assert client.get(f"/api/meme/{meme_id}").status_code == 200  # now cached
    with kafka_tail(stack_settings, MEME_DELETED.name) as tail:
        deleted = client.delete(f"/api/meme/{meme_id}", headers=owner["headers"])
        assert deleted.status_code == 204
        events = events_for(tail, meme_id)
    assert [type(e) for e in events] == [MemeDeleted]
    assert events[0].deleted_by == owner["id"]
    assert meme_status(stack_settings, meme_id) == "deleted"
    assert client.get(f"/api/meme/{meme_id}").status_code == 404
    with pytest.raises(ObjectNotFound):
        storage.get(key)
    # A retried delete is idempotent: 204 again, the same event id.
    with kafka_tail(stack_settings, MEME_DELETED.name) as tail:
        assert client.delete(f"/api/meme/{meme_id}", headers=owner["headers"]).status_code == 204
        replay = events_for(tail, meme_id)
    assert replay[0].event_id == events[0].event_id


def test_delete_removes_images_recorded_after_it_read_the_row(
    client: TestClient, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker records the render between the delete's read (pending, no images) and its
    soft delete: the images the row holds when the delete locks it are removed too."""
    owner = register(client)
    client.cookies.clear()
    storage = object_store(stack_settings)
    storage.ensure_bucket()
    meme_id = insert_meme(stack_settings, owner_id=owner["id"], status="pending")
    key = f"memes/{meme_id}/full.png"
    variant = {"size": "full", "key": key, "width": 1, "height": 1, "bytes": 9}
    memes = client.app.state.services.memes  # type: ignore[attr-defined]
    read = memes.get

    async def read_then_render(wanted: str) -> object:
        record = await read(wanted)

        def render() -> None:
            storage.put(key, b"\x89PNG fake", "image/png")
            with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE memes SET status = 'rendered', variants = %s"
                    " WHERE id = %s AND created_at = %s",
                    (Jsonb([variant | {"media_type": "image/png"}]), meme_id, id_time(meme_id)),
                )

        await asyncio.to_thread(render)
        return record

    monkeypatch.setattr(memes, "get", read_then_render)
    assert client.delete(f"/api/meme/{meme_id}", headers=owner["headers"]).status_code == 204
    monkeypatch.undo()
    assert meme_status(stack_settings, meme_id) == "deleted"
    with pytest.raises(ObjectNotFound):
        storage.get(key)


@pytest.mark.e2e
def test_wait_with_the_real_render_worker(api_url: str, render_worker: None) -> None:
    # A cold worker's first render loads fonts, its process pool and moderation: on a loaded
    # machine that alone can pass 15 s. Warm it with one meme first, so the wait under test
    # measures a render, not a start-up.
    first = httpx.post(f"{api_url}/api/meme/generate", json=DRAKE, timeout=30)
    assert first.status_code == 202, first.text
    deadline = time.monotonic() + 120
    status = "pending"
    while status == "pending" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = httpx.get(f"{api_url}{first.json()['status_url']}", timeout=10).json()["status"]
    assert status == "rendered", status
    response = httpx.post(
        f"{api_url}/api/meme/generate", params={"wait": 15}, json=DRAKE, timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "rendered" and body["meme"]["images"]["full"]["width"] > 0
