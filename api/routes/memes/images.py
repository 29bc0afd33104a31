"""`GET /api/meme/{meme_id}/image`: a rendered meme's image bytes, or a presigned redirect."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import Query, Response
from fastapi.responses import RedirectResponse

from api.dependencies import ServicesDep
from api.models import ImageSize
from api.problems import Problem, problem_responses, unavailable
from api.routes.memes.reads import load_meme
from api.routes.memes.routing import memes_router
from sinks.storage import ObjectNotFound

router = memes_router()


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
    record = await load_meme(meme_id, services)
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
