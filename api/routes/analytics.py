"""`GET /api/analytics/...`: generation rate, votes and views over time, top templates, render
latency percentiles, from ClickHouse's per-minute rollups (see `api/analytics_reader.py` for who
answers: the ClickHouse server, or the analytics worker that owns the chDB folder).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from api.analytics_reader import AnalyticsUnavailable
from api.auth import DataDep
from api.problems import LIMITED_STATUSES, Problem, problem_responses, unavailable
from api.ratelimit import RateLimited

router = APIRouter(
    prefix="/api/analytics",
    tags=["analytics"],
    dependencies=[RateLimited],
    responses=problem_responses(*LIMITED_STATUSES),
)

Minutes = Annotated[int, Query(ge=1, le=44640, description="Window: the last N minutes")]
Step = Annotated[int, Query(ge=1, le=44640, description="Bucket size in minutes")]


class Series(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": "generation-rate",
                    "minutes": 60,
                    "step_minutes": 30,
                    "rows": [
                        {
                            "bucket": "2026-11-29T03:00:00+00:00",
                            "requested": 410,
                            "rendered": 402,
                            "failed": 3,
                        },
                        {
                            "bucket": "2026-11-29T03:30:00+00:00",
                            "requested": 388,
                            "rendered": 385,
                            "failed": 1,
                        },
                    ],
                }
            ]
        }
    )
    query: str
    minutes: int
    step_minutes: int
    rows: list[dict[str, Any]]


async def _run(data: DataDep, name: str, minutes: int, step: int, **extra: Any) -> Series:
    if step > minutes:
        raise Problem(422, "validation-error", "step_minutes must not exceed minutes")
    args = {"minutes": minutes, "step_minutes": step, **{k: v for k, v in extra.items() if v}}
    try:
        rows = await data.analytics.query(name, args)
    except ValueError as exc:
        raise Problem(422, "validation-error", "Invalid analytics arguments", str(exc)) from exc
    except AnalyticsUnavailable as exc:
        raise unavailable("analytics") from exc
    return Series(query=name, minutes=minutes, step_minutes=step, rows=rows)


_RESPONSES = problem_responses(
    422, 503, descriptions={503: "ClickHouse (or the analytics worker) is unavailable"}
)


@router.get(
    "/generation-rate",
    response_model=Series,
    responses=_RESPONSES,
    summary="Memes requested, rendered and failed per bucket",
)
async def generation_rate(data: DataDep, minutes: Minutes = 60, step_minutes: Step = 1) -> Series:
    return await _run(data, "generation-rate", minutes, step_minutes)


@router.get(
    "/engagement",
    response_model=Series,
    responses=_RESPONSES,
    summary="Views, up- and down-votes per bucket (all memes or one)",
)
async def engagement(
    data: DataDep,
    minutes: Minutes = 60,
    step_minutes: Step = 1,
    meme_id: Annotated[
        str | None,
        Query(max_length=36, pattern=r"^[0-9a-fA-F]{8}-?(?:[0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$"),
    ] = None,
) -> Series:
    return await _run(data, "engagement", minutes, step_minutes, meme_id=meme_id)


@router.get(
    "/top-templates",
    response_model=Series,
    responses=_RESPONSES,
    summary="Templates by memes rendered in the window",
)
async def top_templates(
    data: DataDep,
    minutes: Minutes = 1440,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Series:
    return await _run(data, "top-templates", minutes, minutes, limit=limit)


@router.get(
    "/render-latency",
    response_model=Series,
    responses=_RESPONSES,
    summary="Render time p50, p95, p99 (ms) per bucket",
)
async def render_latency(data: DataDep, minutes: Minutes = 60, step_minutes: Step = 5) -> Series:
    return await _run(data, "render-latency", minutes, min(step_minutes, minutes))
