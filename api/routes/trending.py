"""`GET /api/meme/trending`: the hot set, from Redis, or from a fallback store when it cannot.

Sources, in order: Redis (`trending:{window}`, kept by the trending worker); when Redis is down
or the set is empty, ClickHouse (net votes plus a tenth of views over the window's minutes) and
then PostgreSQL's `trending_daily` view (net votes per day). The response's `source` says which
answered. After a fallback answer with Redis up but empty, the set is rewarmed with the fallback
ranking (the worker's next tick replaces it with stream scores). Scores are comparable within
one source only. Every source ranks public memes only (rendered, not deleted, not held back by
moderation); ClickHouse counts engagement alone, so its ranking is filtered by PostgreSQL's
statuses. The cursor is an opaque rank offset. The windows, and the span each asks a fallback
store for, are those declared in domain/trending_windows.py.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field

from api.dependencies import ServicesDep
from api.problems import LIMITED_STATUSES, Problem, problem_responses, unavailable
from api.ratelimit import RateLimited
from domain.trending_windows import DEFAULT_WINDOW, WINDOWS, UnknownWindow
from sinks.postgres.trending import public_memes
from sinks.postgres.trending import top_memes as postgres_top
from sinks.redis.client import REDIS_ERRORS
from sinks.redis.trending import Ranked, TrendingSets

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/api/meme",
    tags=["trending"],
    dependencies=[RateLimited],
    responses=problem_responses(*LIMITED_STATUSES),
)

Source = Literal["redis", "clickhouse", "postgres"]
MAX_LIMIT = 100


def declared_window(name: str) -> str:
    """Checked against WINDOWS at each request (not frozen at import), so the route serves
    whatever the declaration holds; an unknown name is the usual 422 validation problem."""
    try:
        WINDOWS.get(name)
    except UnknownWindow:
        raise ValueError(f"window must be one of {', '.join(WINDOWS.names())}") from None
    return name


#: The OpenAPI document lists the windows declared when this module was imported.
WINDOW_ENUM = {"enum": list(WINDOWS.names())}
Window = Annotated[
    str,
    AfterValidator(declared_window),
    Query(description="A trending window", json_schema_extra=WINDOW_ENUM),
]


class TrendingItem(BaseModel):
    rank: int
    meme_id: str
    score: float


class TrendingPage(BaseModel):
    window: Annotated[str, Field(json_schema_extra=WINDOW_ENUM)]
    source: Source
    items: list[TrendingItem]
    next_cursor: str | None
    rewarmed: bool = False


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        offset = int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        offset = -1
        kind = ""
    if kind != "o" or offset < 0:
        raise Problem(422, "invalid-cursor", "Invalid cursor", "use next_cursor from a response")
    return offset


def _page(
    window: str, source: Source, ranked: list[Ranked], offset: int, more: bool
) -> TrendingPage:
    items = [
        TrendingItem(rank=offset + i + 1, meme_id=r.meme_id, score=r.score)
        for i, r in enumerate(ranked)
    ]
    return TrendingPage(
        window=window,
        source=source,
        items=items,
        next_cursor=encode_cursor(offset + len(items)) if more and items else None,
    )


async def _fallback(services: ServicesDep, window: str, top_n: int) -> tuple[Source, list[Ranked]]:
    data = services.data
    if data is not None:
        try:
            rows = await data.analytics.query(
                "top-memes", {"minutes": WINDOWS.get(window).minutes, "limit": top_n}
            )
        except Exception as exc:  # any analytics failure means: ask PostgreSQL
            log.info("trending: ClickHouse fallback unavailable: %s", exc)
        else:
            ranked = [Ranked(r["meme_id"], float(r["score"])) for r in rows]
            try:
                public = await public_memes(services.pool, [r.meme_id for r in ranked])
            except Exception as exc:  # unfiltered beats no answer; the worker's sets are filtered
                log.warning("trending: could not filter the ClickHouse ranking: %s", exc)
            else:
                ranked = [r for r in ranked if r.meme_id in public]
            if ranked:
                return "clickhouse", ranked
    try:
        rows = await postgres_top(services.pool, window, 0, top_n)
    except Exception as exc:
        log.warning("trending: PostgreSQL fallback failed: %s", exc)
        raise unavailable("trending") from exc
    return "postgres", [Ranked(m, s) for m, s in rows]


@router.get(
    "/trending",
    response_model=TrendingPage,
    responses=problem_responses(
        422,
        503,
        descriptions={
            422: "Invalid window, limit or cursor",
            503: "Redis and every fallback store are unavailable",
        },
    ),
    summary="The trending memes of a window, best first",
)
async def trending(
    services: ServicesDep,
    window: Window = DEFAULT_WINDOW.name,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: str | None = None,
) -> TrendingPage:
    offset = decode_cursor(cursor)
    top_n = services.settings.trending_top_n
    sets = TrendingSets(services.data.redis, top_n) if services.data is not None else None
    redis_up = False
    if sets is not None:
        try:
            ranked, size, decay = await sets.read(window, offset, limit)
            redis_up = True
        except REDIS_ERRORS as exc:
            log.info("trending: Redis unavailable, falling back: %s", exc)
        else:
            if size:
                if decay is not None:
                    now = time.time()
                    ranked = [Ranked(r.meme_id, decay.now(r.score, now)) for r in ranked]
                return _page(window, "redis", ranked, offset, offset + len(ranked) < size)
    source, best = await _fallback(services, window, top_n)
    page = _page(window, source, best[offset : offset + limit], offset, offset + limit < len(best))
    if redis_up and sets is not None and best:
        try:
            page.rewarmed = await sets.warm(window, best)
        except REDIS_ERRORS as exc:
            log.info("trending: rewarm failed: %s", exc)
    return page
