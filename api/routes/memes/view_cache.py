"""The JSON body of each meme record the cache hands out, made once per record object."""

from __future__ import annotations

from api.routes.memes.view import meme_view
from sinks.postgres.memes import MemeRecord


class SerializedViews:
    """The JSON body of each record the meme cache hands out, made once per record object.

    The cache's per-process copy returns the same frozen record for MEME_LOCAL_CACHE_TTL_S,
    so a hot meme is serialized once in that time, not on every read (building and dumping
    the pydantic model was most of the handler's own cost). Any other record object (reloaded
    from Redis or PostgreSQL, changed, deleted) fails the identity check and is serialized anew.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._bodies: dict[str, tuple[MemeRecord, bytes]] = {}

    def json(self, record: MemeRecord) -> bytes:
        entry = self._bodies.get(record.id)
        if entry is not None and entry[0] is record:
            return entry[1]
        body = meme_view(record).model_dump_json().encode()
        if len(self._bodies) >= self.max_entries:
            self._bodies.clear()
        self._bodies[record.id] = (record, body)
        return body
