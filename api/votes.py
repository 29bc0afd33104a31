"""The one vote path: `POST /api/meme/{id}/vote` and the WebSocket's `vote` frame both cast here.

One vote per user and meme: 1 (up), -1 (down) or 0 (withdraw). Voting needs an account (a
session or an API key): anonymous votes could not be "one per user". The vote is checked (a
meme id, a live meme, rendered; a value of 1, -1 or 0), written to PostgreSQL (the truth) and,
when it changed the user's vote, its `Vote` event is staged in the outbox in the same
transaction (api/outbox.py): the answer means PostgreSQL has the vote and Kafka will, whatever
Kafka says at that moment. Both entry points spend the user's write budget: the REST route
through its router's limit, the socket through `socket_voter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from api import outbox, ratelimit
from api.auth import Principal, unauthorized
from api.data_layer import DataLayer
from api.dependencies import Services
from api.feed.ws_session import Voter
from api.problems import Problem, store_problem
from domain.events import Vote
from domain.ids import id_time, is_valid_id
from producers.topics import MEME_VOTES
from sinks.postgres.outbox import OutboxMessage
from sinks.postgres.votes import VoteOutcome


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


async def cast(
    meme_id: str, body: VoteRequest, services: Services, data: DataLayer, principal: Principal
) -> VoteResult:
    """Checks, stores and stages one vote; raises Problem (401, 404, 409) when it is refused."""
    if not principal.authenticated or not principal.user_id:
        raise unauthorized("voting needs an account: log in or send an API key")
    user_id = principal.user_id
    if not is_valid_id(meme_id):
        raise Problem(404, "meme-not-found", "No such meme", f"{meme_id!r} is not a meme id")
    try:
        id_time(meme_id)
        record = await data.cache.read_through(meme_id, services.memes.get)
        if record is not None and record.status == "pending":
            # Pending is cached for a moment (sinks/redis/cache.py): a vote on a meme the feed
            # has just shown rendered asks the truth before refusing it.
            record = await services.memes.get(meme_id)
    except ValueError as exc:
        raise Problem(404, "meme-not-found", "No such meme", str(exc)) from exc
    if record is None or record.status == "deleted":
        raise Problem(404, "meme-not-found", "No such meme", f"no meme has the id {meme_id}")
    if record.status != "rendered":
        raise Problem(409, "meme-not-votable", "Only rendered memes take votes", record.status)

    def events(outcome: VoteOutcome) -> Sequence[OutboxMessage]:
        """A changed vote's event (an unchanged one has nothing new to say downstream)."""
        if not outcome.changed:
            return ()
        vote = Vote(meme_id=meme_id, user_id=user_id, value=outcome.current)
        return (outbox.message(MEME_VOTES.name, vote),)

    # The tally comes from the vote's own transaction: once the vote is committed, nothing
    # is left that could fail and turn a stored vote into a 503.
    outcome = await data.votes.cast(meme_id, user_id, body.value, events)
    tally = outcome.tally
    return VoteResult(
        meme_id=meme_id,
        value=outcome.current,
        previous=outcome.previous,
        up=tally.up,
        down=tally.down,
        score=tally.score,
    )


def socket_voter(services: Services, principal: Principal | None) -> Voter:
    """The WebSocket's entry: the same path, the same write budget, a Problem as a refused ack."""
    assert services.data is not None
    data = services.data

    async def vote(frame: dict[str, Any]) -> dict[str, Any]:
        if principal is None or not principal.authenticated:
            return {"ok": False, "error": "login-required", "retry": False}
        meme_id = str(frame.get("meme_id"))
        # The REST budget for writes: a socket is no way around the vote endpoint's limit.
        decision = await ratelimit.hit(services, principal, write=True)
        if decision is not None and not decision.allowed:
            return {
                "ok": False,
                "error": "rate-limited",
                "retry": True,
                "retry_after": ratelimit.retry_after(decision),
                "meme_id": meme_id,
            }
        try:
            body = VoteRequest(value=frame.get("value"))  # type: ignore[arg-type]
            result = await cast(meme_id, body, services, data, principal)
        except ValidationError:
            return {"ok": False, "error": "value is 1, -1 or 0", "retry": False}
        except (psycopg.Error, PoolTimeout) as exc:  # what the HTTP app answers a store error
            return _refused(store_problem(exc), meme_id)
        except Problem as problem:
            return _refused(problem, meme_id)
        return {"ok": True, "vote_id": frame.get("vote_id"), **result.model_dump()}

    return vote


def _refused(problem: Problem, meme_id: str) -> dict[str, Any]:
    return {"ok": False, "error": problem.slug, "retry": problem.status >= 500, "meme_id": meme_id}
