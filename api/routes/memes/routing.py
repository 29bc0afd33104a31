"""The router every memes module declares its routes on.

Each module's router carries the `/api/meme` prefix, tag, rate limit and shared responses
itself, and the app includes them one by one: a parent router including these would hand the
metrics and tracing middlewares the inner route's relative path (`/{meme_id}`) as its template.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.problems import LIMITED_STATUSES, problem_responses
from api.ratelimit import RateLimited


def memes_router() -> APIRouter:
    return APIRouter(
        prefix="/api/meme",
        tags=["memes"],
        dependencies=[RateLimited],
        responses=problem_responses(*LIMITED_STATUSES),
    )
