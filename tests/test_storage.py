"""Object storage: the same contract on MinIO and on a plain folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from domain.settings import Settings, StorageBackend
from sinks.storage import ObjectNotFound, ObjectStore, object_store
from sinks.storage.filesystem import FilesystemObjectStore


@pytest.fixture(params=[pytest.param("minio", marks=pytest.mark.services), "filesystem"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "filesystem":
        yield FilesystemObjectStore(tmp_path / "objects")
        return
    settings: Settings = request.getfixturevalue("stack_settings")
    store = object_store(settings.model_copy(update={"storage_backend": StorageBackend.S3}))
    yield store


def test_put_get_delete(store: ObjectStore) -> None:
    store.ensure_bucket()
    key = f"memes/{uuid.uuid4()}/full.png"
    data = b"\x89PNG fake bytes" * 100
    assert store.put(key, data, "image/png")
    stored = store.get(key)
    assert stored.data == data
    assert stored.content_type == "image/png"
    store.put(key, data, "image/png")  # idempotent overwrite
    store.delete(key)
    store.delete(key)  # deleting twice is fine
    with pytest.raises(ObjectNotFound):
        store.get(key)


def test_presigned_url_serves_the_object(stack_settings: Settings) -> None:
    store = object_store(stack_settings)
    store.ensure_bucket()
    key = f"memes/{uuid.uuid4()}/thumb.jpeg"
    store.put(key, b"jpeg-bytes", "image/jpeg")
    url = store.presigned_url(key, timedelta(minutes=1))
    assert url is not None and url.startswith("http://127.0.0.1")
    assert httpx.get(url).content == b"jpeg-bytes"


def test_filesystem_rejects_keys_that_escape(tmp_path: Path) -> None:
    store = FilesystemObjectStore(tmp_path / "objects")
    with pytest.raises(ValueError):
        store.put("../../etc/passwd", b"x", "text/plain")
