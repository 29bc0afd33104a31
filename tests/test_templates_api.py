"""Templates (list, search, upload with validation) and the streamed export of a user's memes."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.app import create_app
from api.uploads import cleanup
from domain.settings import Settings
from domain.templates import TemplateCatalog
from sinks.postgres.templates import seed_templates
from sinks.storage import object_store
from tests.data_helpers import insert_meme, register


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


def test_upload_needs_an_account_and_a_small_file(
    client: TestClient,
    user: dict,
    settings: Settings,  # type: ignore[type-arg]
) -> None:
    anonymous = client.post(
        "/api/templates", data={"name": "x"}, files={"file": ("f.png", png(), "image/png")}
    )
    assert anonymous.status_code == 401
    big = os.urandom(settings.max_body_bytes + 10)
    too_big = client.post(
        "/api/templates",
        headers=user["headers"],
        data={"name": "x"},
        files={"file": ("f.png", big, "image/png")},
    )
    assert too_big.status_code == 413


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
