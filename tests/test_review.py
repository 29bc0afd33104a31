"""Admin review of flagged memes, in-process against the real stores: the queue, approve and
reject, who may do it, and the events and cache changes the rest of the platform follows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.app import create_app
from domain.events import APPROVED, REVIEW_LABEL, FeedEvent, FeedKind, MemeRendered, RenderStatus
from domain.ids import id_time, new_id
from domain.settings import Settings
from memestream.testing.memes import insert_meme
from producers.topics import MEME_FEED, MEME_RENDERED
from sinks.redis.cache import cache_key
from sinks.redis.recent import RECENT_KEY
from sinks.storage import ObjectNotFound, object_store
from tests.data_helpers import PASSWORD, events_for, kafka_tail, make_admin, register

QUEUE = "/api/admin/review"


@pytest.fixture(scope="module")
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings)) as client:
        yield client


@pytest.fixture(scope="module")
def admin(client: TestClient, stack_settings: Settings) -> dict[str, Any]:
    """An admin, logged in after the promotion (a session carries the role of its login)."""
    user = register(client, "adm")
    make_admin(stack_settings, user["id"])
    credentials = {"username": user["username"], "password": PASSWORD}
    login = client.post("/api/auth/login", json=credentials)
    client.cookies.clear()
    return {**user, "headers": {"Authorization": f"Bearer {login.json()['token']}"}}


@pytest.fixture(scope="module")
def rdb(stack_settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack_settings.redis_url, decode_responses=True)
    yield client
    client.close()


def flagged_meme(settings: Settings, *, owner_id: str | None = None, score: float = 0.7) -> str:
    """A meme as the render worker leaves one moderation flagged: stored images, evidence."""
    meme_id = new_id()
    storage = object_store(settings)
    storage.ensure_bucket()
    variants = []
    for size in ("full", "thumb"):
        key = f"memes/{meme_id}/{size}.png"
        storage.put(key, b"\x89PNG fake", "image/png")
        image = {"width": 8, "height": 8, "bytes": 9, "media_type": "image/png"}
        variants.append({"size": size, "key": key, **image})
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO memes (id, created_at, template_id, texts, status, owner_id, format,"
            " variants, render_ms, rendered_at, moderation, moderation_score, moderation_reason,"
            " sentiment, sentiment_score) VALUES (%s, %s, 'drake', %s, 'flagged', %s, 'png', %s,"
            " 21.5, now(), 'flagged', %s, 'sexual content (text)', 'neutral', 0.8)",
            (meme_id, id_time(meme_id), ["edgy", "caption"], owner_id, Jsonb(variants), score),
        )
    return meme_id


def row(settings: Settings, meme_id: str) -> dict[str, Any]:
    with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
        found = conn.execute(
            "SELECT status, variants, error, reviewed_by, reviewed_at, review_decision,"
            " review_note, moderation, moderation_score FROM memes"
            " WHERE id = %s AND created_at = %s",
            (meme_id, id_time(meme_id)),
        ).fetchone()
    assert found is not None
    return found


def queue_ids(client: TestClient, admin: dict[str, Any], **params: Any) -> list[str]:
    """Every id of the queue, page by page (2 per page), checking the pages do not overlap."""
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
        page = client.get(QUEUE, params=query, headers=admin["headers"])
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= 2 and body["total"] >= len(body["items"])
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    return seen


def test_review_is_for_admins_only(client: TestClient, stack_settings: Settings) -> None:
    user = register(client, "rev")
    client.cookies.clear()
    meme_id = flagged_meme(stack_settings, owner_id=user["id"])
    assert client.get(QUEUE).status_code == 401
    for attempt in (
        client.get(QUEUE, headers=user["headers"]),
        client.post(f"{QUEUE}/{meme_id}/approve", headers=user["headers"]),
        client.post(f"{QUEUE}/{meme_id}/reject", headers=user["headers"]),
    ):
        assert attempt.status_code == 403, attempt.text
        assert attempt.headers["content-type"].startswith("application/problem+json")
        assert attempt.json()["type"].endswith("/forbidden")
    assert client.post(f"{QUEUE}/{meme_id}/approve").status_code == 401
    assert row(stack_settings, meme_id)["status"] == "flagged"


def test_the_queue_lists_flagged_memes_with_their_evidence(
    client: TestClient, admin: dict[str, Any], stack_settings: Settings
) -> None:
    ours = [flagged_meme(stack_settings, score=0.61 + i / 100) for i in range(3)]
    public = insert_meme(stack_settings, status="rendered")
    first = client.get(QUEUE, params={"order": "newest", "limit": 3}, headers=admin["headers"])
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["total"] >= 3
    item = next(i for i in body["items"] if i["id"] == ours[-1])
    assert item["moderation"] == {
        "decision": "flagged",
        "score": pytest.approx(0.63),
        "reason": "sexual content (text)",
    }
    assert item["texts"] == ["edgy", "caption"] and item["sentiment"] == "neutral"
    assert item["images"]["full"]["url"] == f"/api/meme/{ours[-1]}/image?size=full"
    newest = queue_ids(client, admin, order="newest")
    assert public not in newest
    positions = [newest.index(m) for m in ours]
    assert positions == sorted(positions, reverse=True)  # newest first
    oldest = queue_ids(client, admin)
    assert [m for m in oldest if m in ours] == ours
    bad = client.get(QUEUE, params={"cursor": "not-an-id"}, headers=admin["headers"])
    assert bad.status_code == 422 and bad.json()["type"].endswith("/invalid-cursor")


def test_approval_makes_the_meme_public_and_tells_the_platform(
    client: TestClient, admin: dict[str, Any], stack_settings: Settings, rdb: redis.Redis
) -> None:
    owner = register(client, "own")
    client.cookies.clear()
    meme_id = flagged_meme(stack_settings, owner_id=owner["id"])
    refused = client.post(f"/api/meme/{meme_id}/vote", json={"value": 1}, headers=owner["headers"])
    assert refused.status_code == 409  # no votes while in review
    rdb.hset(cache_key(meme_id), mapping={"status": "flagged"})  # a stale entry to drop
    with (
        kafka_tail(stack_settings, MEME_RENDERED.name) as rendered_tail,
        kafka_tail(stack_settings, MEME_FEED.name) as feed_tail,
    ):
        answer = client.post(
            f"{QUEUE}/{meme_id}/approve", json={"note": "satire"}, headers=admin["headers"]
        )
        assert answer.status_code == 200, answer.text
        rendered = events_for(rendered_tail, meme_id)
        feed = events_for(feed_tail, meme_id)
    outcome = answer.json()
    assert outcome["status"] == "rendered" and outcome["decision"] == "approved"
    assert outcome["reviewed_by"] == admin["id"] and outcome["note"] == "satire"
    stored = row(stack_settings, meme_id)
    assert stored["status"] == "rendered" and stored["review_decision"] == "approved"
    assert stored["reviewed_by"] == admin["id"] and stored["reviewed_at"] is not None
    assert stored["moderation"] == "flagged"  # the model's evidence is kept
    assert [type(e) for e in rendered] == [MemeRendered]
    event = rendered[0]
    assert isinstance(event, MemeRendered)
    assert event.status is RenderStatus.RENDERED and event.public and event.reviewed
    assert event.moderation == APPROVED and event.moderation_label == REVIEW_LABEL
    assert event.meme_status == "rendered" and event.user_id == owner["id"]
    assert {v.size for v in event.variants} == {"full", "thumb"}
    assert [(e.kind, e.status) for e in feed if isinstance(e, FeedEvent)] == [
        (FeedKind.RENDERED, "rendered")
    ]
    assert not rdb.exists(cache_key(meme_id))
    assert meme_id in rdb.lrange(RECENT_KEY, 0, 50)
    recent = client.get("/api/meme/recent", params={"limit": 50}).json()
    assert meme_id in [m["id"] for m in recent]
    assert client.get(f"/api/meme/{meme_id}").json()["status"] == "rendered"
    voted = client.post(f"/api/meme/{meme_id}/vote", json={"value": 1}, headers=owner["headers"])
    assert voted.status_code == 200, voted.text
    # A retry answers the recorded decision and re-sends the same event; the other is a 409.
    with kafka_tail(stack_settings, MEME_RENDERED.name) as tail:
        again = client.post(f"{QUEUE}/{meme_id}/approve", headers=admin["headers"])
        assert again.status_code == 200
        assert again.json()["reviewed_at"] == outcome["reviewed_at"]
        assert [e.event_id for e in events_for(tail, meme_id)] == [event.event_id]
    conflict = client.post(f"{QUEUE}/{meme_id}/reject", headers=admin["headers"])
    assert conflict.status_code == 409 and conflict.json()["type"].endswith("/not-in-review")
    assert meme_id not in queue_ids(client, admin, order="newest")


def test_rejection_removes_the_images_and_keeps_the_meme_out(
    client: TestClient, admin: dict[str, Any], stack_settings: Settings, rdb: redis.Redis
) -> None:
    owner = register(client, "own")
    client.cookies.clear()
    meme_id = flagged_meme(stack_settings, owner_id=owner["id"])
    rdb.lpush(RECENT_KEY, meme_id)  # the analytics worker lists every stored render
    storage = object_store(stack_settings)
    with (
        kafka_tail(stack_settings, MEME_RENDERED.name) as rendered_tail,
        kafka_tail(stack_settings, MEME_FEED.name) as feed_tail,
    ):
        answer = client.post(
            f"{QUEUE}/{meme_id}/reject", json={"note": "harassment"}, headers=admin["headers"]
        )
        assert answer.status_code == 200, answer.text
        rendered = events_for(rendered_tail, meme_id)
        feed = events_for(feed_tail, meme_id)
    assert answer.json()["status"] == "rejected" and answer.json()["decision"] == "rejected"
    stored = row(stack_settings, meme_id)
    assert stored["status"] == "rejected" and stored["variants"] == []
    assert stored["error"] == "rejected in review (harassment)"
    assert stored["reviewed_by"] == admin["id"] and stored["review_note"] == "harassment"
    for size in ("full", "thumb"):
        with pytest.raises(ObjectNotFound):
            storage.get(f"memes/{meme_id}/{size}.png")
    event = rendered[0]
    assert isinstance(event, MemeRendered) and not event.public and event.reviewed
    assert event.status is RenderStatus.FAILED and event.meme_status == "rejected"
    assert event.variants == [] and event.error == "rejected in review (harassment)"
    assert [(e.kind, e.status) for e in feed if isinstance(e, FeedEvent)] == [
        (FeedKind.FAILED, "rejected")
    ]
    assert meme_id not in rdb.lrange(RECENT_KEY, 0, -1)
    meme = client.get(f"/api/meme/{meme_id}").json()
    assert meme["status"] == "rejected" and meme["images"] == {}
    image = client.get(f"/api/meme/{meme_id}/image")
    assert image.status_code == 409 and image.json()["type"].endswith("/meme-rejected")
    voted = client.post(f"/api/meme/{meme_id}/vote", json={"value": 1}, headers=owner["headers"])
    assert voted.status_code == 409
    assert client.post(f"{QUEUE}/{meme_id}/approve", headers=admin["headers"]).status_code == 409
    assert client.post(f"{QUEUE}/{meme_id}/reject", headers=admin["headers"]).status_code == 200


def test_only_flagged_memes_can_be_decided(
    client: TestClient, admin: dict[str, Any], stack_settings: Settings
) -> None:
    headers = admin["headers"]
    assert client.post(f"{QUEUE}/{new_id()}/approve", headers=headers).status_code == 404
    assert client.post(f"{QUEUE}/not-an-id/approve", headers=headers).status_code == 404
    assert client.post(f"{QUEUE}/{uuid.uuid4()}/reject", headers=headers).status_code == 404
    deleted = insert_meme(stack_settings, status="deleted")
    assert client.post(f"{QUEUE}/{deleted}/approve", headers=headers).status_code == 404
    for status in ("pending", "rendered", "failed"):
        meme_id = insert_meme(stack_settings, status=status)
        answer = client.post(f"{QUEUE}/{meme_id}/approve", headers=headers)
        assert answer.status_code == 409, (status, answer.text)
        assert answer.json()["meme_status"] == status
    too_long = client.post(f"{QUEUE}/{new_id()}/reject", json={"note": "x" * 501}, headers=headers)
    assert too_long.status_code == 422
