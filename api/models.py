"""Request and response bodies of the REST API, with the examples OpenAPI shows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from api.text_fields import StoredText
from domain.rendering.errors import InvalidText
from domain.rendering.filters import MAX_FILTER_LENGTH, MAX_FILTERS
from domain.rendering.text import ABSOLUTE_MAX_TEXT, clean_text
from domain.rendering.validation import ABSOLUTE_MAX_BOXES
from domain.settings import ImageQuality

ImageFormat = Literal["jpeg", "png", "webp", "gif"]
ImageSize = Literal["full", "medium", "thumb"]
#: A filter string (domain/rendering/filters.py), e.g. "rotate:90" or "crop:0,0,300,200".
FilterSpec = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FILTER_LENGTH)]
#: One caption; domain.rendering.text.clean_text decides which characters may be in it.
Caption = Annotated[str, StringConstraints(max_length=ABSOLUTE_MAX_TEXT)]


def _check_text(text: str, index: int) -> str:
    """The renderer's own check (domain.rendering.text.clean_text): what it refuses, the API
    refuses; MAX_TEXT_LENGTH itself is checked by the route, against the API's settings."""
    try:
        clean_text(text, index, limit=ABSOLUTE_MAX_TEXT)
    except InvalidText as exc:
        raise ValueError(str(exc)) from exc
    return text


class BoxPlacementIn(BaseModel):
    """Where the editor put one of the template's boxes, in the template's pixels."""

    model_config = ConfigDict(extra="forbid")

    # Strict: `true`, `1.0` and `"1"` are not pixel counts.
    x: StrictInt = Field(ge=0, le=16_384)
    y: StrictInt = Field(ge=0, le=16_384)
    width: StrictInt = Field(ge=1, le=16_384)
    height: StrictInt = Field(ge=1, le=16_384)


class GenerateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"template_id": "drake", "texts": ["Writing tests", "Shipping memes"]}]
        },
    )

    template_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    texts: list[Caption] = Field(default_factory=list, max_length=ABSOLUTE_MAX_BOXES)
    format: ImageFormat | None = None
    quality: ImageQuality | None = None
    # AI (domain/ai): fill every empty box with a suggested caption about `topic` (default:
    # the given texts, else the template's name) before the request is produced.
    auto_caption: StrictBool = False
    topic: StoredText | None = Field(None, max_length=200)
    # The web editor's layout (domain/rendering/filters.py has the filter syntax): filters on
    # the template before the text (rotate, crop, colour), a placement for every box of the
    # template (after `transform`), and filters on the finished meme.
    transform: list[FilterSpec] = Field(default_factory=list, max_length=MAX_FILTERS)
    boxes: list[BoxPlacementIn] | None = Field(None, max_length=ABSOLUTE_MAX_BOXES)
    filters: list[FilterSpec] = Field(default_factory=list, max_length=MAX_FILTERS)

    @field_validator("texts")
    @classmethod
    def texts_are_printable(cls, texts: list[str]) -> list[str]:
        return [_check_text(t, i) for i, t in enumerate(texts)]

    @model_validator(mode="after")
    def some_text_or_auto_caption(self) -> GenerateRequest:
        if not self.auto_caption and not any(t.strip() for t in self.texts):
            raise ValueError("at least one text must be non-empty (or set auto_caption)")
        return self


class GenerateAccepted(BaseModel):
    meme_id: str
    # "pending" unless `?wait=` saw the render finish; then `meme` holds the result.
    status: Literal["pending", "rendered", "failed", "rejected", "flagged"] = "pending"
    status_url: str
    image_url: str
    meme: MemeView | None = None


class ImageInfo(BaseModel):
    url: str
    width: int
    height: int
    bytes: int
    media_type: str


class MemeView(BaseModel):
    id: str
    # rejected: moderation refused it (`error` says why); flagged: rendered, held for review.
    status: Literal["pending", "rendered", "failed", "deleted", "rejected", "flagged"]
    template_id: str
    texts: list[str]
    format: str | None
    created_at: datetime
    rendered_at: datetime | None
    render_ms: float | None
    error: str | None
    images: dict[str, ImageInfo]
    sentiment: str | None = None  # negative, neutral or positive (domain/ai/sentiment.py)


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"template_id": "drake", "texts": ["Tests", "Memes"]},
                        {"template_id": "two-buttons", "texts": ["Ship", "Sleep"]},
                    ]
                }
            ]
        },
    )

    items: list[GenerateRequest] = Field(min_length=1, max_length=100)


class BatchItemResult(BaseModel):
    index: int
    status: int  # 202 accepted, else the item's problem status
    meme_id: str | None = None
    status_url: str | None = None
    problem: dict[str, object] | None = None


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchItemResult]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, str]
