"""`GET /api/me/export`: the caller's rendered memes as a streamed zip (full-size images plus a
`manifest.json`), read from object storage one image at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.auth import UserDep
from api.dependencies import ServicesDep
from api.problems import LIMITED_STATUSES, problem_responses
from api.ratelimit import RateLimited
from api.zipstream import zip_stream
from sinks.postgres.lifecycle import owned_memes
from sinks.postgres.memes import MemeRecord
from sinks.storage import ObjectNotFound, ObjectStore

router = APIRouter(
    prefix="/api/me",
    tags=["export"],
    dependencies=[RateLimited],
    responses=problem_responses(*LIMITED_STATUSES),
)
MAX_EXPORT = 10_000


def _loader(storage: ObjectStore, key: str) -> Callable[[], bytes | None]:
    def load() -> bytes | None:
        try:
            return storage.get(key).data
        except ObjectNotFound:
            return None  # a lost image leaves the archive complete otherwise

    return load


def _entries(
    records: list[MemeRecord], storage: ObjectStore
) -> list[tuple[str, Callable[[], bytes | None]]]:
    entries: list[tuple[str, Callable[[], bytes | None]]] = []
    manifest: list[dict[str, Any]] = []
    for record in records:
        full = next((v for v in record.variants if v["size"] == "full"), None)
        if full is None:
            continue
        extension = full["key"].rsplit(".", 1)[-1]
        name = f"memes/{record.id}.{extension}"
        entries.append((name, _loader(storage, full["key"])))
        manifest.append(
            {
                "id": record.id,
                "file": name,
                "template_id": record.template_id,
                "texts": record.texts,
                "created_at": record.created_at.isoformat(),
            }
        )
    body = orjson.dumps({"memes": manifest}, option=orjson.OPT_INDENT_2)
    entries.append(("manifest.json", lambda: body))
    return entries


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "A zip, streamed"},
        **problem_responses(401, descriptions={401: "Exporting needs an account"}),
    },
    summary="Download my rendered memes as a zip (streamed)",
)
async def export(services: ServicesDep, principal: UserDep) -> StreamingResponse:
    assert principal.user_id
    records: list[MemeRecord] = []
    async for record in owned_memes(services.pool, principal.user_id, limit=MAX_EXPORT):
        records.append(record)
    return StreamingResponse(
        zip_stream(_entries(records, services.storage)),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="memestream-export.zip"'},
    )
