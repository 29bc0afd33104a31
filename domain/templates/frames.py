"""Decoded template frames, cached per process within the CACHE_SIZE_MB budget."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from PIL import Image

from domain.templates.lru import ByteLRU

if TYPE_CHECKING:
    from domain.templates.model import Template

#: Share of CACHE_SIZE_MB given to decoded templates; fonts get the rest.
TEMPLATE_CACHE_SHARE = 0.8


@dataclass(frozen=True)
class Frames:
    """RGB frames and per-frame durations in milliseconds (one frame if static)."""

    images: list[Image.Image]
    durations: list[int]
    loop: int = 0
    #: Size of the encoded original when decoding was scaled (JPEG draft); boxes use it.
    source_size: tuple[int, int] | None = None

    @property
    def animated(self) -> bool:
        return len(self.images) > 1

    @property
    def nbytes(self) -> int:
        return sum(im.width * im.height * len(im.getbands()) for im in self.images)


@lru_cache(maxsize=1)
def template_cache() -> ByteLRU[Frames]:
    from domain.settings import get_settings

    budget = int(get_settings().cache_size_mb * 1024 * 1024 * TEMPLATE_CACHE_SHARE)
    return ByteLRU(budget)


def template_frames(template: Template) -> Frames:
    """Frames of `template`, drawn (or decoded) on first use then served from memory."""
    key = (template.id, template.width, template.height, template.frame_count, template.source)

    def create() -> tuple[Frames, int]:
        frames = _build(template)  # shared: callers copy before drawing
        return frames, frames.nbytes

    return template_cache().get_or_create(key, create)


def _build(template: Template) -> Frames:
    if template.source is not None:
        from domain.rendering.decode import decode_path
        from domain.settings import get_settings

        # MAX_FRAMES, not decode's import-time default, so the setting governs file templates too.
        return decode_path(template.source, max_frames=get_settings().max_frames)
    from domain.templates.artwork import draw_frames

    images = draw_frames(template.artwork, template.width, template.height, template.frame_count)
    return Frames(images=images, durations=[template.frame_duration_ms] * len(images))
