"""Output sizes: how big "full", "medium" and "thumb" are and how to get there fast.

Resampling filters cost milliseconds per megapixel; integer box reduction
(`Image.reduce`) and JPEG DCT scaling (`draft`) cost a fraction of that and look
as good when shrinking. So a size may land anywhere between 75 % and 100 % of its
limit when an integer factor gets there; otherwise we resample exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from PIL import Image

from domain.templates.model import TextBox

#: Accept an integer reduction if it keeps at least this share of the limit.
MIN_SHARE = 0.75


def reduction(side: int, limit: int) -> int | None:
    """Integer factor bringing `side` to <= limit (and >= MIN_SHARE of it), else None."""
    if side <= limit:
        return 1
    k = -(-side // limit)
    return k if side / k >= MIN_SHARE * limit else None


def jpeg_draft_request(width: int, height: int, limit: int) -> tuple[int, int] | None:
    """Size to pass to `Image.draft` so libjpeg decodes at 1/2, 1/4 or 1/8 scale."""
    side = max(width, height)
    for k in (8, 4, 2):
        if side / k >= MIN_SHARE * limit:
            return (width // k, height // k)
    return None


def shrink_full(frames: Sequence[Image.Image], limit: int) -> list[Image.Image]:
    """Bring frames within the full-size limit: reduce when possible, else resample."""
    w, h = frames[0].size
    k = reduction(max(w, h), limit)
    if k == 1:
        return list(frames)
    if k is not None:
        return [f.reduce(k) for f in frames]
    s = limit / max(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return [f.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0) for f in frames]


def shrink_variant(frames: Sequence[Image.Image], limit: int) -> list[Image.Image]:
    """Medium and thumb: always integer reduction of the full frames (<= limit)."""
    w, h = frames[0].size
    if max(w, h) <= limit:
        return list(frames)
    k = -(-max(w, h) // limit)
    return [f.reduce(k) for f in frames]


def scale_box(box: TextBox, s: float) -> TextBox:
    """The same box on an image scaled by `s` (uploads decoded or shrunk smaller)."""
    if s == 1:
        return box
    return dataclasses.replace(
        box,
        x=int(box.x * s),
        y=int(box.y * s),
        width=max(1, int(box.width * s)),
        height=max(1, int(box.height * s)),
        max_font_size=max(4, round(box.max_font_size * s)),
        min_font_size=max(4, min(round(box.min_font_size * s), round(box.max_font_size * s))),
    )
