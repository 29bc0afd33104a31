"""Encode frames to JPEG, PNG (APNG), GIF or WebP with quality presets.

Presets map IMAGE_QUALITY (low / medium / high / lossless) to each codec's
knobs. JPEG has no lossless mode: "lossless" means quality 100 without chroma
subsampling. Animations keep per-frame timing; JPEG gets the first frame.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from domain.rendering.animation import gif_palette, to_palette
from domain.rendering.errors import InvalidOptions
from domain.rendering.options import FORMATS, MEDIA_TYPES, EncodedImage
from domain.settings import ImageQuality


@dataclass(frozen=True, slots=True)
class Preset:
    jpeg_quality: int
    jpeg_subsampling: int  # 0 = 4:4:4, 2 = 4:2:0
    webp_quality: int
    webp_lossless: bool
    webp_method: int
    png_compress: int
    gif_colors: int


PRESETS: dict[ImageQuality, Preset] = {
    ImageQuality.LOW: Preset(60, 2, 55, False, 2, 1, 64),
    ImageQuality.MEDIUM: Preset(75, 2, 72, False, 3, 3, 128),
    ImageQuality.HIGH: Preset(90, 2, 85, False, 4, 3, 256),
    ImageQuality.LOSSLESS: Preset(100, 0, 100, True, 4, 6, 256),
}

ALIASES = {"jpg": "jpeg", "apng": "png"}
#: libwebp effort for animations: each extra level costs ~30% per frame for ~2% size.
ANIMATED_WEBP_METHOD = 0


def normalise_format(fmt: str) -> str:
    name = ALIASES.get(fmt.lower().strip(), fmt.lower().strip())
    if name not in FORMATS:
        raise InvalidOptions(f"unsupported output format {fmt!r}; use one of {', '.join(FORMATS)}")
    return name


def encode(
    frames: Sequence[Image.Image],
    durations: Sequence[int],
    fmt: str,
    quality: ImageQuality,
    *,
    loop: int = 0,
    palette: Image.Image | None = None,
) -> EncodedImage:
    """Encode RGB frames (one for a still image) into `fmt`.

    `palette`, when given for GIF, is a P-mode image whose palette every frame is
    mapped to (computed once per animation, not per frame and size).
    """
    preset = PRESETS[quality]
    buf = io.BytesIO()
    first = frames[0]
    animated = len(frames) > 1 and fmt != "jpeg"
    if fmt == "jpeg":
        first.save(buf, "JPEG", quality=preset.jpeg_quality, subsampling=preset.jpeg_subsampling)
    elif fmt == "png":
        if animated:
            first.save(
                buf,
                "PNG",
                save_all=True,
                append_images=list(frames[1:]),
                duration=list(durations),
                loop=loop,
                compress_level=preset.png_compress,
            )
        elif quality is ImageQuality.LOW:
            first.quantize(256, method=Image.Quantize.FASTOCTREE).save(
                buf, "PNG", compress_level=preset.png_compress
            )
        else:
            first.save(buf, "PNG", compress_level=preset.png_compress)
    elif fmt == "webp":
        kwargs = {
            "quality": preset.webp_quality,
            "lossless": preset.webp_lossless,
            "method": preset.webp_method,
        }
        if animated:
            kwargs["method"] = min(preset.webp_method, ANIMATED_WEBP_METHOD)
            first.save(
                buf,
                "WEBP",
                save_all=True,
                append_images=list(frames[1:]),
                duration=list(durations),
                loop=loop,
                **kwargs,
            )
        else:
            first.save(buf, "WEBP", **kwargs)
    elif fmt == "gif":
        pal = palette if palette is not None else gif_palette(frames, preset.gif_colors)
        indexed = [to_palette(f, pal) for f in frames]
        if animated:
            indexed[0].save(
                buf,
                "GIF",
                save_all=True,
                append_images=indexed[1:],
                duration=list(durations),
                loop=loop,
                optimize=False,
            )
        else:
            indexed[0].save(buf, "GIF", optimize=False)
    else:  # pragma: no cover - normalise_format guards this
        raise InvalidOptions(f"unsupported output format {fmt!r}")
    return EncodedImage(
        data=buf.getvalue(),
        width=first.width,
        height=first.height,
        format=fmt,
        media_type=MEDIA_TYPES[fmt],
        frames=len(frames) if animated else 1,
    )
