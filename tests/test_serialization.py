"""The Avro single-object codec: round trips, evolution and hostile bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastavro import schemaless_writer

from domain.events import (
    EVENT_TYPES,
    FeedEvent,
    FeedKind,
    ImageVariant,
    MemeDeleted,
    MemeRendered,
    MemeRequested,
    RenderStatus,
    View,
    Vote,
)
from producers.serialization import (
    MAGIC,
    SCHEMAS_DIR,
    AvroCodec,
    SchemaRegistry,
    SerializationError,
)

REQUEST = MemeRequested(
    meme_id="0190f1e2-0000-7000-8000-000000000001",
    template_id="drake",
    texts=["top", "bottom ✓ مرحبا"],
    format="png",
    user_id="u1",
)
SAMPLES = [
    REQUEST,
    MemeRendered.for_request(
        REQUEST,
        status=RenderStatus.RENDERED,
        variants=[
            ImageVariant(
                size="full",
                key="memes/x/full.png",
                width=600,
                height=600,
                bytes=1234,
                media_type="image/png",
            )
        ],
        render_ms=4.5,
    ),
    MemeRendered.for_request(
        REQUEST, status=RenderStatus.FAILED, variants=[], render_ms=0.0, error="boom"
    ),
    Vote(meme_id="m", user_id="u", value=-1),
    View(meme_id="m"),
    MemeDeleted(meme_id="m", deleted_by="admin"),
    FeedEvent(meme_id="m", kind=FeedKind.VOTES, votes=3, score=1.5),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(event: object) -> None:
    codec = AvroCodec()
    data = codec.encode(event)  # type: ignore[arg-type]
    assert data[:2] == MAGIC
    assert codec.decode(data) == event


def test_every_event_type_has_a_schema() -> None:
    registry = SchemaRegistry.from_folder()
    assert set(registry.latest) == set(EVENT_TYPES)


def test_fingerprint_identifies_the_writer_schema() -> None:
    codec = AvroCodec()
    data = codec.encode(REQUEST)
    assert data[2:10] == codec.registry.latest["MemeRequested"].fingerprint
    assert len({v.fingerprint for v in codec.registry.by_fingerprint.values()}) == len(
        codec.registry.by_fingerprint
    )


def test_old_writer_is_readable_by_new_reader(tmp_path: Path) -> None:
    """A v2 schema that adds a field with a default still reads v1 messages."""
    for path in SCHEMAS_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path)
    v1 = json.loads((SCHEMAS_DIR / "View.v1.avsc").read_text())
    v2 = {
        **v1,
        "fields": [
            *v1["fields"],
            {"name": "referrer", "type": ["null", "string"], "default": None},
        ],
    }
    (tmp_path / "View.v2.avsc").write_text(json.dumps(v2))
    old = AvroCodec(SchemaRegistry.from_folder(SCHEMAS_DIR))
    new = AvroCodec(SchemaRegistry.from_folder(tmp_path))
    assert new.registry.latest["View"].version == 2
    view = View(meme_id="m", user_id="u")
    assert new.decode(old.encode(view)) == view


@pytest.mark.parametrize(
    "data",
    [
        None,
        b"",
        b"\x00",
        b"garbage that is long enough",
        MAGIC + b"\x00" * 8 + b"body",
        b'{"meme_id": "json"}',
    ],
    ids=["none", "empty", "short", "no-magic", "unknown-fingerprint", "json"],
)
def test_hostile_bytes_raise_serialization_error(data: bytes | None) -> None:
    with pytest.raises(SerializationError):
        AvroCodec().decode(data)


def test_truncated_body_raises_serialization_error() -> None:
    data = AvroCodec().encode(REQUEST)
    with pytest.raises(SerializationError):
        AvroCodec().decode(data[:-5])


def test_body_of_another_schema_raises_serialization_error() -> None:
    codec = AvroCodec()
    fingerprint = codec.registry.latest["MemeRequested"].fingerprint
    import io

    body = io.BytesIO()
    schemaless_writer(body, {"type": "array", "items": "long"}, [1, 2, 3])
    with pytest.raises(SerializationError):
        codec.decode(MAGIC + fingerprint + body.getvalue())


def test_decode_as_rejects_the_wrong_type() -> None:
    codec = AvroCodec()
    with pytest.raises(SerializationError, match="expected Vote"):
        codec.decode_as(codec.encode(REQUEST), Vote)
