"""Templates: list (by category), full-text search, one by id, and uploads (multipart).

Listing and search read PostgreSQL's `templates` table (the file catalog is seeded into it by
`memestream migrate`). Uploads need an account; the image is validated by the rendering
engine's decoder (`domain.rendering.decode`: signature vs declared type, pixel and frame bounds,
decompression bombs), the boxes and labels by the renderer's validator
(`domain.rendering.validation`, through the catalogue's `template_from_config`: at most
MAX_TEMPLATE_BOXES boxes, finite numbers, parseable colours, font sizes 4..400, no control
characters in names), the `boxes` field's JSON nesting by MAX_JSON_DEPTH. Then the row goes to
PostgreSQL and only after it commits the original bytes to object storage
(`templates/uploads/<id>/original.<ext>`); if that write fails the row is removed again, so a
refused or failed upload leaves no object behind (a crash between the two steps leaves a row
whose image is missing, which renders as a `failed` meme, never an object without a row). The
file may be up to MAX_UPLOAD_BYTES (not the JSON limit) and have up to MAX_FRAMES frames, the
same cap the render worker applies, so an accepted upload is one that renders.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, TypeAdapter

from api import json_depth
from api.auth import DataDep, UserDep
from api.dependencies import ServicesDep
from api.problems import LIMITED_STATUSES, Problem, problem_responses, unavailable
from api.ratelimit import RateLimited, charge
from api.text_fields import StoredText
from api.uploads import UploadTooLarge, spooled
from domain.rendering.decode import decode, sniff
from domain.rendering.errors import RenderError, TooManyFrames
from domain.templates.catalog import MAX_DESCRIPTION, MAX_NAME, MAX_TAG, template_from_config
from sinks.postgres.templates import NewUpload, TemplateExists, TemplateRecord

router = APIRouter(
    prefix="/api/templates",
    tags=["templates"],
    dependencies=[RateLimited],
    responses=problem_responses(*LIMITED_STATUSES),
)
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}


class TemplateOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "drake",
                    "name": "Drake",
                    "category": "reaction",
                    "tags": ["choice", "preference"],
                    "width": 600,
                    "height": 600,
                    "animated": False,
                    "frame_count": 1,
                    "description": "Disapproves of the top, approves of the bottom.",
                    "boxes": [{"name": "top", "x": 300, "y": 0, "width": 300, "height": 300}],
                    "source": "catalog",
                    "owner_id": None,
                    "created_at": "2026-11-29T03:13:47Z",
                }
            ]
        }
    )
    id: str
    name: str
    category: str
    tags: list[str]
    width: int
    height: int
    animated: bool
    frame_count: int
    description: str
    boxes: list[dict[str, Any]]
    source: str
    owner_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, record: TemplateRecord) -> TemplateOut:
        fields = {name: getattr(record, name) for name in cls.model_fields}
        return cls(**fields)


@router.get(
    "",
    response_model=list[TemplateOut],
    responses=problem_responses(422),
    summary="Templates, by category then id",
)
async def list_templates(
    data: DataDep,
    category: Annotated[StoredText | None, Query(max_length=64, examples=["reaction"])] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    key = (category, limit, offset)
    cached = _LISTINGS.get(key)
    if cached is None:
        records = await data.templates.list(category=category, limit=limit, offset=offset)
        cached = _LISTING.dump_json([TemplateOut.of(r) for r in records])
        _LISTINGS.put(key, cached)
    return Response(cached, media_type="application/json")


class _TtlCache:
    """Serialized listings for a few seconds: the catalog changes rarely and the listing is a
    hot read. Another process' upload shows up within `ttl_s`; this process' at once."""

    def __init__(self, ttl_s: float, max_items: int = 256) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: dict[object, tuple[float, bytes]] = {}

    def get(self, key: object) -> bytes | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, key: object, value: bytes) -> None:
        if len(self._items) >= self.max_items:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl_s, value)

    def clear(self) -> None:
        self._items.clear()


_LISTINGS = _TtlCache(ttl_s=5.0)
_LISTING = TypeAdapter(list[TemplateOut])


@router.get(
    "/search",
    response_model=list[TemplateOut],
    responses=problem_responses(422),
    summary="Search names, tags, categories and descriptions (web-search syntax)",
)
async def search_templates(
    data: DataDep,
    q: Annotated[StoredText, Query(min_length=1, max_length=200, examples=["choice"])],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[TemplateOut]:
    records = await data.templates.search(q, limit=limit)
    return [TemplateOut.of(r) for r in records]


@router.get(
    "/{template_id}",
    response_model=TemplateOut,
    responses=problem_responses(422, 404, descriptions={404: "No such template"}),
    summary="One template",
)
async def get_template(
    template_id: Annotated[StoredText, Path(max_length=64)], data: DataDep
) -> TemplateOut:
    record = await data.templates.get(template_id)
    if record is None:
        raise Problem(404, "template-not-found", "No such template", template_id)
    return TemplateOut.of(record)


def _slug(name: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "template"
    return f"u-{base}-{secrets.token_hex(3)}"


def _default_boxes(width: int, height: int) -> list[dict[str, Any]]:
    """Top and bottom captions, the classic layout."""
    margin = max(1, width // 40)
    band = max(8, height // 5)
    return [
        {
            "name": "top",
            "x": margin,
            "y": margin,
            "width": width - 2 * margin,
            "height": band,
            "valign": "top",
        },
        {
            "name": "bottom",
            "x": margin,
            "y": height - band - margin,
            "width": width - 2 * margin,
            "height": band,
            "valign": "bottom",
        },
    ]


@router.post(
    "",
    status_code=201,
    response_model=TemplateOut,
    responses=problem_responses(
        400,
        401,
        409,
        413,
        415,
        422,
        503,
        507,
        descriptions={
            400: "Malformed multipart body",
            401: "Uploading needs an account",
            409: "A generated template id collided; try again",
            413: "File too large, too many pixels or frames",
            415: "Not a JPEG, PNG, GIF or WebP, or not what Content-Type says",
            422: "Missing file or name, invalid fields, a corrupt image or invalid boxes",
            503: "Object storage or PostgreSQL is unavailable",
            507: "The upload could not be spooled to disk; retry later",
        },
    ),
    summary="Upload a template image (multipart) with optional caption boxes",
    description=(
        "`file`: the image (JPEG, PNG, GIF or WebP; at most MAX_UPLOAD_BYTES bytes and "
        "MAX_FRAMES frames). `boxes`: "
        "a JSON list of boxes in image pixels, e.g. "
        '`[{"x": 10, "y": 10, "width": 300, "height": 80}]`; default: top and bottom bands.'
    ),
)
async def upload_template(
    request: Request,
    services: ServicesDep,
    data: DataDep,
    principal: UserDep,
    file: Annotated[UploadFile, File(description="The template image")],
    name: Annotated[StoredText, Form(min_length=1, max_length=MAX_NAME)],
    category: Annotated[str, Form(max_length=40, pattern=r"^[a-z0-9-]*$")] = "uploads",
    tags: Annotated[StoredText, Form(max_length=400, description="Comma-separated")] = "",
    description: Annotated[StoredText, Form(max_length=MAX_DESCRIPTION)] = "",
    boxes: Annotated[str | None, Form(max_length=20_000, description="JSON list")] = None,
) -> TemplateOut:
    assert principal.user_id
    settings = services.settings
    # Decoding, storing and (later) embedding an upload is expensive: it spends the cost budget.
    await charge(request, services, units=settings.rate_limit_upload_units, what="an upload")
    folder = settings.resolved(settings.upload_tmp_dir)
    try:
        async with spooled(file, folder, settings.max_upload_bytes) as path:
            # Whole in memory once: the decoder takes bytes and storage stores them.
            raw = await asyncio.to_thread(path.read_bytes)
    except UploadTooLarge as exc:
        raise Problem(413, "payload-too-large", "The file is too large", str(exc)) from exc
    except OSError as exc:  # the spool folder is full or unwritable: nothing was created
        raise Problem(
            507,
            "insufficient-storage",
            "The upload could not be stored",
            exc.strerror,
            headers={"Retry-After": "60"},
        ) from exc
    try:
        frames = await asyncio.to_thread(
            decode,
            raw,
            claimed_type=file.content_type,
            max_frames=settings.max_frames,
            max_bytes=settings.max_upload_bytes,
        )
    except TooManyFrames as exc:
        detail = f"{exc} (MAX_FRAMES is {settings.max_frames})"
        raise Problem(413, "too-many-frames", "The animation has too many frames", detail) from exc
    except RenderError as exc:
        slug = {413: "image-too-large", 415: "unsupported-image"}.get(
            exc.status_code, "invalid-image"
        )
        raise Problem(exc.status_code, slug, "The image was refused", str(exc)) from exc
    width, height = frames.source_size or frames.images[0].size
    fmt = sniff(raw) or "png"
    template_id = _slug(name)
    tag_list = [t.strip()[:MAX_TAG] for t in tags.split(",") if t.strip()][:20]
    try:
        limit = settings.max_json_depth
        box_list = json_depth.loads(boxes, limit) if boxes else _default_boxes(width, height)
        template = template_from_config(
            template_id,
            {
                "name": name,
                "description": description,
                "tags": tag_list,
                "category": category or "uploads",
                "size": [width, height],
                "boxes": box_list,
                "artwork": {},
                "animation": {"frames": len(frames.images)},
            },
            max_frames=settings.max_frames,
        )
    except (ValueError, TypeError, KeyError) as exc:  # TemplateConfigError, bad JSON, too deep
        raise Problem(422, "invalid-boxes", "The template is not valid", str(exc)) from exc
    key = f"templates/uploads/{template_id}/original.{fmt}"
    upload = NewUpload(
        id=template_id,
        name=template.name,
        category=template.category,
        tags=template.tags,
        width=width,
        height=height,
        frame_count=len(frames.images),
        boxes=[asdict(b) for b in template.boxes],
        owner_id=principal.user_id,
        image_key=key,
        media_type=MEDIA_TYPES[fmt],
        description=template.description,
    )
    # The row first: a row PostgreSQL refuses (or a collision) leaves no object behind.
    try:
        record = await data.templates.add_upload(upload)
    except TemplateExists as exc:  # a 24-bit suffix collided: vanishingly rare
        raise Problem(409, "template-exists", "Try again", template_id) from exc
    try:
        await asyncio.to_thread(services.storage.put, key, raw, MEDIA_TYPES[fmt])
    except Exception as exc:
        # No row without its image; and a write that timed out may still have landed.
        await data.templates.remove_upload(template_id)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(services.storage.delete, key)
        raise unavailable("object storage") from exc
    _LISTINGS.clear()
    return TemplateOut.of(record)
