"""`POST /api/meme/generate`: one meme requested, answered once Kafka has the request; with
`?wait=` the render's outcome when it finishes in time."""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated

from fastapi import Header, Query, Request, Response
from fastapi.responses import JSONResponse

from api.auth import DataDep, Principal, PrincipalDep
from api.auto_caption import fill_empty_boxes
from api.dependencies import ServicesDep
from api.idempotency import IdempotentCall, answer_once
from api.models import GenerateAccepted, GenerateRequest
from api.problems import problem_responses
from api.routes.memes.request_checks import check_request
from api.routes.memes.request_event import request_event
from api.routes.memes.routing import memes_router
from api.routes.memes.view import meme_view
from api.routes.memes.waiting import await_final
from domain.metrics import MEMES_REQUESTED
from producers.topics import MEME_REQUESTS
from sinks.postgres.errors import POSTGRES_ERRORS
from sinks.redis import REDIS_ERRORS
from sinks.redis.status import StatusWaiter

log = logging.getLogger(__name__)
router = memes_router()
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes a retried POST safe: the same key and body get the first answer",
    ),
]

PROBLEM_RESPONSES = problem_responses(
    400,
    409,
    413,
    422,
    503,
    descriptions={
        400: "Malformed JSON, or an invalid Idempotency-Key",
        409: "The first request with this Idempotency-Key still runs",
        422: "Invalid request (unknown template, too many or too long texts), or an "
        "Idempotency-Key reused with another body",
        503: "Kafka or a store is unavailable; retry after `Retry-After` seconds",
    },
)


def _accepted(meme_id: str) -> GenerateAccepted:
    status_url = f"/api/meme/{meme_id}"
    return GenerateAccepted(meme_id=meme_id, status_url=status_url, image_url=f"{status_url}/image")


@router.post(
    "/generate",
    status_code=202,
    response_model=GenerateAccepted,
    responses={
        **PROBLEM_RESPONSES,
        200: {"description": "`?wait=` saw the render finish: `meme` holds it"},
    },
    summary="Request a meme; answers once Kafka has the request",
    description=(
        "Answers 202 once Kafka acknowledged the request. With `wait=N` (seconds) it waits up "
        "to N s for the render and answers 200 with the meme when it finished in time. "
        "Anonymous callers are limited by IP; authenticated callers own the meme."
    ),
)
async def generate(
    body: GenerateRequest,
    services: ServicesDep,
    data: DataDep,
    principal: PrincipalDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    wait: Annotated[
        float, Query(ge=0, le=30, description="Seconds to wait for the render (0: do not wait)")
    ] = 0,
) -> GenerateAccepted | JSONResponse:
    await check_request(body, services)
    call = await IdempotentCall.begin(request, principal, data, body)
    if isinstance(call, JSONResponse):
        return call
    work = _generate(body, services, data, principal, request, wait)
    status, accepted = await answer_once(call, work)
    response.status_code = status
    response.headers["Location"] = accepted.status_url
    return accepted


async def _generate(
    body: GenerateRequest,
    services: ServicesDep,
    data: DataDep,
    principal: Principal,
    request: Request,
    wait_s: float,
) -> tuple[int, GenerateAccepted]:
    body = await fill_empty_boxes(body, services)  # auto_caption (domain/ai)
    event = request_event(body, request, principal)
    async with contextlib.AsyncExitStack() as stack:
        waiter = None
        if wait_s > 0:
            # Subscribe before producing, so a fast render cannot finish unheard.
            with contextlib.suppress(*REDIS_ERRORS):
                waiter = await stack.enter_async_context(StatusWaiter(data.redis, event.meme_id))
        # Kafka or the schema registry unavailable: a 503 naming it (api/problems.py).
        await services.producer.send(MEME_REQUESTS.name, event)
        MEMES_REQUESTED.labels(endpoint="generate").inc()
        try:
            await services.memes.add_pending(event)
        except POSTGRES_ERRORS as exc:
            # Kafka has the request; the worker writes the row when PostgreSQL is back.
            log.warning("pending row for %s not written: %s", event.meme_id, exc)
        accepted = _accepted(event.meme_id)
        if wait_s > 0:
            record = await await_final(event.meme_id, services, waiter, wait_s)
            if record is not None:
                accepted.status = record.status  # type: ignore[assignment]
                accepted.meme = meme_view(record)
                return 200, accepted
    return 202, accepted
