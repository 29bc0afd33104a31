"""What every object store offers; callers never see which backend serves them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol


class ObjectNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    data: bytes
    content_type: str
    etag: str | None = None


class ObjectStore(Protocol):
    """Blocking calls: async callers run them in a thread (`asyncio.to_thread`)."""

    def ensure_bucket(self) -> None: ...

    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Stores the bytes under the key (overwriting: puts are idempotent); returns an etag."""
        ...

    def get(self, key: str) -> StoredObject: ...

    def delete(self, key: str) -> None:
        """Deletes the key; deleting a missing key is not an error."""
        ...

    def presigned_url(self, key: str, expires: timedelta) -> str | None:
        """A URL a client can fetch directly, or None where the backend has none."""
        ...


def meme_key(meme_id: str, size: str, extension: str) -> str:
    """Stable keys: one folder per meme, one object per size."""
    return f"memes/{meme_id}/{size}.{extension}"
