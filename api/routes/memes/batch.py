"""`POST /api/meme/batch`: up to 100 memes requested at once, with a result per item."""

from __future__ import annotations

import asyncio
import logging

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from api.auth import DataDep, Principal, PrincipalDep
from api.auto_caption import fill_empty_boxes
from api.dependencies import ServicesDep
from api.idempotency import IdempotentCall, answer_once
from api.models import BatchItemResult, BatchRequest, BatchResult
from api.problems import Problem, problem_responses, unavailable
from api.routes.memes.generate import PROBLEM_RESPONSES, IdempotencyKey
from api.routes.memes.request_checks import check_request
from api.routes.memes.request_event import request_event
from api.routes.memes.routing import memes_router
from domain.events import MemeRequested
from domain.metrics import MEMES_REQUESTED
from producers.topics import MEME_REQUESTS
from sinks.postgres.errors import POSTGRES_ERRORS
from sinks.postgres.lifecycle import add_pending_many

log = logging.getLogger(__name__)
router = memes_router()


@router.post(
    "/batch",
    status_code=202,
    response_model=BatchResult,
    responses={
        **PROBLEM_RESPONSES,
        **problem_responses(
            422,
            descriptions={
                422: "Not a batch of 1 to 100 valid requests, or an Idempotency-Key reused "
                "with another body (an item's own problem is in `results`)"
            },
        ),
        207: {"model": BatchResult, "description": "Some items were rejected: see `results`"},
    },
    summary="Request up to 100 memes at once; per-item results",
)
async def batch(
    body: BatchRequest,
    services: ServicesDep,
    data: DataDep,
    principal: PrincipalDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> BatchResult | JSONResponse:
    call = await IdempotentCall.begin(request, principal, data, body)
    if isinstance(call, JSONResponse):
        return call
    status, result = await answer_once(call, _batch(body, services, principal, request))
    response.status_code = status
    return result


async def _batch(
    body: BatchRequest, services: ServicesDep, principal: Principal, request: Request
) -> tuple[int, BatchResult]:
    """202 when every item was accepted, else 207 with each item's problem in `results`."""
    results: list[BatchItemResult] = []
    events: list[tuple[int, MemeRequested]] = []
    items = await asyncio.gather(*(fill_empty_boxes(i, services) for i in body.items))
    for index, item in enumerate(items):
        try:
            await check_request(item, services)
        except Problem as problem:
            results.append(
                BatchItemResult(index=index, status=problem.status, problem=problem.body())
            )
            continue
        events.append((index, request_event(item, request, principal)))
    sent = await asyncio.gather(
        *(services.producer.send(MEME_REQUESTS.name, e) for _, e in events),
        return_exceptions=True,
    )
    accepted: list[MemeRequested] = []
    for (index, event), outcome in zip(events, sent, strict=True):
        if isinstance(outcome, BaseException):
            problem = unavailable("kafka")
            results.append(
                BatchItemResult(index=index, status=problem.status, problem=problem.body())
            )
            continue
        accepted.append(event)
        results.append(
            BatchItemResult(
                index=index,
                status=202,
                meme_id=event.meme_id,
                status_url=f"/api/meme/{event.meme_id}",
            )
        )
    if events and not accepted:
        raise unavailable("kafka")
    MEMES_REQUESTED.labels(endpoint="batch").inc(len(accepted))
    try:
        await add_pending_many(services.pool, accepted)
    except POSTGRES_ERRORS as exc:
        log.warning("pending rows of a batch not written: %s", exc)
    results.sort(key=lambda r: r.index)
    result = BatchResult(
        accepted=len(accepted), rejected=len(results) - len(accepted), results=results
    )
    return (202 if result.rejected == 0 else 207), result
