"""`Idempotency-Key` for POST endpoints: a retried request gets the first one's answer.

Keys are scoped to the caller (user, or IP when anonymous) and kept `IDEMPOTENCY_TTL_S` (24 h).
Same key + same body -> the stored status and body, with `Idempotent-Replayed: true`; same key
while the first request still runs -> 409 with `Retry-After`; same key + different body -> 422.
Redis down: a keyed request is refused with 503 rather than risk a duplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.auth import Principal
from api.data_layer import DataLayer
from api.problems import Problem, unavailable
from sinks.redis import REDIS_ERRORS

HEADER = "Idempotency-Key"
ModelT = TypeVar("ModelT", bound=BaseModel)
MAX_KEY_LENGTH = 255


@dataclass(slots=True)
class IdempotentCall:
    data: DataLayer
    key: str
    fingerprint: str

    @classmethod
    async def begin(
        cls, request: Request, principal: Principal, data: DataLayer, body: BaseModel
    ) -> IdempotentCall | JSONResponse | None:
        """None without a key; a replayed response; or the claim this request now holds."""
        raw = request.headers.get(HEADER)
        if raw is None:
            return None
        if not 1 <= len(raw) <= MAX_KEY_LENGTH or not raw.isprintable():
            raise Problem(
                400,
                "invalid-idempotency-key",
                "Invalid Idempotency-Key",
                f"1 to {MAX_KEY_LENGTH} printable characters",
            )
        scoped = f"{request.url.path}:{principal.limit_key}"
        key = data.idempotency.key(scoped, raw)
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        try:
            stored = await data.idempotency.claim(key, fingerprint)
        except REDIS_ERRORS as exc:
            raise unavailable("redis (idempotency keys)") from exc
        if stored is None:
            return cls(data, key, fingerprint)
        if stored.fingerprint != fingerprint:
            raise Problem(
                422,
                "idempotency-key-reused",
                "Idempotency-Key reused with another body",
                "an Idempotency-Key identifies one request; use a new key for a new body",
            )
        if stored.status is None:
            raise Problem(
                409,
                "idempotency-in-progress",
                "The first request with this key still runs",
                headers={"Retry-After": "1"},
            )
        return JSONResponse(
            stored.body, status_code=stored.status, headers={"Idempotent-Replayed": "true"}
        )

    async def finish(self, status: int, body: Any) -> None:
        try:
            await self.data.idempotency.complete(self.key, self.fingerprint, status, body)
        except REDIS_ERRORS:
            await self.fail()

    async def fail(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):  # else the claim expires after a minute
            await self.data.idempotency.release(self.key)


async def answer_once(
    call: IdempotentCall | None, work: Awaitable[tuple[int, ModelT]]
) -> tuple[int, ModelT]:
    """Runs `work` (a status and body) under the call's claim: the answer is stored for
    replays; a failure (any exception, a cancelled request too) frees the key for a retry."""
    try:
        status, body = await work
    except BaseException:
        if call is not None:
            await call.fail()
        raise
    if call is not None:
        await call.finish(status, body.model_dump(mode="json"))
    return status, body
