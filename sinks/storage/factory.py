"""Chooses the object store from settings."""

from __future__ import annotations

from domain.settings import Settings, StorageBackend
from sinks.storage.base import ObjectStore
from sinks.storage.filesystem import FilesystemObjectStore
from sinks.storage.s3 import S3ObjectStore


def object_store(settings: Settings) -> ObjectStore:
    if settings.storage_backend is StorageBackend.FILESYSTEM:
        return FilesystemObjectStore(settings.resolved(settings.storage_path))
    return S3ObjectStore(settings)
