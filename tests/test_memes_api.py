"""The REST API's validation and failure answers, in-process against the real stores."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.memes.view import meme_view
from api.routes.memes.view_cache import SerializedViews
from domain.ids import new_id
from domain.settings import Settings
from memestream.testing.memes import insert_meme
from sinks.postgres.memes import MemeRecord

BOX = {"x": 10, "y": 10, "width": 100, "height": 50}


@pytest.fixture(scope="module")
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings)) as client:
        yield client


def assert_problem(response, status: int, slug: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith("/" + slug)
    assert body["status"] == status and body["title"]
    return body


@pytest.mark.parametrize(
    ("payload", "slug"),
    [
        ({"template_id": "nope", "texts": ["a"]}, "unknown-template"),
        ({"template_id": "drake", "texts": ["a", "b", "c", "d"]}, "too-many-texts"),
        ({"template_id": "drake", "texts": ["x" * 501]}, "text-too-long"),
        ({"template_id": "classic", "texts": ["a"], "transform": ["sepia:7"]}, "invalid-filter"),
        ({"template_id": "classic", "texts": ["a"], "filters": ["explode"]}, "invalid-filter"),
        ({"template_id": "classic", "texts": ["a"], "boxes": [BOX]}, "invalid-boxes"),
        (
            {"template_id": "classic", "texts": ["a"], "boxes": [BOX, {**BOX, "x": 590}]},
            "invalid-boxes",
        ),
    ],
)
def test_semantic_errors(client: TestClient, payload: dict, slug: str) -> None:
    assert_problem(client.post("/api/meme/generate", json=payload), 422, slug)


@pytest.mark.parametrize(
    "payload",
    [
        {"template_id": "drake", "texts": []},
        {"template_id": "drake", "texts": ["", "   "]},
        {"template_id": "drake", "texts": "not a list"},
        {"template_id": 42, "texts": ["a"]},
        {"template_id": "drake", "texts": [None]},
        {"template_id": "drake", "texts": ["a"], "extra": 1},
        {"template_id": "../etc/passwd", "texts": ["a"]},
        {"template_id": "drake", "texts": ["bell \x07 char"]},
        {"template_id": "drake", "texts": ["a"], "format": "bmp"},
        {"template_id": "classic", "texts": ["a"], "boxes": [{**BOX, "x": -1}, BOX]},
        {"template_id": "classic", "texts": ["a"], "boxes": [{**BOX, "z": 1}, BOX]},
        {"template_id": "classic", "texts": ["a"], "transform": "rotate:90"},
        {"texts": ["a"]},
        [],
    ],
)
def test_invalid_bodies_are_422(client: TestClient, payload: object) -> None:
    body = assert_problem(client.post("/api/meme/generate", json=payload), 422, "validation-error")
    assert body["errors"]


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/api/meme/generate",
        content=b'{"template_id": "drake", "texts": [',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")


def test_oversize_body_is_413(client: TestClient, stack_settings: Settings) -> None:
    huge = b'{"template_id": "drake", "texts": ["' + b"a" * stack_settings.max_body_bytes + b'"]}'
    response = client.post(
        "/api/meme/generate", content=huge, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")


def test_oversize_chunked_body_is_413(client: TestClient, stack_settings: Settings) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"template_id": "drake", "texts": ["'
        for _ in range(stack_settings.max_body_bytes // 65536 + 2):
            yield b"a" * 65536
        yield b'"]}'

    response = client.post(
        "/api/meme/generate", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")


def test_unknown_and_malformed_ids_are_404(client: TestClient) -> None:
    assert_problem(client.get(f"/api/meme/{new_id()}"), 404, "meme-not-found")
    assert_problem(client.get("/api/meme/not-an-id"), 404, "meme-not-found")
    assert_problem(
        client.get("/api/meme/6f1c1c1e-8d0e-4c3a-9a3e-2f3b1a1d4e5f"), 404, "meme-not-found"
    )
    assert_problem(client.get(f"/api/meme/{new_id()}/image"), 404, "meme-not-found")


def test_bad_image_size_is_422(client: TestClient) -> None:
    assert_problem(client.get(f"/api/meme/{new_id()}/image?size=huge"), 422, "validation-error")


def test_accepted_request_is_pending_until_rendered(client: TestClient) -> None:
    accepted = client.post("/api/meme/generate", json={"template_id": "drake", "texts": ["a"]})
    assert accepted.status_code == 202
    meme = client.get(accepted.json()["status_url"])
    assert meme.status_code == 200
    assert meme.json()["status"] in {"pending", "rendered"}


def test_kafka_down_is_503_with_retry_after(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(
        update={"kafka_bootstrap_servers": "127.0.0.1:1", "kafka_delivery_timeout_ms": 1000}
    )
    with TestClient(create_app(settings)) as dead:
        response = dead.post("/api/meme/generate", json={"template_id": "drake", "texts": ["a"]})
    body = assert_problem(response, 503, "service-unavailable")
    assert response.headers["retry-after"].isdigit()
    assert body["service"] == "kafka"


def test_postgres_down_still_accepts_generation(stack_settings: Settings) -> None:
    settings = stack_settings.model_copy(
        update={"database_url": "postgresql://memestream:memestream@127.0.0.1:1/memestream"}
    )
    with TestClient(create_app(settings)) as degraded:
        accepted = degraded.post(
            "/api/meme/generate", json={"template_id": "drake", "texts": ["a"]}
        )
        assert accepted.status_code == 202
        assert_problem(degraded.get(accepted.json()["status_url"]), 503, "service-unavailable")
        assert degraded.get("/ready").status_code == 503
        assert degraded.get("/health").status_code == 200


def test_openapi_documents_the_generate_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/meme/generate"]["post"]
    assert "202" in operation["responses"] and "503" in operation["responses"]


def test_meme_reads_answer_the_same_json(client: TestClient, stack_settings: Settings) -> None:
    variant = {
        "size": "full",
        "key": "k/full.png",
        "width": 600,
        "height": 400,
        "bytes": 7,
        "media_type": "image/png",
    }
    meme_id = insert_meme(stack_settings, variants=[variant])
    first, second = (client.get(f"/api/meme/{meme_id}") for _ in range(2))
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.content == second.content
    body = first.json()
    assert (body["id"], body["status"], body["texts"]) == (meme_id, "rendered", ["top", "bottom"])
    assert body["images"]["full"] == {
        "url": f"/api/meme/{meme_id}/image?size=full",
        **{k: variant[k] for k in ("width", "height", "bytes", "media_type")},
    }


def test_a_body_is_made_once_per_record_object() -> None:
    now = datetime.now(UTC)
    record = MemeRecord(
        id=new_id(),
        created_at=now,
        template_id="drake",
        texts=["a", "b"],
        status="rendered",
        owner_id=None,
        format="jpeg",
        variants=[],
        render_ms=3.5,
        error=None,
        rendered_at=now,
        updated_at=now,
    )
    bodies = SerializedViews(max_entries=2)
    body = bodies.json(record)
    assert body == meme_view(record).model_dump_json().encode()
    assert bodies.json(record) is body
    changed = dataclasses.replace(record, status="failed", error="boom")
    assert json.loads(bodies.json(changed))["status"] == "failed"  # another object: new body


def next_link(response) -> str | None:  # type: ignore[no-untyped-def]
    """The `rel="next"` URL of a `/recent` page, or None on the last page."""
    link = response.headers.get("link")
    if link is None:
        return None
    url, rel = link.split(";", 1)
    assert rel.strip() == 'rel="next"'
    return url.strip().strip("<>")


def test_recent_pages_walk_back_through_history_without_repeats(
    client: TestClient, stack_settings: Settings
) -> None:
    """The feed's timeline: `before` pages go back in creation order, each page's `Link` is the
    next one, and no meme is listed twice (other sessions may insert memes meanwhile)."""
    mine = [insert_meme(stack_settings) for _ in range(5)]
    hidden = insert_meme(stack_settings, status="pending")  # not public: never listed
    start = new_id()  # created after all of them: the first page starts at the newest of mine
    url: str | None = f"/api/meme/recent?limit=2&before={start}"
    seen: list[str] = []
    for _ in range(50):  # bounded: five memes, pages of two, plus whatever others insert
        if url is None or all(m in seen for m in mine):
            break
        response = client.get(url)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page) <= 2
        created = [(m["created_at"], m["id"]) for m in page]
        assert created == sorted(created, reverse=True)
        seen += [m["id"] for m in page]
        url = next_link(response)
        if url is not None:
            assert f"before={page[-1]['id']}" in url and "limit=2" in url
    assert len(seen) == len(set(seen))
    assert [m for m in seen if m in mine] == list(reversed(mine))
    assert hidden not in seen


def test_recent_first_page_links_to_older_and_the_last_page_does_not(
    client: TestClient, stack_settings: Settings
) -> None:
    insert_meme(stack_settings)
    first = client.get("/api/meme/recent", params={"limit": 3})
    assert first.status_code == 200 and first.json()
    assert next_link(first) is not None
    oldest = "00000000-0000-7000-8000-000000000000"  # a v7 id at the epoch: nothing is older
    last = client.get("/api/meme/recent", params={"before": oldest})
    assert last.status_code == 200 and last.json() == []
    assert next_link(last) is None


@pytest.mark.parametrize("before", ["nope", "0190a0b0-0000-4000-8000-000000000000"])
def test_recent_refuses_a_cursor_that_is_not_a_meme_id(client: TestClient, before: str) -> None:
    response = client.get("/api/meme/recent", params={"before": before})
    assert_problem(response, 422, "invalid-cursor")
