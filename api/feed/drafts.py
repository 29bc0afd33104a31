"""Shared drafts: one Yjs document per draft, merged on the server with pycrdt.

Browsers edit a draft as a Y.Doc (api/static/js/draft-sync.js) and send its binary updates
over the feed WebSocket. A CRDT update merges with any other in any order, so co-editors
typing into the same caption at once converge on the same text instead of one overwriting
the other.

The merged state lives in Redis (`feed:ydraft:<id>`: `s` the encoded state, `v` a version),
so every API replica and a reload see the same document. A replica keeps a pycrdt Doc per
draft it serves and writes through a compare-and-set on `v`: it applies the update to its
Doc (first merging Redis' state when another replica wrote since), then stores the Doc's
state only if `v` is still what it read; otherwise it merges again. Merging is idempotent,
so a retry never duplicates an edit, and no replica can overwrite one it has not seen.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import OrderedDict
from dataclasses import dataclass

from pycrdt import Doc
from redis.asyncio import Redis

DRAFT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: A draft is a few captions and numbers; this bounds what one room can store.
MAX_STATE_BYTES = 256 * 1024
#: One update in one WebSocket frame (frames are at most 64 KiB of JSON, base64 inside).
MAX_UPDATE_BYTES = 40 * 1024
#: Awareness (who edits which box) is a few fields per co-editor.
MAX_AWARENESS_BYTES = 4 * 1024
CACHED_DOCS = 512
CAS_ATTEMPTS = 16

_STORE = """
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 's', ARGV[2], 'v', v + 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return v + 1
"""


class DraftError(ValueError):
    """An update we refuse: bad id, not a Yjs update, too big."""


@dataclass(frozen=True, slots=True)
class Sync:
    """The join reply: what the joiner lacks, and the server's state vector so the joiner
    can send what the server lacks (the two steps of the Yjs sync protocol)."""

    update: bytes
    state_vector: bytes
    version: int


def key(draft_id: str) -> str:
    return f"feed:ydraft:{draft_id}"


def check_id(draft_id: object) -> str:
    if not isinstance(draft_id, str) or not DRAFT_ID.match(draft_id):
        raise DraftError("draft ids are 1-64 letters, digits, '-' or '_'")
    return draft_id


def decode(payload: object, limit: int, what: str) -> bytes:
    """Base64 (the frames are JSON text) to bytes, bounded."""
    if not isinstance(payload, str) or len(payload) > limit * 4 // 3 + 4:
        raise DraftError(f"{what} is base64 of at most {limit} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise DraftError(f"{what} is not base64") from exc


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Drafts:
    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._store = redis.register_script(_STORE)
        self._docs: OrderedDict[str, tuple[int, Doc]] = OrderedDict()

    async def _current(self, draft_id: str) -> tuple[int, Doc]:
        """This replica's Doc for the draft, brought up to Redis' version."""
        raw_v, state = await self.redis.hmget(key(draft_id), ["v", "s"])
        version = int(raw_v or 0)
        cached = self._docs.get(draft_id)
        if cached is not None and cached[0] == version:
            self._docs.move_to_end(draft_id)
            return cached
        doc = cached[1] if cached is not None else Doc()
        if state:
            doc.apply_update(state)
        self._remember(draft_id, version, doc)
        return version, doc

    def _remember(self, draft_id: str, version: int, doc: Doc) -> None:
        self._docs[draft_id] = (version, doc)
        self._docs.move_to_end(draft_id)
        while len(self._docs) > CACHED_DOCS:
            self._docs.popitem(last=False)

    async def sync(self, draft_id: str, state_vector: bytes | None) -> Sync:
        """What a client with `state_vector` (None: nothing) lacks of the stored draft."""
        version, doc = await self._current(check_id(draft_id))
        try:
            update = doc.get_update(state_vector or None)
        except ValueError as exc:
            raise DraftError(f"not a Yjs state vector: {exc}") from exc
        return Sync(update, doc.get_state(), version)

    async def apply(self, draft_id: str, update: bytes) -> int:
        """Merges a client's update into the stored draft; returns the new version."""
        check_id(draft_id)
        for _ in range(CAS_ATTEMPTS):
            version, doc = await self._current(draft_id)
            try:
                doc.apply_update(update)
            except ValueError as exc:
                self._docs.pop(draft_id, None)  # do not trust a Doc a bad update touched
                raise DraftError(f"not a Yjs update: {exc}") from exc
            state = doc.get_update()
            if len(state) > MAX_STATE_BYTES:
                self._docs.pop(draft_id, None)  # forget the refused update
                raise DraftError(f"a draft is at most {MAX_STATE_BYTES} bytes")
            stored = int(await self._store(keys=[key(draft_id)], args=[version, state, self.ttl_s]))
            if stored > 0:
                self._remember(draft_id, stored, doc)
                return stored
        raise DraftError("the draft is too busy; retry")
