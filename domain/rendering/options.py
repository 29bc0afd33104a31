"""What a caller asks for and what it gets back: plain, picklable dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.settings import ImageQuality, Settings, get_settings

FORMATS = ("jpeg", "png", "webp", "gif")
SIZES = ("full", "medium", "thumb")

#: Longest side of each variant; never upscaled. See `sizing.py`: full lands within
#: 75-100 % of its limit (or exactly on it); medium and thumb are integer reductions
#: of full, so they land between half and all of theirs.
SIZE_LIMITS: dict[str, int] = {"full": 1280, "medium": 480, "thumb": 160}

MEDIA_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
}

#: Default cap on animation frames; longer inputs are rejected, not silently cut. MAX_FRAMES
#: (domain/settings.py) is the one source: this is its default, for callers without settings.
DEFAULT_MAX_FRAMES: int = Settings.model_fields["max_frames"].default


def _max_frames() -> int:
    """MAX_FRAMES of this process, so uploads and renders agree on the cap."""
    return get_settings().max_frames


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """Per-request choices; `None` means the default (format by animation, quality by setting)."""

    format: str | None = None
    quality: ImageQuality | None = None
    sizes: tuple[str, ...] = SIZES
    filters: tuple[str, ...] = ()
    max_frames: int = field(default_factory=_max_frames)
    #: Filters applied to the template's frames before the text (the editor's rotate, crop
    #: and colour filter); box positions are then relative to the transformed image.
    transform: tuple[str, ...] = ()
    #: Where the client put each of the template's boxes, as (x, y, width, height) in the
    #: template's pixels (after `transform`); None keeps the template's own layout.
    boxes: tuple[tuple[int, int, int, int], ...] | None = None


@dataclass(frozen=True, slots=True)
class EncodedImage:
    data: bytes
    width: int
    height: int
    format: str
    media_type: str
    frames: int = 1

    @property
    def size_bytes(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class RenderedMeme:
    variants: dict[str, EncodedImage]
    render_ms: float
    animated: bool = False
    frame_count: int = 1
    warnings: tuple[str, ...] = field(default_factory=tuple)
