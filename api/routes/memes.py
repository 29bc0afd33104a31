"""Memes: generate (produce to Kafka), batch, read status and metadata, fetch image bytes, delete.

Auth: reading and generating are open to anonymous callers (rate-limited by IP); generated memes
are owned by the caller when authenticated; deleting needs the owner or an admin.
Reads go through the Redis meme cache (final states only) and count a view, fire-and-forget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

import psycopg
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from psycopg_pool import PoolTimeout

from api import outbox
from api.auth import DataDep, Principal, PrincipalDep, UserDep, get_principal
from api.auto_caption import fill_empty_boxes
from api.dependencies import Services, ServicesDep
from api.idempotency import IdempotentCall
from api.models import (
    BatchItemResult,
    BatchRequest,
    BatchResult,
    GenerateAccepted,
    GenerateRequest,
    ImageInfo,
    ImageSize,
    MemeView,
)
from api.problems import LIMITED_STATUSES, Problem, problem_responses, unavailable
from api.ratelimit import RateLimited
from domain.events import BoxPlacement, MemeDeleted, MemeRequested
from domain.ids import derived_id, is_valid_id, new_id
from domain.metrics import MEMES_REQUESTED
from domain.rendering.errors import InvalidBox, InvalidOptions, RenderError
from domain.rendering.validation import check_filters, check_layout
from domain.templates import UnknownTemplate
from producers.producer import ProducerUnavailable
from producers.topics import MEME_DELETED, MEME_REQUESTS
from sinks.postgres.lifecycle import add_pending_many, recent_rendered, soft_delete
from sinks.postgres.memes import MemeRecord
from sinks.redis import REDIS_ERRORS
from sinks.redis.status import StatusWaiter
from sinks.storage import ObjectNotFound

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/api/meme",
    tags=["memes"],
    dependencies=[RateLimited],
    responses=problem_responses(*LIMITED_STATUSES),
)
FINAL = frozenset({"rendered", "failed", "rejected", "flagged"})  # flagged: rendered, in review
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


@dataclass(frozen=True, slots=True)
class TemplateShape:
    """What validation needs of a template, from the catalog or an upload's record."""

    boxes: int
    width: int
    height: int
    frames: int = 1


async def _template_shape(template_id: str, services: ServicesDep) -> TemplateShape:
    """The catalog's template, else an uploaded one (PostgreSQL); 422 when neither has it."""
    try:
        template = services.catalog.get(template_id)
        return TemplateShape(
            len(template.boxes), template.width, template.height, template.frame_count
        )
    except UnknownTemplate:
        pass
    record = None
    if services.data is not None:
        record = await services.data.templates.get(template_id)
    if record is None:
        raise Problem(
            422,
            "unknown-template",
            "Unknown template",
            f"no template has the id {template_id!r}",
            template_id=template_id,
        )
    return TemplateShape(len(record.boxes), record.width, record.height, record.frame_count)


async def _check_request(request: GenerateRequest, services: ServicesDep) -> None:
    shape = await _template_shape(request.template_id, services)
    if len(request.texts) > shape.boxes:
        raise Problem(
            422,
            "too-many-texts",
            "More texts than the template has text boxes",
            f"{request.template_id!r} has {shape.boxes} boxes, got {len(request.texts)}",
        )
    limit = services.settings.max_text_length
    if any(len(t) > limit for t in request.texts):
        raise Problem(422, "text-too-long", "Text too long", f"each text is at most {limit} chars")
    _check_layout(request, shape)
    if request.transform or request.filters or request.boxes is not None:
        await asyncio.to_thread(_dry_run, request, shape)


def _dry_run(request: GenerateRequest, shape: TemplateShape) -> None:
    """The engine's layout on a blank frame (domain.rendering.validation.check_layout): a crop
    or a box outside the transformed image, or a transform past the pixel budget, is a 422
    here rather than a failed meme later."""
    placements = None
    if request.boxes is not None:
        placements = [(b.x, b.y, b.width, b.height) for b in request.boxes]
    try:
        check_layout(
            shape.width,
            shape.height,
            frames=shape.frames,
            boxes=shape.boxes,
            transform=request.transform,
            filters=request.filters,
            placements=placements,
        )
    except InvalidBox as exc:
        raise Problem(422, "invalid-boxes", "A box lies outside the image", str(exc)) from exc
    except RenderError as exc:  # InvalidOptions, ImageTooLarge
        raise Problem(422, "invalid-filter", "Invalid transform or filters", str(exc)) from exc


def _check_layout(request: GenerateRequest, shape: TemplateShape) -> None:
    """What can be judged without pixels; `_dry_run` judges the rest."""
    for name, specs in (("transform", request.transform), ("filters", request.filters)):
        try:
            check_filters(specs, name)
        except InvalidOptions as exc:
            raise Problem(422, "invalid-filter", f"Invalid {name}", str(exc)) from exc
    if request.boxes is None:
        return
    if len(request.boxes) != shape.boxes:
        raise Problem(
            422,
            "invalid-boxes",
            "One placement per text box",
            f"{request.template_id!r} has {shape.boxes} boxes, got {len(request.boxes)}",
        )
    if not request.transform:  # the image is the template's own size
        for i, b in enumerate(request.boxes):
            if b.x + b.width > shape.width or b.y + b.height > shape.height:
                raise Problem(
                    422,
                    "invalid-boxes",
                    "A box lies outside the image",
                    f"box {i + 1} is outside the {shape.width}x{shape.height} template",
                )


def _request_event(body: GenerateRequest, request: Request, principal: Principal) -> MemeRequested:
    return MemeRequested(
        meme_id=new_id(),
        template_id=body.template_id,
        texts=body.texts,
        format=body.format,
        quality=body.quality.value if body.quality else None,
        user_id=principal.user_id,
        request_id=request.headers.get("x-request-id"),
        transform=body.transform,
        boxes=None if body.boxes is None else [BoxPlacement(**b.model_dump()) for b in body.boxes],
        filters=body.filters,
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
    await _check_request(body, services)
    call = await IdempotentCall.begin(request, principal, data, body)
    if isinstance(call, JSONResponse):
        return call
    try:
        body = await fill_empty_boxes(body, services)  # auto_caption (domain/ai)
        status, accepted = await _generate(body, services, data, principal, request, wait)
    except BaseException:
        if call is not None:
            await call.fail()
        raise
    if call is not None:
        await call.finish(status, accepted.model_dump(mode="json"))
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
    event = _request_event(body, request, principal)
    async with contextlib.AsyncExitStack() as stack:
        waiter = None
        if wait_s > 0:
            # Subscribe before producing, so a fast render cannot finish unheard.
            with contextlib.suppress(*REDIS_ERRORS):
                waiter = await stack.enter_async_context(StatusWaiter(data.redis, event.meme_id))
        try:
            await services.producer.send(MEME_REQUESTS.name, event)
        except ProducerUnavailable as exc:  # Kafka, or the schema registry (exc.service)
            log.warning("generation not accepted, %s unavailable: %s", exc.service, exc)
            raise unavailable(exc.service) from exc
        MEMES_REQUESTED.labels(endpoint="generate").inc()
        try:
            await services.memes.add_pending(event)
        except (psycopg.Error, PoolTimeout) as exc:
            # Kafka has the request; the worker writes the row when PostgreSQL is back.
            log.warning("pending row for %s not written: %s", event.meme_id, exc)
        accepted = _accepted(event.meme_id)
        if wait_s > 0:
            record = await _await_final(event.meme_id, services, waiter, wait_s)
            if record is not None:
                accepted.status = record.status  # type: ignore[assignment]
                accepted.meme = _view(record)
                return 200, accepted
    return 202, accepted


async def _await_final(
    meme_id: str, services: ServicesDep, waiter: StatusWaiter | None, wait_s: float
) -> MemeRecord | None:
    """The meme once rendered or failed, else None after `wait_s`.

    Pub/sub wakes the waiter at once; PostgreSQL, polled every half second, is the fallback
    when Redis or the publisher (the analytics worker) is away.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait_s, services.settings.max_wait_s)
    while True:
        with contextlib.suppress(psycopg.Error, PoolTimeout):
            record = await services.memes.get(meme_id)
            if record is not None and record.status in FINAL:
                return record
        left = deadline - loop.time()
        if left <= 0:
            return None
        pause = min(0.5, left)
        if waiter is None:
            await asyncio.sleep(pause)
            continue
        try:
            await waiter.next(pause)
        except REDIS_ERRORS:
            waiter = None


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
    try:
        result = await _batch(body, services, principal, request)
    except BaseException:
        if call is not None:
            await call.fail()
        raise
    status = 202 if result.rejected == 0 else 207
    if call is not None:
        await call.finish(status, result.model_dump(mode="json"))
    response.status_code = status
    return result


async def _batch(
    body: BatchRequest, services: ServicesDep, principal: Principal, request: Request
) -> BatchResult:
    results: list[BatchItemResult] = []
    events: list[tuple[int, MemeRequested]] = []
    items = await asyncio.gather(*(fill_empty_boxes(i, services) for i in body.items))
    for index, item in enumerate(items):
        try:
            await _check_request(item, services)
        except Problem as problem:
            results.append(
                BatchItemResult(index=index, status=problem.status, problem=problem.body())
            )
            continue
        events.append((index, _request_event(item, request, principal)))
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
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("pending rows of a batch not written: %s", exc)
    results.sort(key=lambda r: r.index)
    return BatchResult(
        accepted=len(accepted), rejected=len(results) - len(accepted), results=results
    )


async def _load(meme_id: str, services: ServicesDep) -> MemeRecord:
    if not is_valid_id(meme_id):
        raise Problem(404, "meme-not-found", "No such meme", f"{meme_id!r} is not a meme id")
    try:
        if services.data is not None:
            record = await services.data.cache.read_through(meme_id, services.memes.get)
        else:
            record = await services.memes.get(meme_id)
    except ValueError as exc:  # a UUID that is not a v7 id can never be ours
        raise Problem(404, "meme-not-found", "No such meme", str(exc)) from exc
    if record is None or record.status == "deleted":
        raise Problem(404, "meme-not-found", "No such meme", f"no meme has the id {meme_id}")
    return record


@router.get(
    "/recent",
    response_model=list[MemeView],
    responses=problem_responses(422, 503),
    summary="The newest rendered memes, newest first (Redis list, PostgreSQL fallback)",
)
async def recent(
    services: ServicesDep,
    data: DataDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[MemeView]:
    try:
        ids = await data.recent.list(limit)
    except REDIS_ERRORS:
        ids = []
    if ids:
        loaded = [await data.cache.read_through(i, services.memes.get) for i in ids]
        records = [r for r in loaded if r is not None and r.status == "rendered"]
    else:
        records = await recent_rendered(services.pool, limit)
    return [_view(r) for r in records]


@router.get(
    "/{meme_id}",
    response_class=Response,
    responses={
        200: {"model": MemeView, "description": "The meme"},
        **problem_responses(422, 404, 503, descriptions={404: "No such meme"}),
    },
    summary="A meme's status and metadata (counts a view)",
)
async def get_meme(meme_id: str, request: Request) -> Response:
    # The hottest read takes the request, not `ServicesDep`/`PrincipalDep`: FastAPI's
    # per-dependency cost was measurable here, and the rate limit (this router's dependency)
    # has already resolved the principal and cached it on `request.state`.
    services: Services = request.app.state.services
    principal = await get_principal(request)  # a bad credential is a 401, as on every route
    record = await _load(meme_id, services)
    if services.data is not None and record.status == "rendered":
        services.data.views.count(record.id, principal.user_id)
    return Response(_BODIES.json(record), media_type="application/json")


class _SerializedViews:
    """The JSON body of each record the meme cache hands out, made once per record object.

    The cache's per-process copy returns the same frozen record for MEME_LOCAL_CACHE_TTL_S,
    so a hot meme is serialized once in that time, not on every read (building and dumping
    the pydantic model was most of the handler's own cost). Any other record object (reloaded
    from Redis or PostgreSQL, changed, deleted) fails the identity check and is serialized anew.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._bodies: dict[str, tuple[MemeRecord, bytes]] = {}

    def json(self, record: MemeRecord) -> bytes:
        entry = self._bodies.get(record.id)
        if entry is not None and entry[0] is record:
            return entry[1]
        body = _view(record).model_dump_json().encode()
        if len(self._bodies) >= self.max_entries:
            self._bodies.clear()
        self._bodies[record.id] = (record, body)
        return body


_BODIES = _SerializedViews()


def _view(record: MemeRecord) -> MemeView:
    images = {
        v["size"]: ImageInfo(
            url=f"/api/meme/{record.id}/image?size={v['size']}",
            width=v["width"],
            height=v["height"],
            bytes=v["bytes"],
            media_type=v["media_type"],
        )
        for v in record.variants
    }
    return MemeView(
        id=record.id,
        status=record.status,  # type: ignore[arg-type]
        template_id=record.template_id,
        texts=record.texts,
        format=record.format,
        created_at=record.created_at,
        rendered_at=record.rendered_at,
        render_ms=record.render_ms,
        error=record.error,
        images=images,
        sentiment=record.sentiment,
    )


@router.delete(
    "/{meme_id}",
    status_code=204,
    response_class=Response,
    responses=problem_responses(
        401,
        403,
        404,
        422,
        503,
        descriptions={
            401: "Not logged in",
            403: "Only the owner or an admin may delete",
            404: "No such meme",
            503: "PostgreSQL is unavailable; retry (deletes are idempotent)",
        },
    ),
    summary="Delete a meme: tombstone event, cache and image cleanup (owner or admin)",
)
async def delete_meme(
    meme_id: str, services: ServicesDep, data: DataDep, principal: UserDep
) -> Response:
    if not is_valid_id(meme_id):
        raise Problem(404, "meme-not-found", "No such meme", f"{meme_id!r} is not a meme id")
    try:
        record = await services.memes.get(meme_id)
    except ValueError as exc:
        raise Problem(404, "meme-not-found", "No such meme", str(exc)) from exc
    if record is None:
        raise Problem(404, "meme-not-found", "No such meme", f"no meme has the id {meme_id}")
    if record.owner_id != principal.user_id and not principal.is_admin:
        raise Problem(403, "forbidden", "Not your meme", "only its owner or an admin may delete it")
    # Derived id: a retried delete stages the same event, which every sink dedupes. Staged in
    # the outbox in the delete's transaction (api/outbox.py): Kafka gets it whenever it can.
    tombstone = MemeDeleted(
        event_id=derived_id(meme_id, "deleted"), meme_id=meme_id, deleted_by=principal.user_id
    )
    # The row as the delete locked it: a render recorded since `record` was read has its
    # images listed there; one recorded later finds the row deleted and removes its own.
    locked = await soft_delete(
        services.pool, meme_id, lambda _: (outbox.message(MEME_DELETED.name, tombstone),)
    )
    try:
        await data.cache.invalidate(meme_id)
        await data.recent.remove(meme_id)
    except REDIS_ERRORS as exc:  # the cache entry expires within MEME_CACHE_TTL_S
        log.warning("cache entry of deleted meme %s not dropped: %s", meme_id, exc)
    for variant in (locked or record).variants:
        try:
            await asyncio.to_thread(services.storage.delete, variant["key"])
        except Exception as exc:  # an orphan image is unreachable: the row says deleted
            log.warning("image %s of deleted meme not removed: %s", variant["key"], exc)
    return Response(status_code=204)


@router.get(
    "/{meme_id}/image",
    responses={
        200: {"content": {"image/*": {}}, "description": "The image bytes"},
        307: {"description": "`redirect=true`: to a presigned URL of the image"},
        **problem_responses(
            404,
            409,
            422,
            503,
            descriptions={
                404: "No such meme, size or stored image",
                409: "The meme is pending (see `Retry-After`), failed or rejected",
                422: "Invalid `size` or `redirect`",
            },
        ),
    },
    response_class=Response,
)
async def get_image(
    meme_id: str,
    services: ServicesDep,
    size: ImageSize = "full",
    redirect: Annotated[bool, Query(description="307 to a presigned URL")] = False,
) -> Response:
    record = await _load(meme_id, services)
    if record.status == "pending":
        raise Problem(
            409, "meme-pending", "The meme is still rendering", headers={"Retry-After": "1"}
        )
    if record.status == "failed":
        raise Problem(409, "meme-failed", "The meme failed to render", record.error)
    if record.status == "rejected":
        raise Problem(409, "meme-rejected", "Moderation rejected the meme", record.error)
    variant = next((v for v in record.variants if v["size"] == size), None)
    if variant is None:
        raise Problem(404, "size-not-found", "No image of that size", f"no {size!r} image")
    if redirect:
        url = await asyncio.to_thread(
            services.storage.presigned_url, variant["key"], timedelta(minutes=15)
        )
        if url:
            return RedirectResponse(url, status_code=307)
    try:
        stored = await asyncio.to_thread(services.storage.get, variant["key"])
    except ObjectNotFound as exc:
        raise Problem(404, "image-not-found", "The image is gone", variant["key"]) from exc
    except Exception as exc:
        raise unavailable("object storage") from exc
    return Response(
        stored.data,
        media_type=variant["media_type"],
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "ETag": f'"{stored.etag}"' if stored.etag else "",
        },
    )
