"""Memes: generate (produce to Kafka), read status and metadata, fetch image bytes."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from psycopg_pool import PoolTimeout

from api.dependencies import ServicesDep
from api.models import GenerateAccepted, GenerateRequest, ImageInfo, ImageSize, MemeView
from api.problems import Problem, unavailable
from domain.events import MemeRequested
from domain.ids import is_valid_id, new_id
from domain.templates import UnknownTemplate
from producers.producer import ProducerUnavailable
from producers.topics import MEME_REQUESTS
from sinks.postgres.memes import MemeRecord
from sinks.storage import ObjectNotFound

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/meme", tags=["memes"])

PROBLEM_RESPONSES: dict[int | str, dict[str, object]] = {
    400: {"description": "Malformed JSON"},
    413: {"description": "Body too large"},
    422: {"description": "Invalid request (unknown template, too many or too long texts)"},
    503: {"description": "Kafka or a store is unavailable; retry after `Retry-After` seconds"},
}


def _check_texts(request: GenerateRequest, services: ServicesDep) -> None:
    try:
        template = services.catalog.get(request.template_id)
    except UnknownTemplate as exc:
        raise Problem(
            422,
            "unknown-template",
            "Unknown template",
            f"no template has the id {request.template_id!r}",
            template_id=request.template_id,
        ) from exc
    if len(request.texts) > len(template.boxes):
        raise Problem(
            422,
            "too-many-texts",
            "More texts than the template has text boxes",
            f"{request.template_id!r} has {len(template.boxes)} boxes, got {len(request.texts)}",
        )
    limit = services.settings.max_text_length
    if any(len(t) > limit for t in request.texts):
        raise Problem(422, "text-too-long", "Text too long", f"each text is at most {limit} chars")


@router.post(
    "/generate",
    status_code=202,
    response_model=GenerateAccepted,
    responses=PROBLEM_RESPONSES,
    summary="Request a meme; answers once Kafka has the request",
)
async def generate(
    body: GenerateRequest, services: ServicesDep, request: Request, response: Response
) -> GenerateAccepted:
    _check_texts(body, services)
    event = MemeRequested(
        meme_id=new_id(),
        template_id=body.template_id,
        texts=body.texts,
        format=body.format,
        quality=body.quality.value if body.quality else None,
        request_id=request.headers.get("x-request-id"),
    )
    try:
        await services.producer.send(MEME_REQUESTS.name, event)
    except ProducerUnavailable as exc:
        log.warning("generation not accepted, Kafka unavailable: %s", exc)
        raise unavailable("kafka") from exc
    try:
        await services.memes.add_pending(event)
    except (psycopg.Error, PoolTimeout) as exc:
        # Kafka has the request; the worker writes the row when PostgreSQL is back.
        log.warning("pending row for %s not written: %s", event.meme_id, exc)
    status_url = f"/api/meme/{event.meme_id}"
    response.headers["Location"] = status_url
    return GenerateAccepted(
        meme_id=event.meme_id, status_url=status_url, image_url=f"{status_url}/image"
    )


async def _load(meme_id: str, services: ServicesDep) -> MemeRecord:
    if not is_valid_id(meme_id):
        raise Problem(404, "meme-not-found", "No such meme", f"{meme_id!r} is not a meme id")
    try:
        record = await services.memes.get(meme_id)
    except ValueError as exc:  # a UUID that is not a v7 id can never be ours
        raise Problem(404, "meme-not-found", "No such meme", str(exc)) from exc
    except (psycopg.Error, PoolTimeout) as exc:
        raise unavailable("postgres") from exc
    if record is None or record.status == "deleted":
        raise Problem(404, "meme-not-found", "No such meme", f"no meme has the id {meme_id}")
    return record


@router.get("/{meme_id}", response_model=MemeView, responses={404: {}, 503: {}})
async def get_meme(meme_id: str, services: ServicesDep) -> MemeView:
    record = await _load(meme_id, services)
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
    )


@router.get(
    "/{meme_id}/image",
    responses={200: {"content": {"image/*": {}}}, 307: {}, 404: {}, 409: {}, 503: {}},
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
