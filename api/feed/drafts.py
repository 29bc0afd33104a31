"""Shared drafts: several clients edit one draft's fields; last writer wins per field.

A draft is a Redis hash `feed:draft:<id>`: `_v` is the draft's version, `f:<name>` a field's
JSON value and `v:<name>` the version that last wrote it. An update is one Lua script, so it
is atomic across replicas: it bumps the version, writes every field it carries with that
version and leaves the others alone. Concurrent edits of different fields both survive;
of the same field the later one wins, and every client learns which from the broadcast
(field versions only grow, so a client ignores any older value it still receives).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

DRAFT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FIELD_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_FIELDS_PER_UPDATE = 64
MAX_FIELDS = 256
MAX_VALUE_BYTES = 4096

_UPDATE = """
local n = (#ARGV - 2) / 2
local have = math.max(0, (redis.call('HLEN', KEYS[1]) - 1) / 2)
local new = 0
for i = 0, n - 1 do
  if redis.call('HEXISTS', KEYS[1], 'f:' .. ARGV[3 + 2 * i]) == 0 then new = new + 1 end
end
if have + new > tonumber(ARGV[1]) then return -1 end
local v = redis.call('HINCRBY', KEYS[1], '_v', 1)
for i = 0, n - 1 do
  local name = ARGV[3 + 2 * i]
  redis.call('HSET', KEYS[1], 'f:' .. name, ARGV[4 + 2 * i], 'v:' .. name, v)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return v
"""


class DraftError(ValueError):
    """An update we refuse: bad id, bad field name, value too big, too many fields."""


@dataclass(frozen=True, slots=True)
class DraftState:
    draft_id: str
    version: int
    fields: dict[str, dict[str, Any]]  # name -> {"value": ..., "v": version}

    def body(self) -> dict[str, Any]:
        return {"draft": self.draft_id, "version": self.version, "fields": self.fields}


def key(draft_id: str) -> str:
    return f"feed:draft:{draft_id}"


def validate(draft_id: str, fields: object) -> dict[str, bytes]:
    if not isinstance(draft_id, str) or not DRAFT_ID.match(draft_id):
        raise DraftError("draft ids are 1-64 letters, digits, '-' or '_'")
    if not isinstance(fields, dict) or not 0 < len(fields) <= MAX_FIELDS_PER_UPDATE:
        raise DraftError(f"fields must be an object of 1-{MAX_FIELDS_PER_UPDATE} entries")
    encoded: dict[str, bytes] = {}
    for name, value in fields.items():
        if not FIELD_NAME.match(name):
            raise DraftError(f"bad field name {name[:64]!r}")
        if not isinstance(value, str | int | float | bool) and value is not None:
            raise DraftError(f"field {name} must be a string, number, boolean or null")
        raw = orjson.dumps(value)
        if len(raw) > MAX_VALUE_BYTES:
            raise DraftError(f"field {name} is over {MAX_VALUE_BYTES} bytes")
        encoded[name] = raw
    return encoded


class Drafts:
    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._update = redis.register_script(_UPDATE)

    async def update(self, draft_id: str, fields: object) -> DraftState:
        """Applies the fields; the state returned holds only them, at the new version."""
        encoded = validate(draft_id, fields)
        args: list[str | bytes | int] = [MAX_FIELDS, self.ttl_s]
        for name, raw in encoded.items():
            args += [name, raw]
        version = int(await self._update(keys=[key(draft_id)], args=args))
        if version < 0:
            raise DraftError(f"a draft has at most {MAX_FIELDS} fields")
        changed = {n: {"value": orjson.loads(r), "v": version} for n, r in encoded.items()}
        return DraftState(draft_id, version, changed)

    async def get(self, draft_id: str) -> DraftState:
        if not DRAFT_ID.match(draft_id):
            raise DraftError("draft ids are 1-64 letters, digits, '-' or '_'")
        raw = await self.redis.hgetall(key(draft_id))
        version = int(raw.pop(b"_v", 0))
        fields: dict[str, dict[str, Any]] = {}
        for k, value in raw.items():
            name = k.decode()
            if name.startswith("f:"):
                field = name[2:]
                fields[field] = {
                    "value": orjson.loads(value),
                    "v": int(raw.get(f"v:{field}".encode(), 0)),
                }
        return DraftState(draft_id, version, fields)
