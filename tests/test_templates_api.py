"""Templates (list, search, upload with validation) and the streamed export of a user's memes."""

from __future__ import annotations

import io
import json
import os
import socket
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from api.limits import MULTIPART_OVERHEAD
from api.uploads import cleanup
from domain.settings import MAX_IMAGE_BYTES, Settings
from domain.templates import TemplateCatalog
from loadgen.images import noise_png
from memestream.testing.memes import insert_meme
from sinks.postgres.templates import seed_templates
from sinks.storage import object_store
from tests.data_helpers import register


@pytest.fixture(scope="module")
def settings(stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    seed_templates(stack_settings)
    folder = tmp_path_factory.mktemp("uploads")
    return stack_settings.model_copy(update={"upload_tmp_dir": folder})


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def user(client: TestClient) -> dict:  # type: ignore[type-arg]
    account = register(client, "up")
    client.cookies.clear()
    return account


def png(width: int = 200, height: int = 150) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def test_list_filter_and_get(client: TestClient) -> None:
    catalog = TemplateCatalog.default()
    listed = client.get("/api/templates", params={"limit": 200}).json()
    assert set(catalog.ids()) <= {t["id"] for t in listed}
    drake = catalog.get("drake")
    same_category = client.get("/api/templates", params={"category": drake.category}).json()
    assert same_category and all(t["category"] == drake.category for t in same_category)
    one = client.get("/api/templates/drake").json()
    assert (one["name"], one["source"], len(one["boxes"])) == (drake.name, "catalog", 2)
    missing = client.get("/api/templates/nope")
    assert missing.status_code == 404 and missing.json()["type"].endswith("/template-not-found")


def test_search_ranks_names_and_tags(client: TestClient) -> None:
    drake = TemplateCatalog.default().get("drake")
    found = client.get("/api/templates/search", params={"q": drake.name}).json()
    assert found[0]["id"] == "drake"
    by_tag = client.get("/api/templates/search", params={"q": drake.tags[0]}).json()
    assert "drake" in [t["id"] for t in by_tag]
    assert client.get("/api/templates/search", params={"q": "zzqxj"}).json() == []
    assert client.get("/api/templates/search").status_code == 422


def test_upload_stores_image_and_row(client: TestClient, user: dict, settings: Settings) -> None:  # type: ignore[type-arg]
    name = f"Blue Square {uuid.uuid4().hex[:6]}"
    boxes = [{"x": 10, "y": 10, "width": 180, "height": 40}]
    response = client.post(
        "/api/templates",
        headers=user["headers"],
        data={"name": name, "tags": "blue, square", "boxes": json.dumps(boxes)},
        files={"file": ("blue.png", png(), "image/png")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("u-blue-square-") and body["source"] == "upload"
    assert (body["width"], body["height"], body["owner_id"]) == (200, 150, user["id"])
    assert body["boxes"][0]["width"] == 180 and body["tags"] == ["blue", "square"]
    stored = object_store(settings).get(f"templates/uploads/{body['id']}/original.png")
    assert stored.data == png()
    found = client.get("/api/templates/search", params={"q": name}).json()
    assert found[0]["id"] == body["id"]
    default = client.post(
        "/api/templates",
        headers=user["headers"],
        data={"name": "defaults"},
        files={"file": ("d.png", png(), "image/png")},
    ).json()
    assert [b["name"] for b in default["boxes"]] == ["top", "bottom"]
    assert list(settings.upload_tmp_dir.iterdir()) == []  # spooled files are removed


@pytest.mark.parametrize(
    ("content", "media_type", "boxes", "status", "slug"),
    [
        (png(), "image/jpeg", None, 415, "unsupported-image"),
        (b"plain text, not an image", "image/png", None, 415, "unsupported-image"),
        (png()[:60], "image/png", None, 422, "invalid-image"),
        (
            png(),
            "image/png",
            '[{"x": 150, "y": 0, "width": 100, "height": 10}]',
            422,
            "invalid-boxes",
        ),
        (png(), "image/png", "not json", 422, "invalid-boxes"),
    ],
)
def test_bad_uploads_are_refused(  # type: ignore[no-untyped-def]
    client: TestClient,
    user: dict,
    content,
    media_type,
    boxes,
    status,
    slug,  # type: ignore[type-arg]
) -> None:
    data = {"name": "bad"} | ({"boxes": boxes} if boxes else {})
    response = client.post(
        "/api/templates",
        headers=user["headers"],
        data=data,
        files={"file": ("f", content, media_type)},
    )
    assert response.status_code == status, response.text
    assert response.json()["type"].endswith("/" + slug)


def test_upload_needs_an_account(client: TestClient) -> None:
    anonymous = client.post(
        "/api/templates", data={"name": "x"}, files={"file": ("f.png", png(), "image/png")}
    )
    assert anonymous.status_code == 401


def test_a_10_mb_png_is_accepted(client: TestClient, user: dict, settings: Settings) -> None:  # type: ignore[type-arg]
    """The loadgen memory scenario's upload: 10.5 MB, ten times the JSON body limit."""
    big = noise_png(5, 1871, 1871)
    assert len(big) > 10_000_000 and len(big) > settings.max_body_bytes
    response = client.post(
        "/api/templates",
        headers=user["headers"],
        data={"name": "big noise"},
        files={"file": ("big.png", big, "image/png")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (1871, 1871)
    key = f"templates/uploads/{body['id']}/original.png"
    assert len(object_store(settings).get(key).data) == len(big)


def test_uploads_have_their_own_limit_and_json_keeps_its_own(settings: Settings) -> None:
    """MAX_UPLOAD_BYTES bounds image uploads (body and file), MAX_BODY_BYTES everything else."""
    limit = 2 * 1024 * 1024
    small = settings.model_copy(update={"max_upload_bytes": limit})
    with TestClient(create_app(small)) as client:
        account = register(client, "lim")
        client.cookies.clear()

        def upload(content: bytes) -> httpx.Response:
            return client.post(
                "/api/templates",
                headers=account["headers"],
                data={"name": "limit"},
                files={"file": ("f.png", content, "image/png")},
            )

        # Over the JSON limit, within the upload limit: accepted.
        fits = noise_png(1, 700, 700)
        assert settings.max_body_bytes < len(fits) < limit
        assert upload(fits).status_code == 201
        # A body over the limit is refused by the middleware, a file over it while spooling.
        too_big = upload(os.urandom(limit + MULTIPART_OVERHEAD))
        assert too_big.status_code == 413, too_big.text
        assert too_big.headers["content-type"].startswith("application/problem+json")
        assert too_big.json()["type"].endswith("/payload-too-large")
        assert "MAX_UPLOAD_BYTES" in too_big.json()["detail"]
        file_too_big = upload(os.urandom(limit + 1))
        assert file_too_big.status_code == 413, file_too_big.text
        assert file_too_big.json()["type"].endswith("/payload-too-large")
        # JSON bodies stay at MAX_BODY_BYTES, even on the upload routes' paths.
        text = "x" * (settings.max_body_bytes + 1)
        json_body = client.post("/api/templates/suggest", json={"text": text})
        assert json_body.status_code == 413
        assert "MAX_BODY_BYTES" in json_body.json()["detail"]


def test_a_too_large_upload_is_refused_before_its_body_is_sent(api_url: str) -> None:
    """A declared length over the limit is answered at once: the server reads none of it."""
    declared = 3 * MAX_IMAGE_BYTES
    host, port = api_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            "POST /api/templates HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + b"--x\r\n" + b"\0" * 65536)  # and nothing more
        reader = sock.makefile("rb")
        status = reader.readline().split()
        headers = {}
        while line := reader.readline().strip():
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        body = reader.read(int(headers["content-length"]))
    assert status[1] == b"413", (status, headers, body)
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["type"].endswith("/payload-too-large")


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


def test_an_animation_over_max_frames_is_refused(
    client: TestClient,
    user: dict,
    settings: Settings,  # type: ignore[type-arg]
) -> None:
    """The render worker refuses more than MAX_FRAMES frames, so the upload does too."""
    response = client.post(
        "/api/templates",
        headers=user["headers"],
        data={"name": "too long"},
        files={"file": ("long.gif", _gif(settings.max_frames + 1), "image/gif")},
    )
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["type"].endswith("/too-many-frames")
    assert f"MAX_FRAMES is {settings.max_frames}" in body["detail"]


def test_max_frames_is_read_from_the_environment(settings: Settings) -> None:
    with TestClient(create_app(settings.model_copy(update={"max_frames": 5}))) as client:
        account = register(client, "fr")
        client.cookies.clear()
        for frames, status in ((6, 413), (5, 201)):
            response = client.post(
                "/api/templates",
                headers=account["headers"],
                data={"name": "frames"},
                files={"file": ("f.gif", _gif(frames), "image/gif")},
            )
            assert response.status_code == status, response.text
        assert response.json()["frame_count"] == 5


def test_cleanup_removes_only_stale_spooled_files(tmp_path: Path) -> None:
    old, new = tmp_path / "old.upload", tmp_path / "new.upload"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert cleanup(tmp_path) == 1
    assert not old.exists() and new.exists()


def test_export_streams_a_zip_of_my_memes(client: TestClient, settings: Settings) -> None:
    owner = register(client, "exp")
    client.cookies.clear()
    storage = object_store(settings)
    storage.ensure_bucket()
    ids = []
    for i in range(2):
        key = f"memes/test-export/{uuid.uuid4().hex}/full.png"
        storage.put(key, png(20 + i, 20), "image/png")
        variant = {
            "size": "full",
            "key": key,
            "width": 20 + i,
            "height": 20,
            "bytes": 1,
            "media_type": "image/png",
        }
        ids.append(
            insert_meme(settings, owner_id=owner["id"], variants=[variant], texts=[f"export {i}"])
        )
    insert_meme(settings, owner_id=owner["id"], status="deleted")
    response = client.get("/api/me/export", headers=owner["headers"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = json.loads(archive.read("manifest.json"))
    assert {m["id"] for m in manifest["memes"]} == set(ids)
    for meme_id in ids:
        image = Image.open(io.BytesIO(archive.read(f"memes/{meme_id}.png")))
        assert image.size[1] == 20
    assert client.get("/api/me/export").status_code == 401
