"""`POST /api/meme/{id}/vote`: the REST entry of the one vote path (api/votes.py), and
`GET /api/meme/{id}/votes`: a meme's tally, for the meme page (the feed's live events only
carry changes)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api import votes
from api.auth import DataDep, UserDep
from api.dependencies import ServicesDep
from api.problems import LIMITED_STATUSES, problem_responses
from api.ratelimit import RateLimited
from api.routes.memes.reads import load_meme
from api.votes import VoteRequest, VoteResult

router = APIRouter(
    prefix="/api/meme",
    tags=["votes"],
    dependencies=[RateLimited],
    responses=problem_responses(*LIMITED_STATUSES),
)


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
    description=(
        "Answers once PostgreSQL has the vote; its `meme.votes` event is staged in the same "
        "transaction and published by the outbox relay, so a Kafka outage delays the event "
        "and never loses it."
    ),
)
async def vote(
    meme_id: str, body: VoteRequest, services: ServicesDep, data: DataDep, principal: UserDep
) -> VoteResult:
    return await votes.cast(meme_id, body, services, data, principal)


class VoteTally(BaseModel):
    meme_id: str
    up: int
    down: int
    score: int


@router.get(
    "/{meme_id}/votes",
    response_model=VoteTally,
    responses=problem_responses(404, 422, 503, descriptions={404: "No such meme"}),
    summary="A meme's votes: up, down and their difference",
)
async def tally(meme_id: str, services: ServicesDep, data: DataDep) -> VoteTally:
    await load_meme(meme_id, services)
    counted = await data.votes.tally(meme_id)
    return VoteTally(meme_id=meme_id, up=counted.up, down=counted.down, score=counted.score)
