"""Reading memes: `GET /api/meme/recent` and `GET /api/meme/{meme_id}` (counts a view)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Query, Request, Response

from api.auth import DataDep, get_principal
from api.dependencies import Services, ServicesDep
from api.models import MemeView
from api.problems import Problem, problem_responses
from api.routes.memes.routing import memes_router
from api.routes.memes.view import meme_view
from api.routes.memes.view_cache import SerializedViews
from domain.ids import id_time, is_valid_id
from sinks.postgres.lifecycle import recent_rendered
from sinks.postgres.memes import MemeRecord
from sinks.redis import REDIS_ERRORS

router = memes_router()
_BODIES = SerializedViews()


async def load_meme(meme_id: str, services: Services) -> MemeRecord:
    if not is_valid_id(meme_id):
        raise Problem(404, "meme-not-found", "No such meme", f"{meme_id!r} is not a meme id")
    try:
        if services.data is not None:
            record = await services.data.cache.read_through(meme_id, services.memes.get)
        else:
            record = await services.memes.get(meme_id)
    except ValueError as exc:  # a UUID that is not a v7 id can never be ours
        raise Problem(404, "meme-not-found", "No such meme", str(exc)) from exc
    if record is None or record.status == "deleted":
        raise Problem(404, "meme-not-found", "No such meme", f"no meme has the id {meme_id}")
    return record


@router.get(
    "/recent",
    response_model=list[MemeView],
    responses={
        200: {
            "description": "The page, newest first",
            "headers": {
                "Link": {
                    "description": 'The next (older) page: `<...?before={id}>; rel="next"`; '
                    "absent on the last page",
                    "schema": {"type": "string"},
                },
            },
        },
        **problem_responses(422, 503, descriptions={422: "Invalid `limit` or `before`"}),
    },
    summary="The newest rendered memes, newest first, a page at a time (cursor: `before`)",
    description=(
        "The first page comes from the Redis recent list (PostgreSQL when Redis is down or no "
        "id of the list is a rendered meme); `before` (the `Link` header's next page, the "
        "oldest meme id of the page) reads older pages from PostgreSQL by (created_at, id), so "
        "paging never repeats a meme. A meme rendered so late that it is older than the whole "
        "first page yet was not in the list when that page was read shows up only on a reload."
    ),
)
async def recent(
    services: ServicesDep,
    data: DataDep,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[
        str | None, Query(description="A meme id: list the memes created before it")
    ] = None,
) -> list[MemeView]:
    if before is not None:
        if not is_v7_id(before):
            raise Problem(422, "invalid-cursor", "Invalid cursor", "`before` is a meme id")
        records = await recent_rendered(services.pool, limit, before)
    else:
        try:
            ids = await data.recent.list(limit)
        except REDIS_ERRORS:
            ids = []
        loaded = await asyncio.gather(
            *(data.cache.read_through(i, services.memes.get) for i in ids)
        )
        records = [r for r in loaded if r is not None and r.status == "rendered"]
        if not records:
            # An empty list, or one whose ids are all gone (deleted, never stored): the truth.
            records = await recent_rendered(services.pool, limit)
    if len(records) >= limit or (before is None and records):
        oldest = min(records, key=lambda r: (r.created_at, r.id))
        next_url = request.url.include_query_params(before=oldest.id, limit=limit)
        response.headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
    return [meme_view(r) for r in records]


def is_v7_id(value: str) -> bool:
    try:
        id_time(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


@router.get(
    "/{meme_id}",
    response_class=Response,
    responses={
        200: {"model": MemeView, "description": "The meme"},
        **problem_responses(422, 404, 503, descriptions={404: "No such meme"}),
    },
    summary="A meme's status and metadata (counts a view)",
)
async def get_meme(meme_id: str, request: Request) -> Response:
    # The hottest read takes the request, not `ServicesDep`/`PrincipalDep`: FastAPI's
    # per-dependency cost was measurable here, and the rate limit (this router's dependency)
    # has already resolved the principal and cached it on `request.state`.
    services: Services = request.app.state.services
    principal = await get_principal(request)  # a bad credential is a 401, as on every route
    record = await load_meme(meme_id, services)
    if services.data is not None and record.status == "rendered":
        services.data.views.count(record.id, principal.user_id)
    return Response(_BODIES.json(record), media_type="application/json")
