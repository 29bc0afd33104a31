"""POST -> Kafka -> render worker -> MinIO + PostgreSQL -> GET, all real processes."""

from __future__ import annotations

import io
import json
import time
import uuid

import httpx
import numpy as np
import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from PIL import Image

from domain.events import MemeRequested
from domain.ids import new_id
from domain.settings import Settings
from domain.templates import TemplateCatalog
from producers.serialization import AvroCodec
from producers.topics import MEME_REQUESTS
from sinks.storage import object_store

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("render_worker")]


def wait_rendered(client: httpx.Client, meme_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/meme/{meme_id}").json()
        if body.get("status") in {"rendered", "failed"}:
            return body
        time.sleep(0.1)
    raise TimeoutError(f"{meme_id} was not rendered within {timeout}s")


def _box_mask(template_id: str, margin: int) -> np.ndarray:
    template = TemplateCatalog.default().get(template_id)
    mask = np.zeros((template.height, template.width), dtype=bool)
    for box in template.boxes:
        mask[
            max(0, box.y - margin) : box.y + box.height + margin,
            max(0, box.x - margin) : box.x + box.width + margin,
        ] = True
    return mask


def test_generate_renders_stores_and_serves_the_meme(
    api_url: str, stack_settings: Settings
) -> None:
    template = TemplateCatalog.default().get("classic")
    with httpx.Client(base_url=api_url, timeout=10) as client:
        accepted = client.post(
            "/api/meme/generate",
            json={"template_id": "classic", "texts": ["TOP TEXT HERE", "AND BOTTOM TEXT"]},
        )
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        meme_id = body["meme_id"]
        assert accepted.headers["location"] == body["status_url"] == f"/api/meme/{meme_id}"

        meme = wait_rendered(client, meme_id)
        assert meme["status"] == "rendered", meme
        assert set(meme["images"]) == {"full", "medium", "thumb"}
        assert meme["texts"] == ["TOP TEXT HERE", "AND BOTTOM TEXT"]

        image_response = client.get(f"/api/meme/{meme_id}/image")
        assert image_response.status_code == 200
        assert image_response.headers["content-type"] == meme["images"]["full"]["media_type"]
        thumb = client.get(f"/api/meme/{meme_id}/image", params={"size": "thumb"})
        assert Image.open(io.BytesIO(thumb.content)).width < template.width

        redirect = client.get(f"/api/meme/{meme_id}/image", params={"redirect": "true"})
        assert redirect.status_code == 307
        assert httpx.get(redirect.headers["location"]).content == image_response.content

    image = Image.open(io.BytesIO(image_response.content))
    image.load()
    assert image.size == (template.width, template.height)
    rendered = np.asarray(image.convert("RGB"), dtype=np.int16)
    blank = np.asarray(template.image().convert("RGB"), dtype=np.int16)
    diff = np.abs(rendered - blank).mean(axis=2)
    top = template.boxes[0]
    in_box = diff[top.y : top.y + top.height, top.x : top.x + top.width]
    assert in_box.mean() > 8, "the text box should contain drawn text"
    assert (in_box > 100).mean() > 0.02, "text pixels should contrast strongly"
    outside = diff[~_box_mask("classic", margin=12)]
    assert outside.mean() < 4, "pixels away from the text boxes should be the template's"

    store = object_store(stack_settings)
    for info in meme["images"].values():
        assert info["bytes"] > 0
    stored = store.get(f"memes/{meme_id}/full.{meme['images']['full']['media_type'].split('/')[1]}")
    assert stored.data == image_response.content
    with psycopg.connect(stack_settings.database_url) as conn:
        row = conn.execute("SELECT status, template_id FROM memes WHERE id = %s", (meme_id,))
        assert row.fetchone() == ("rendered", "classic")


def test_the_editors_layout_reaches_the_rendered_meme(api_url: str) -> None:
    """Rotate and crop the template, grey it, put the one caption at the bottom: the meme the
    worker renders has the transformed size, no colour and text only where the box went."""
    layout = {
        "transform": ["rotate:270", "crop:0,0,400,300", "grayscale"],
        "boxes": [
            {"x": 0, "y": 0, "width": 10, "height": 10},
            {"x": 20, "y": 220, "width": 360, "height": 70},
        ],
    }
    with httpx.Client(base_url=api_url, timeout=10) as client:
        body = {"template_id": "classic", "texts": ["", "BOTTOM ONLY"], "format": "png", **layout}
        accepted = client.post("/api/meme/generate", json=body)
        assert accepted.status_code == 202, accepted.text
        meme = wait_rendered(client, accepted.json()["meme_id"])
        assert meme["status"] == "rendered", meme
        data = client.get(f"/api/meme/{meme['id']}/image").content
    image = Image.open(io.BytesIO(data)).convert("RGB")
    assert image.size == (400, 300)
    pixels = np.asarray(image, dtype=np.int16)
    assert np.abs(pixels[..., 0] - pixels[..., 2]).max() <= 2, "grayscale comes before the text"
    rotated = Image.open(io.BytesIO(data))  # the blank, transformed template for comparison
    blank = TemplateCatalog.default().get("classic").image().convert("L")
    blank = blank.transpose(Image.Transpose.ROTATE_270).crop((0, 0, 400, 300))
    diff = np.abs(np.asarray(rotated.convert("L"), dtype=np.int16) - np.asarray(blank))
    assert diff[220:290, 20:380].mean() > 8, "the caption is in the placed box"
    assert diff[:200].mean() < 3, "nothing is drawn above it"


def test_a_meme_from_an_uploaded_template(api_url: str) -> None:
    """Upload an image with one box, generate from it: the worker fetches the upload from
    PostgreSQL and object storage and draws the caption in the uploader's box."""
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (230, 120, 40)).save(buffer, "PNG")
    creds = {"username": f"e2e{uuid.uuid4().hex[:10]}", "password": "correct horse battery"}
    box = {"x": 20, "y": 150, "width": 280, "height": 70}
    with httpx.Client(base_url=api_url, timeout=20) as client:
        assert client.post("/api/auth/register", json=creds).status_code == 201
        assert client.post("/api/auth/login", json=creds).status_code == 200
        upload = client.post(
            "/api/templates",
            data={"name": f"Orange {uuid.uuid4().hex[:6]}", "boxes": json.dumps([box])},
            files={"file": ("orange.png", buffer.getvalue(), "image/png")},
        )
        assert upload.status_code == 201, upload.text
        template_id = upload.json()["id"]
        body = {"template_id": template_id, "texts": ["UPLOADED"], "format": "png"}
        accepted = client.post("/api/meme/generate", json=body)
        assert accepted.status_code == 202, accepted.text
        meme = wait_rendered(client, accepted.json()["meme_id"])
        assert meme["status"] == "rendered", meme
        data = client.get(f"/api/meme/{meme['id']}/image").content
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
    assert pixels.shape == (240, 320, 3)
    diff = np.abs(pixels - np.array([230, 120, 40])).mean(axis=2)
    assert diff[150:220, 20:300].mean() > 8, "the caption is drawn in the uploader's box"
    assert diff[:140].mean() < 2, "the rest is the uploaded image"


def test_unrenderable_request_becomes_a_failed_meme(api_url: str, stack_settings: Settings) -> None:
    """A well-formed event the renderer refuses is a `failed` meme with the reason."""
    request = MemeRequested(meme_id=new_id(), template_id="no-such-template", texts=["x"])
    producer = Producer({"bootstrap.servers": stack_settings.kafka_bootstrap_servers})
    producer.produce(MEME_REQUESTS.name, key=request.key, value=AvroCodec().encode(request))
    assert producer.flush(10) == 0
    with httpx.Client(base_url=api_url, timeout=10) as client:
        outcome = wait_rendered(client, request.meme_id)
        assert outcome["status"] == "failed"
        assert "no-such-template" in outcome["error"]
        image = client.get(f"/api/meme/{request.meme_id}/image")
        assert image.status_code == 409
        assert image.json()["type"].endswith("/meme-failed")


def test_malformed_event_goes_to_the_dlq_and_the_worker_keeps_running(
    api_url: str, stack_settings: Settings
) -> None:
    key = f"poison-{uuid.uuid4()}".encode()
    producer = Producer({"bootstrap.servers": stack_settings.kafka_bootstrap_servers})
    producer.produce("meme.requests", key=key, value=b"\xc3\x01 definitely not avro")
    producer.produce("meme.requests", key=key + b"-empty", value=None)
    assert producer.flush(10) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": stack_settings.kafka_bootstrap_servers,
            "group.id": f"test-dlq-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe(["meme.requests.dlq"])
    found: dict[bytes, dict[str, bytes]] = {}
    deadline = time.monotonic() + 60
    try:
        while len(found) < 2 and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() or not message.key().startswith(key):
                continue
            found[message.key()] = dict(message.headers() or [])
            if message.key() == key:
                assert message.value() == b"\xc3\x01 definitely not avro"
    finally:
        consumer.close()
    assert set(found) == {key, key + b"-empty"}
    headers = found[key]
    assert headers["dlq.error.class"] == b"SerializationError"
    assert headers["dlq.original.topic"] == b"meme.requests"
    assert b"bad magic" in headers["dlq.error.message"] or b"schema" in headers["dlq.error.message"]

    with httpx.Client(base_url=api_url, timeout=10) as client:
        accepted = client.post(
            "/api/meme/generate", json={"template_id": "drake", "texts": ["still", "alive"]}
        )
        assert wait_rendered(client, accepted.json()["meme_id"])["status"] == "rendered"
