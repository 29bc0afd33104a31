"""`DELETE /api/meme/{meme_id}`: tombstone event, cache and image cleanup (owner or admin)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import Response

from api import outbox
from api.auth import DataDep, UserDep
from api.dependencies import ServicesDep
from api.problems import Problem, problem_responses
from api.routes.memes.routing import memes_router
from domain.events import MemeDeleted
from domain.ids import derived_id, is_valid_id
from producers.topics import MEME_DELETED
from sinks.postgres.lifecycle import soft_delete
from sinks.redis import REDIS_ERRORS

log = logging.getLogger(__name__)
router = memes_router()


@router.delete(
    "/{meme_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(
        401,
        403,
        404,
        422,
        503,
        descriptions={
            401: "Not logged in",
            403: "Only the owner or an admin may delete",
            404: "No such meme",
            503: "PostgreSQL is unavailable; retry (deletes are idempotent)",
        },
    ),
    summary="Delete a meme: tombstone event, cache and image cleanup (owner or admin)",
)
async def delete_meme(
    meme_id: str, services: ServicesDep, data: DataDep, principal: UserDep
) -> Response:
    if not is_valid_id(meme_id):
        raise Problem(404, "meme-not-found", "No such meme", f"{meme_id!r} is not a meme id")
    try:
        record = await services.memes.get(meme_id)
    except ValueError as exc:
        raise Problem(404, "meme-not-found", "No such meme", str(exc)) from exc
    if record is None:
        raise Problem(404, "meme-not-found", "No such meme", f"no meme has the id {meme_id}")
    if record.owner_id != principal.user_id and not principal.is_admin:
        raise Problem(403, "forbidden", "Not your meme", "only its owner or an admin may delete it")
    # Derived id: a retried delete stages the same event, which every sink dedupes. Staged in
    # the outbox in the delete's transaction (api/outbox.py): Kafka gets it whenever it can.
    tombstone = MemeDeleted(
        event_id=derived_id(meme_id, "deleted"), meme_id=meme_id, deleted_by=principal.user_id
    )
    # The row as the delete locked it: a render recorded since `record` was read has its
    # images listed there; one recorded later finds the row deleted and removes its own.
    locked = await soft_delete(
        services.pool, meme_id, lambda _: (outbox.message(MEME_DELETED.name, tombstone),)
    )
    try:
        await data.cache.invalidate(meme_id)
        await data.recent.remove(meme_id)
    except REDIS_ERRORS as exc:  # the cache entry expires within MEME_CACHE_TTL_S
        log.warning("cache entry of deleted meme %s not dropped: %s", meme_id, exc)
    for variant in (locked or record).variants:
        try:
            await asyncio.to_thread(services.storage.delete, variant["key"])
        except Exception as exc:  # an orphan image is unreachable: the row says deleted
            log.warning("image %s of deleted meme not removed: %s", variant["key"], exc)
    return Response(status_code=204)
