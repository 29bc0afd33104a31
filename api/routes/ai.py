"""AI helpers of the editor: caption suggestions and template suggestions.

`POST /api/meme/caption` suggests one text per box of a template (catalogue or uploaded) for a
topic. `POST /api/templates/suggest` ranks templates for a text (JSON or form field `text`),
uploaded ones included (sinks/postgres/upload_refresher.py), or catalogue templates for an
uploaded image (form field `image`): by embedding similarity for text, by perceptual hash for
images. Both always answer: the models run in the inference workers (api/inference.py); when
none answers by the deadline, the rule-based fallback does here and `source` says `heuristic`.
Image suggestions stay in this process: a 64-bit hash per catalogue template, no model.

Both routes are limited twice: the write limit per request, and the cost budget
(`api.ratelimit.charge`, RATE_LIMIT_AI_UNITS_PER_MINUTE): a caption costs
RATE_LIMIT_CAPTION_UNITS_PER_BOX per box of its template (generation time grows with it), a
suggestion RATE_LIMIT_SUGGEST_UNITS.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from fastapi import APIRouter, Request
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from api.dependencies import Services, ServicesDep
from api.inference import InferenceClient
from api.problems import (
    LIMITED_STATUSES,
    Problem,
    problem_responses,
    unavailable,
    unknown_template,
)
from api.ratelimit import RateLimited, charge
from api.text_fields import StoredText
from domain.ai.suggest import TemplateSuggester
from domain.ai.types import Suggestion
from domain.rendering.decode import decode
from domain.rendering.errors import ImageTooLarge, RenderError, TooManyFrames, UnsupportedImage

router = APIRouter(
    tags=["ai"], dependencies=[RateLimited], responses=problem_responses(*LIMITED_STATUSES)
)
MAX_LIMIT = 20
#: Longest side the suggester needs (its hash is 9 x 8 pixels); JPEGs decode straight to it.
HASH_SIDE = 256


class CaptionRequestBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"template_id": "drake", "topic": "unit tests"}]},
    )

    template_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    topic: StoredText = Field(min_length=1, max_length=200)


class CaptionOut(BaseModel):
    template_id: str
    texts: list[str]
    source: str  # the model's name, or "heuristic"
    fallback: bool


class SuggestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "2am"}]})

    text: StoredText = Field(min_length=1, max_length=500)
    limit: StrictInt = Field(5, ge=1, le=MAX_LIMIT)


class SuggestionOut(BaseModel):
    template_id: str
    name: str
    score: float


class SuggestOut(BaseModel):
    by: str  # "text" or "image"
    source: str  # the model's name, "heuristic", or "image_hash"
    templates: list[SuggestionOut]


def _ai(services: Services) -> tuple[InferenceClient, TemplateSuggester]:
    if services.inference is None or services.suggester is None:
        raise unavailable("ai")
    return services.inference, services.suggester


def caption_cost(services: Services, boxes: int) -> int:
    """A caption's price in budget units: generation time grows with the boxes."""
    return max(1, boxes) * services.settings.rate_limit_caption_units_per_box


@router.post(
    "/api/meme/caption",
    response_model=CaptionOut,
    responses=problem_responses(
        400,
        413,
        422,
        503,
        descriptions={
            400: "Malformed JSON",
            422: "Unknown template or invalid topic",
            503: "The API has no inference client (AI routes off)",
        },
    ),
    summary="Suggest a caption (one text per box) for a topic and template",
)
async def caption(body: CaptionRequestBody, request: Request, services: ServicesDep) -> CaptionOut:
    inference, _ = _ai(services)
    template = await services.template_lookup.find(body.template_id)
    if template is None:
        raise unknown_template(body.template_id)
    cost = caption_cost(services, len(template.boxes))
    await charge(request, services, units=cost, what=f"a caption of {len(template.boxes)} boxes")
    answer = await inference.caption(body.topic, template)
    return CaptionOut(
        template_id=template.id,
        texts=answer.value.texts,
        source=answer.source,
        fallback=answer.fallback,
    )


SUGGEST_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {"schema": SuggestBody.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "text": {"type": "string"},
                        "image": {"type": "string", "format": "binary"},
                        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    },
                }
            },
        },
        "required": True,
    }
}


@router.post(
    "/api/templates/suggest",
    response_model=SuggestOut,
    openapi_extra=SUGGEST_BODY,
    responses=problem_responses(
        400,
        413,
        415,
        422,
        503,
        descriptions={
            400: "Malformed JSON or multipart body",
            413: "Image too large",
            415: "Not a JPEG, PNG, GIF or WebP image",
            422: "Neither text nor image, an invalid limit, or a corrupt image",
            503: "The API has no inference client (AI routes off)",
        },
    ),
    summary="Rank templates for a text (JSON or form) or an uploaded image (multipart)",
)
async def suggest(request: Request, services: ServicesDep) -> SuggestOut:
    inference, suggester = _ai(services)
    units = services.settings.rate_limit_suggest_units
    await charge(request, services, units=units, what="a template suggestion")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        limit = _limit(form.get("limit"))
        image = form.get("image")
        if image is not None and hasattr(image, "read"):
            data: bytes = await image.read()
            claimed = getattr(image, "content_type", None)
            max_bytes = services.settings.max_upload_bytes
            # Off the event loop: decoding a 25 MiB image takes long enough to stall every request.
            picture = await asyncio.to_thread(_decode, data, claimed, max_bytes)
            ranked = await suggester.from_image(picture, limit)
            return _out("image", "image_hash", ranked)
        text = form.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Problem(422, "nothing-to-match", "Send `text` or `image`", "both are empty")
        body = _body({"text": text, "limit": limit})
    else:
        try:
            raw = await request.json()
        except ValueError as exc:
            raise Problem(400, "malformed-json", "Malformed JSON", str(exc)) from exc
        body = _body(raw)
    if services.uploads is not None:
        await services.uploads.refresh(suggester)
    ranked, source = await inference.suggest(body.text, body.limit, suggester)
    return _out("text", source, ranked)


def _body(raw: Any) -> SuggestBody:
    try:
        return SuggestBody.model_validate(raw)
    except ValidationError as exc:
        raise Problem(
            422, "validation-error", "Invalid request", str(exc.errors(include_url=False))
        ) from exc


def _limit(raw: Any) -> int:
    if raw is None or raw == "":
        return 5
    try:
        value = int(str(raw))
    except ValueError:
        value = -1
    if not 1 <= value <= MAX_LIMIT:
        raise Problem(422, "validation-error", "Invalid limit", f"limit is 1..{MAX_LIMIT}")
    return value


def _decode(data: bytes, content_type: str | None, max_bytes: int) -> Image.Image:
    """The image's first frame: an animated GIF or WebP is matched by it, not refused."""
    claimed = content_type if content_type and content_type.startswith("image/") else None
    try:
        return decode(
            data, claimed_type=claimed, max_frames=1, max_bytes=max_bytes, target_side=HASH_SIDE
        ).images[0]
    except TooManyFrames:
        # An animation. decode() has checked its size, signature, type and pixel bounds and
        # decoded frame 0 before refusing frame 1, so frame 0 alone is safe to take here.
        return _first_frame(data)
    except UnsupportedImage as exc:
        raise Problem(415, "unsupported-image", "Unsupported image", str(exc)) from exc
    except ImageTooLarge as exc:
        raise Problem(413, "image-too-large", "Image too large", str(exc)) from exc
    except RenderError as exc:
        raise Problem(422, "corrupt-image", "Corrupt image", str(exc)) from exc


def _first_frame(data: bytes) -> Image.Image:
    """Frame 0 of a vetted animation as RGB, transparency on white like decode() does."""
    with Image.open(io.BytesIO(data)) as im:
        im.seek(0)
        rgba = im.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, (0, 0), rgba)
    return flat


def _out(by: str, source: str, ranked: list[Suggestion]) -> SuggestOut:
    templates = [
        SuggestionOut(template_id=s.template_id, name=s.name, score=s.score) for s in ranked
    ]
    return SuggestOut(by=by, source=source, templates=templates)
