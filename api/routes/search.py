"""Meme search: full-text over captions (PostgreSQL tsvector + GIN), rendered memes only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.dependencies import ServicesDep
from api.models import MemeView
from api.problems import LIMITED_STATUSES, problem_responses
from api.ratelimit import RateLimited
from api.routes.memes.view import meme_view
from api.text_fields import StoredText
from sinks.postgres.search import search_memes

router = APIRouter(
    prefix="/api/search",
    tags=["search"],
    dependencies=[RateLimited],
    responses=problem_responses(*LIMITED_STATUSES),
)


@router.get(
    "/memes",
    response_model=list[MemeView],
    responses=problem_responses(422),
    summary='Search captions (web-search syntax: "a phrase", -exclude, or)',
)
async def search(
    services: ServicesDep,
    q: Annotated[StoredText, Query(min_length=1, max_length=200, examples=["monday coffee"])],
    template_id: Annotated[StoredText | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[MemeView]:
    records = await search_memes(services.pool, q, limit=limit, template_id=template_id)
    return [meme_view(r) for r in records]
