"""Moderation and sentiment in the stream: the real API, Kafka, render worker and PostgreSQL.

Plus the contract pieces: MemeRendered v2 keeps v1 readable, PostgreSQL accepts the new
statuses, and the analytics row carries sentiment and moderation into ClickHouse.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from fastavro import schemaless_writer

from domain.events import ImageVariant, MemeRendered, RenderStatus
from domain.ids import new_id
from domain.settings import Settings
from domain.templates import TemplateCatalog
from producers.serialization import MAGIC, AvroCodec, default_registry

FINAL = {"rendered", "failed", "rejected", "flagged"}
LABELS = {"negative", "neutral", "positive"}


def _generate(client: httpx.Client, body: dict[str, object]) -> str:
    response = client.post("/api/meme/generate", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["meme_id"])


def _wait(client: httpx.Client, meme_id: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/meme/{meme_id}").json()
        if body.get("status") in FINAL:
            return body
        time.sleep(0.2)
    raise TimeoutError(f"{meme_id} not final within {timeout}s")


def _row(settings: Settings, meme_id: str) -> dict:
    with psycopg.connect(settings.database_url, row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute(
            "SELECT status, error, sentiment, sentiment_score, moderation, moderation_score,"
            " moderation_reason, variants FROM memes WHERE id = %s",
            (meme_id,),
        ).fetchone()
    assert row is not None
    return row


@pytest.mark.e2e
@pytest.mark.usefixtures("render_worker")
def test_rejected_flagged_and_clean_memes(api_url: str, stack_settings: Settings) -> None:
    with httpx.Client(base_url=api_url, timeout=30) as client:
        rejected_id = _generate(
            client, {"template_id": "drake", "texts": ["go kill yourself", "ok"]}
        )
        flagged_id = _generate(client, {"template_id": "drake", "texts": ["nsfw", "memes"]})
        clean_id = _generate(
            client, {"template_id": "drake", "texts": ["Writing tests", "Shipping memes"]}
        )
        rejected = _wait(client, rejected_id)
        flagged = _wait(client, flagged_id)
        clean = _wait(client, clean_id)

        # Rejected: never dropped, the reason is said, nothing was stored.
        assert rejected["status"] == "rejected", rejected
        assert "self-harm incitement" in rejected["error"]
        assert rejected["images"] == {}
        image = client.get(f"/api/meme/{rejected_id}/image")
        assert image.status_code == 409
        assert image.json()["type"].endswith("/meme-rejected")

        # Flagged: rendered and served, held for review.
        assert flagged["status"] == "flagged", flagged
        assert set(flagged["images"]) == {"full", "medium", "thumb"}
        assert client.get(f"/api/meme/{flagged_id}/image").status_code == 200

        assert clean["status"] == "rendered", clean
        assert clean["sentiment"] in LABELS

    row = _row(stack_settings, rejected_id)
    assert (row["moderation"], row["variants"]) == ("rejected", [])
    assert row["moderation_reason"] == "text: self-harm incitement"
    row = _row(stack_settings, flagged_id)
    assert row["moderation"] == "flagged" and row["moderation_score"] >= 0.6
    row = _row(stack_settings, clean_id)
    assert row["moderation"] == "ok"
    assert row["sentiment"] in LABELS and 0.0 <= row["sentiment_score"] <= 1.0


@pytest.mark.e2e
@pytest.mark.usefixtures("render_worker", "inference_worker")
def test_auto_caption_fills_the_empty_boxes(api_url: str) -> None:
    boxes = len(TemplateCatalog.default().get("expanding-brain").boxes)
    with httpx.Client(base_url=api_url, timeout=120) as client:
        meme_id = _generate(
            client,
            {
                "template_id": "expanding-brain",
                "texts": ["Reading the docs"],
                "auto_caption": True,
                "topic": "debugging",
            },
        )
        meme = _wait(client, meme_id)
        assert meme["status"] in {"rendered", "flagged"}, meme
        assert meme["texts"][0] == "Reading the docs"
        assert len(meme["texts"]) == boxes
        assert all(t.strip() for t in meme["texts"])
        refused = client.post("/api/meme/generate", json={"template_id": "drake", "texts": [""]})
        assert refused.status_code == 422  # empty texts need auto_caption


def _rendered(**fields: object) -> MemeRendered:
    return MemeRendered(
        meme_id=new_id(),
        template_id="drake",
        status=RenderStatus.RENDERED,
        variants=[
            ImageVariant(size="full", key="k", width=1, height=1, bytes=9, media_type="image/png")
        ],
        render_ms=12.0,
        requested_at=datetime(2026, 1, 1, tzinfo=UTC),
        **fields,  # type: ignore[arg-type]
    )


def test_meme_rendered_v1_data_reads_with_empty_ai_fields() -> None:
    registry = default_registry()
    v1 = next(
        s for s in registry.by_fingerprint.values() if s.name == "MemeRendered" and s.version == 1
    )
    assert registry.latest["MemeRendered"].version >= 2
    event = _rendered()
    record = {
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
        "meme_id": event.meme_id,
        "template_id": "drake",
        "status": "rendered",
        "variants": [
            {
                "size": "full",
                "key": "k",
                "width": 1,
                "height": 1,
                "bytes": 9,
                "media_type": "image/png",
            }
        ],
        "render_ms": 12.0,
        "requested_at": event.requested_at,
        "error": None,
        "user_id": None,
    }
    buffer = io.BytesIO()
    buffer.write(MAGIC + v1.fingerprint)
    schemaless_writer(buffer, v1.parsed, record)
    decoded = AvroCodec().decode_as(buffer.getvalue(), MemeRendered)
    assert decoded.meme_id == event.meme_id
    assert (decoded.moderation, decoded.sentiment, decoded.moderation_score) == (None, None, None)
    assert decoded.meme_status == "rendered"


def test_meme_rendered_v2_round_trips_moderation_and_sentiment() -> None:
    event = _rendered(
        moderation="flagged",
        moderation_label="nsfw",
        moderation_score=0.5,
        moderation_reason="image: nudity score 0.50",
        sentiment="positive",
        sentiment_score=0.9,
    )
    codec = AvroCodec()
    assert codec.decode(codec.encode(event)) == event
    assert event.meme_status == "flagged"


def test_analytics_row_carries_sentiment_and_moderation() -> None:
    from sinks.clickhouse.schema import EVENT_COLUMNS
    from streams.analytics import to_row

    event = _rendered(moderation="flagged", moderation_score=0.42, sentiment="negative")
    row = dict(zip(EVENT_COLUMNS, to_row(event, TemplateCatalog.default()), strict=True))
    assert row["sentiment"] == "negative"
    assert row["moderation_label"] == "flagged"
    assert row["moderation_score"] == pytest.approx(0.42)


@pytest.mark.services
def test_postgres_accepts_rejected_and_flagged(stack_settings: Settings) -> None:
    with psycopg.connect(stack_settings.database_url) as conn:
        for status in ("rejected", "flagged"):  # one transaction, rolled back at the end
            conn.execute(
                "INSERT INTO memes (id, created_at, template_id, texts, status, sentiment,"
                " moderation) VALUES (gen_random_uuid(), now(), 'drake', '{}', %s,"
                " 'neutral', %s)",
                (status, status),
            )
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "INSERT INTO memes (id, created_at, template_id, texts, status)"
                " VALUES (gen_random_uuid(), now(), 'drake', '{}', 'bogus')"
            )
        conn.rollback()
