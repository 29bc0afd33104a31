"""Request and response bodies of the REST API, with the examples OpenAPI shows."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.settings import ImageQuality

ImageFormat = Literal["jpeg", "png", "webp", "gif"]
ImageSize = Literal["full", "medium", "thumb"]

# Letters, marks, numbers, punctuation, symbols and spaces; newlines may break lines.
_ALLOWED_CONTROL = {"\n"}


def _check_text(text: str) -> str:
    for char in text:
        if char not in _ALLOWED_CONTROL and unicodedata.category(char) in {"Cc", "Cs", "Co"}:
            raise ValueError(f"control or private-use character U+{ord(char):04X} is not allowed")
    return text


class GenerateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"template_id": "drake", "texts": ["Writing tests", "Shipping memes"]}]
        },
    )

    template_id: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    texts: list[str] = Field(min_length=1, max_length=20)
    format: ImageFormat | None = None
    quality: ImageQuality | None = None

    @field_validator("texts")
    @classmethod
    def texts_are_printable(cls, texts: list[str]) -> list[str]:
        texts = [_check_text(t) for t in texts]
        if not any(t.strip() for t in texts):
            raise ValueError("at least one text must be non-empty")
        return texts


class GenerateAccepted(BaseModel):
    meme_id: str
    status: Literal["pending"] = "pending"
    status_url: str
    image_url: str


class ImageInfo(BaseModel):
    url: str
    width: int
    height: int
    bytes: int
    media_type: str


class MemeView(BaseModel):
    id: str
    status: Literal["pending", "rendered", "failed", "deleted"]
    template_id: str
    texts: list[str]
    format: str | None
    created_at: datetime
    rendered_at: datetime | None
    render_ms: float | None
    error: str | None
    images: dict[str, ImageInfo]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, str]
