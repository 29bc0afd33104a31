"""A plain folder as the object store, for one machine without MinIO."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import tempfile
from datetime import timedelta
from pathlib import Path

from sinks.storage.base import ObjectNotFound, StoredObject


class FilesystemObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key escapes the store: {key!r}")
        return path

    def ensure_bucket(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, data: bytes, content_type: str) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half an image.
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            try:
                tmp.write(data)
                tmp.flush()
            except OSError:
                # A full disk must not leave half-written temporaries behind.
                tmp.close()
                os.unlink(tmp.name)
                raise
        os.replace(tmp.name, path)
        return hashlib.md5(data, usedforsecurity=False).hexdigest()

    def get(self, key: str) -> StoredObject:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return StoredObject(
            key, data, content_type, hashlib.md5(data, usedforsecurity=False).hexdigest()
        )

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def presigned_url(self, key: str, expires: timedelta) -> str | None:
        return None
