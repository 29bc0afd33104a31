"""Decode untrusted images without letting them hurt the worker.

Order matters: check the byte size, sniff the magic bytes (and compare them with
the claimed type), read only the header to bound pixels and frames, then decode.
Pillow's own bomb check is kept as a second line of defence with a bounded
`Image.MAX_IMAGE_PIXELS`.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

from PIL import Image, ImageFile

from domain.rendering.errors import (
    CorruptImage,
    ImageTooLarge,
    TooManyFrames,
    UnsupportedImage,
)
from domain.rendering.options import DEFAULT_MAX_FRAMES
from domain.rendering.sizing import jpeg_draft_request
from domain.settings import MAX_IMAGE_BYTES
from domain.templates.frames import Frames

#: Largest accepted input file (uploads and template images): 25 MiB.
MAX_INPUT_BYTES = MAX_IMAGE_BYTES
#: Largest accepted frame, in pixels (e.g. 8000 x 5000).
MAX_PIXELS = 40_000_000
#: Largest accepted side, whatever the pixel count.
MAX_SIDE = 12_000
#: Upper bound on pixels decoded across all frames of an animation.
MAX_TOTAL_PIXELS = 120_000_000
MIN_FRAME_MS = 20

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

_MEDIA = {
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/pjpeg": "jpeg",
    "image/png": "png",
    "image/apng": "png",
    "image/gif": "gif",
    "image/webp": "webp",
}
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP"}


def sniff(data: bytes) -> str | None:
    """Format from magic bytes: jpeg, png, gif, webp, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def claimed_format(claimed: str) -> str | None:
    """Map a media type ('image/png') or extension-like name ('png', 'jpg') to a format."""
    value = claimed.lower().split(";")[0].strip()
    if value in _MEDIA:
        return _MEDIA[value]
    value = value.lstrip(".")
    return {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "gif": "gif", "webp": "webp"}.get(value)


def decode(
    data: bytes,
    *,
    claimed_type: str | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_bytes: int = MAX_INPUT_BYTES,
    target_side: int | None = None,
) -> Frames:
    """RGB frames and durations from untrusted bytes, or a specific RenderError.

    `target_side` lets JPEG decode straight to a smaller scale (DCT scaling) when
    the image is at least twice as large as needed: a big photo never exists at
    full resolution in memory.
    """
    if not data:
        raise CorruptImage("the image is empty")
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"the image is {len(data) / 1048576:.1f} MiB; "
            f"the limit is {max_bytes / 1048576:.0f} MiB"
        )
    fmt = sniff(data)
    if fmt is None:
        raise UnsupportedImage("not a JPEG, PNG, GIF or WebP image (unrecognised file signature)")
    if claimed_type is not None:
        claimed = claimed_format(claimed_type)
        if claimed is None:
            raise UnsupportedImage(f"unsupported content type {claimed_type!r}")
        if claimed != fmt:
            raise UnsupportedImage(f"content is {fmt.upper()} but was declared as {claimed_type!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _decode(data, fmt, max_frames, target_side)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"decompression bomb refused: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise CorruptImage(f"the {fmt.upper()} image is corrupt or truncated ({exc})") from exc
    except MemoryError as exc:
        raise ImageTooLarge("the image needs too much memory to decode") from exc


def _decode(data: bytes, fmt: str, max_frames: int, target_side: int | None) -> Frames:
    im = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]])
    w, h = im.size
    if w <= 0 or h <= 0:
        raise CorruptImage("the image has no pixels")
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise ImageTooLarge(
            f"{w}x{h} pixels is too large (limit {MAX_PIXELS:,} pixels, {MAX_SIDE} per side)"
        )
    animated = bool(getattr(im, "is_animated", False))
    if fmt == "jpeg" and target_side:
        request = jpeg_draft_request(w, h, target_side)
        if request is not None:
            im.draft("RGB", request)
    if not animated:
        im.load()
        return Frames(images=[_rgb(im)], durations=[0], source_size=(w, h))
    # Count frames lazily: never walk a 5000-frame file further than the cap.
    images: list[Image.Image] = []
    durations: list[int] = []
    budget = MAX_TOTAL_PIXELS
    index = 0
    while True:
        try:
            im.seek(index)
        except EOFError:
            break
        if index >= max_frames:
            raise TooManyFrames(f"the animation has more than {max_frames} frames")
        budget -= w * h
        if budget < 0:
            raise ImageTooLarge(f"the animation decodes to more than {MAX_TOTAL_PIXELS:,} pixels")
        images.append(_rgb(im))
        durations.append(max(MIN_FRAME_MS, int(im.info.get("duration", 100) or 100)))
        index += 1
    if not images:
        raise CorruptImage("the animation has no frames")
    return Frames(
        images=images,
        durations=durations,
        loop=int(im.info.get("loop", 0) or 0),
        source_size=(w, h),
    )


def _rgb(im: Image.Image) -> Image.Image:
    """Flatten to RGB; transparent areas become white (memes are opaque)."""
    if im.mode == "RGB":
        return im.copy()
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", im.size, (255, 255, 255))
        flat.paste(rgba, (0, 0), rgba)
        return flat
    return im.convert("RGB")


def decode_path(path: Path, max_frames: int = DEFAULT_MAX_FRAMES) -> Frames:
    return decode(path.read_bytes(), max_frames=max_frames)
