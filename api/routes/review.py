"""Review of the memes moderation flagged: the queue, approve and reject (admins only).

The render worker stores a meme between the flag and reject thresholds as `flagged`: rendered,
kept out of public places (the `new` feed channel, the recent list, trending, votes). An admin
decides once (sinks/postgres/review.py records who, when and why on the row):

- approve: the meme becomes `rendered`, i.e. public. Its MemeRendered (moderation `approved`)
  goes to `meme.rendered` on the meme's partition, after the flag, so the trending worker lets
  it trend again with the counts it had, and a FeedEvent puts it on the `new` channel;
- reject: the meme becomes `rejected` and its images are removed, as moderation's own
  rejections have none (the row keeps the texts, the scores and the decision); its MemeRendered
  (status `failed`, moderation `rejected`) keeps it out of trending for good.

Both drop the meme's Redis cache entry and fix the recent list at once, rather than waiting
for the analytics worker to do it from the event, and publish the new status on the meme's
pub/sub channel (sinks/redis/status.py), as the render worker does for a render. The events are
staged in the outbox in the decision's transaction (api/outbox.py), so a Kafka outage delays
them and loses nothing. Deciding again as before answers the recorded decision and re-sends its
events (same event id, so every consumer dedupes); the other decision is a 409.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api import outbox
from api.auth import AdminDep, DataDep
from api.dependencies import ServicesDep
from api.models import ImageInfo
from api.problems import Problem, problem_responses
from api.ratelimit import RateLimited
from api.routes.memes.view import image_infos
from domain.events import (
    APPROVED,
    REVIEW_LABEL,
    FeedEvent,
    ImageVariant,
    MemeRendered,
    RenderStatus,
)
from domain.ids import derived_id, id_time, is_valid_id
from producers.topics import MEME_FEED, MEME_RENDERED
from sinks.postgres.outbox import OutboxMessage
from sinks.postgres.review import (
    Decided,
    Decision,
    FlaggedMeme,
    NotInReview,
    decide,
    flagged_count,
    flagged_memes,
)
from sinks.redis import REDIS_ERRORS
from sinks.redis.status import publish_status

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/admin/review", tags=["review"], dependencies=[RateLimited])


class ModerationEvidence(BaseModel):
    """What moderation stored when it flagged the meme."""

    decision: str | None
    score: float | None
    reason: str | None


class ReviewItem(BaseModel):
    id: str
    created_at: datetime
    template_id: str
    texts: list[str]
    owner_id: str | None
    format: str | None
    rendered_at: datetime | None
    images: dict[str, ImageInfo]
    moderation: ModerationEvidence
    sentiment: str | None
    sentiment_score: float | None


class ReviewQueue(BaseModel):
    total: int  # memes awaiting review, all pages
    items: list[ReviewItem]
    next_cursor: str | None


class ReviewNote(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"note": "satire, not harassment"}]}
    )

    note: str | None = Field(None, max_length=500, description="Why; kept on the meme")


class ReviewOutcome(BaseModel):
    meme_id: str
    status: Literal["rendered", "rejected"]
    decision: Literal["approved", "rejected"]
    reviewed_by: str
    reviewed_at: datetime
    note: str | None


def _item(meme: FlaggedMeme) -> ReviewItem:
    return ReviewItem(
        id=meme.id,
        created_at=meme.created_at,
        template_id=meme.template_id,
        texts=meme.texts,
        owner_id=meme.owner_id,
        format=meme.format,
        rendered_at=meme.rendered_at,
        images=image_infos(meme.id, meme.variants),
        moderation=ModerationEvidence(
            decision=meme.moderation, score=meme.moderation_score, reason=meme.moderation_reason
        ),
        sentiment=meme.sentiment,
        sentiment_score=meme.sentiment_score,
    )


def _cursor(cursor: str | None) -> str | None:
    """The cursor is the last meme id of the previous page (a UUIDv7 orders by time)."""
    if cursor is None:
        return None
    try:
        id_time(cursor)
    except ValueError:
        raise Problem(
            422, "invalid-cursor", "Invalid cursor", "use next_cursor from a response"
        ) from None
    return cursor


@router.get(
    "",
    response_model=ReviewQueue,
    responses=problem_responses(401, 403, 422, 429, 503),
    summary="Memes moderation flagged, awaiting an admin's decision (admins only)",
    description=(
        "Oldest first by default (the longest waiting); `order=newest` reverses it. Each item "
        "carries moderation's stored evidence (decision, score, reason) and image URLs."
    ),
)
async def review_queue(
    services: ServicesDep,
    admin: AdminDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    order: Literal["oldest", "newest"] = "oldest",
) -> ReviewQueue:
    after = _cursor(cursor)
    page = await flagged_memes(
        services.pool, limit=limit + 1, after=after, newest_first=order == "newest"
    )
    total = await flagged_count(services.pool)
    more = len(page) > limit
    page = page[:limit]
    return ReviewQueue(
        total=total,
        items=[_item(m) for m in page],
        next_cursor=page[-1].id if more else None,
    )


def _decision_responses(other_outcome: str) -> dict[int | str, dict[str, Any]]:
    return problem_responses(
        401,
        403,
        404,
        409,
        422,
        429,
        503,
        descriptions={
            409: f"The meme is not flagged (pending, {other_outcome}, or already decided)"
        },
    )


@router.post(
    "/{meme_id}/approve",
    response_model=ReviewOutcome,
    responses=_decision_responses("rejected"),
    summary="Approve a flagged meme: it becomes public and may trend (admins only)",
)
async def approve(
    meme_id: str,
    services: ServicesDep,
    data: DataDep,
    admin: AdminDep,
    body: ReviewNote | None = None,
) -> ReviewOutcome:
    return await _decide(meme_id, "approved", services, data, admin.user_id, body)


@router.post(
    "/{meme_id}/reject",
    response_model=ReviewOutcome,
    responses=_decision_responses("rendered"),
    summary="Reject a flagged meme: it stays out of every public place, images removed",
)
async def reject(
    meme_id: str,
    services: ServicesDep,
    data: DataDep,
    admin: AdminDep,
    body: ReviewNote | None = None,
) -> ReviewOutcome:
    return await _decide(meme_id, "rejected", services, data, admin.user_id, body)


async def _decide(
    meme_id: str,
    decision: Decision,
    services: ServicesDep,
    data: DataDep,
    reviewer: str | None,
    body: ReviewNote | None,
) -> ReviewOutcome:
    assert reviewer is not None  # AdminDep is an authenticated user
    if not is_valid_id(meme_id):
        raise Problem(404, "meme-not-found", "No such meme", f"{meme_id!r} is not a meme id")
    note = body.note if body and body.note and body.note.strip() else None
    try:
        # The decision's events are staged in its transaction (api/outbox.py): a Kafka outage
        # delays them, never loses them.
        decided = await decide(services.pool, meme_id, decision, reviewer, note, review_events)
    except ValueError as exc:  # a UUID that is not a v7 id can never be ours
        raise Problem(404, "meme-not-found", "No such meme", str(exc)) from exc
    except NotInReview as exc:
        raise Problem(
            409,
            "not-in-review",
            "The meme is not awaiting review",
            f"its status is {exc.status!r}"
            + (f" ({exc.decision} in review)" if exc.decision else ""),
            meme_status=exc.status,
            review_decision=exc.decision,
        ) from exc
    if decided is None:
        raise Problem(404, "meme-not-found", "No such meme", f"no meme has the id {meme_id}")
    for variant in decided.removed:  # before Kafka: a retry finds the row without them
        try:
            await asyncio.to_thread(services.storage.delete, variant["key"])
        except Exception as exc:  # unreachable anyway: a rejected meme serves no image
            log.warning("image %s of rejected meme not removed: %s", variant["key"], exc)
    rendered = review_event(decided)
    try:
        await data.cache.invalidate(meme_id)
        if decision == "approved":
            await data.recent.push(meme_id)
        else:
            await data.recent.remove(meme_id)
        await publish_status(data.redis, meme_id, rendered.status.value)
    except REDIS_ERRORS as exc:  # the analytics worker redoes cache and list from the event
        log.warning("Redis side of reviewed meme %s not updated: %s", meme_id, exc)
    log.info("meme %s %s in review by %s", meme_id, decision, reviewer)
    return ReviewOutcome(
        meme_id=decided.id,
        status=decided.status,  # type: ignore[arg-type]
        decision=decided.review_decision,  # type: ignore[arg-type]
        reviewed_by=decided.reviewed_by,
        reviewed_at=decided.reviewed_at,
        note=decided.review_note,
    )


def _millis(value: datetime) -> datetime:
    """Avro's timestamp-millis: a re-sent event must equal the first one exactly."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def review_events(decided: Decided) -> tuple[OutboxMessage, OutboxMessage]:
    """The decision's `meme.rendered` event and its `meme.feed` entry, for the outbox."""
    rendered = review_event(decided)
    return (
        outbox.message(MEME_RENDERED.name, rendered),
        outbox.message(MEME_FEED.name, FeedEvent.for_render(rendered)),
    )


def review_event(decided: Decided) -> MemeRendered:
    """The decision as a MemeRendered: what trending, analytics and the feed already follow.

    One decision per meme, so its id derives from the meme's: a retry produces the same event.
    """
    approved = decided.review_decision == "approved"
    return MemeRendered(
        event_id=derived_id(decided.id, "review"),
        occurred_at=_millis(decided.reviewed_at),
        meme_id=decided.id,
        template_id=decided.template_id,
        status=RenderStatus.RENDERED if approved else RenderStatus.FAILED,
        variants=[ImageVariant(**v) for v in decided.variants],
        render_ms=decided.render_ms or 0.0,
        requested_at=_millis(decided.created_at),
        error=None if approved else decided.error,
        user_id=decided.owner_id,
        moderation=APPROVED if approved else "rejected",
        moderation_label=REVIEW_LABEL,
        moderation_score=decided.moderation_score,
        moderation_reason=decided.review_note,
        sentiment=decided.sentiment,
        sentiment_score=decided.sentiment_score,
    )
