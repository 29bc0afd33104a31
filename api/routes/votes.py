"""Votes: `POST /api/meme/{id}/vote` writes the truth (PostgreSQL), then `meme.votes` (Kafka).

One vote per user and meme: 1 (up), -1 (down) or 0 (withdraw). Voting needs an account (a
session or an API key): anonymous votes could not be "one per user". The event carries the
user's current value and is produced on every call, changed or not: a retry after Kafka was
down re-sends it, and consumers keep the latest value per (meme, user), so repeats are harmless.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api.auth import DataDep, UserDep
from api.dependencies import ServicesDep
from api.problems import LIMITED_STATUSES, Problem, problem_responses, unavailable
from api.ratelimit import RateLimited
from domain.events import Vote
from domain.ids import id_time, is_valid_id, new_id
from producers.producer import ProducerUnavailable
from producers.topics import MEME_VOTES

router = APIRouter(
    prefix="/api/meme",
    tags=["votes"],
    dependencies=[RateLimited],
    responses=problem_responses(*LIMITED_STATUSES),
)


class VoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"value": 1}]})
    # Strict: `true` and `1.0` are not votes.
    value: StrictInt = Field(ge=-1, le=1, description="1 up, -1 down, 0 withdraws the vote")


class VoteResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "meme_id": "01a2255e-2da4-73df-bdc5-9867f9ac33c4",
                    "value": 1,
                    "previous": 0,
                    "up": 12,
                    "down": 3,
                    "score": 9,
                }
            ]
        }
    )
    meme_id: str
    value: int
    previous: int
    up: int
    down: int
    score: int


@router.post(
    "/{meme_id}/vote",
    response_model=VoteResult,
    responses=problem_responses(
        400,
        401,
        404,
        409,
        413,
        422,
        503,
        descriptions={
            400: "Malformed JSON",
            401: "Voting needs an account",
            404: "No such meme",
            409: "The meme is not rendered (pending or failed)",
            422: "`value` is not 1, -1 or 0",
        },
    ),
    summary="Vote on a meme (1, -1, or 0 to withdraw); one vote per user, changeable",
)
async def vote(
    meme_id: str, body: VoteRequest, services: ServicesDep, data: DataDep, principal: UserDep
) -> VoteResult:
    assert principal.user_id
    if not is_valid_id(meme_id):
        raise Problem(404, "meme-not-found", "No such meme", f"{meme_id!r} is not a meme id")
    try:
        id_time(meme_id)
        record = await data.cache.read_through(meme_id, services.memes.get)
    except ValueError as exc:
        raise Problem(404, "meme-not-found", "No such meme", str(exc)) from exc
    if record is None or record.status == "deleted":
        raise Problem(404, "meme-not-found", "No such meme", f"no meme has the id {meme_id}")
    if record.status != "rendered":
        raise Problem(409, "meme-not-votable", "Only rendered memes take votes", record.status)
    outcome = await data.votes.cast(meme_id, principal.user_id, body.value)
    tally = await data.votes.tally(meme_id)
    event = Vote(
        event_id=new_id(), meme_id=meme_id, user_id=principal.user_id, value=outcome.current
    )
    try:
        await services.producer.send(MEME_VOTES.name, event)
    except ProducerUnavailable as exc:
        # PostgreSQL has the vote (the truth); a retry re-sends the event.
        raise unavailable("kafka") from exc
    return VoteResult(
        meme_id=meme_id,
        value=outcome.current,
        previous=outcome.previous,
        up=tally.up,
        down=tally.down,
        score=tally.score,
    )
