"""Encode frames to JPEG, PNG (APNG), GIF or WebP with quality presets.

Presets map IMAGE_QUALITY (low / medium / high / lossless) to each codec's
knobs. JPEG has no lossless mode: "lossless" means quality 100 without chroma
subsampling. Animations keep per-frame timing; JPEG gets the first frame. Animated
GIFs are written by `gif.py` (frame differencing, palettes by measurement); animated
WebP uses libwebp's animation encoder at method 2, no keyframe search (`ANIMATED_WEBP`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from domain.rendering.errors import InvalidOptions
from domain.rendering.gif import FramePalettes, GifPolicy, encode_gif
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
    #: Colours per GIF palette (transparency included): frames get palettes of their own
    #: when colours drift, so a few dozen per frame beat 256 shared ones.
    gif_colors: int
    #: Largest channel drift of a source pixel a GIF frame leaves undrawn (0: none).
    gif_tolerance: int
    #: Animated WebP quality; method 2 (see ANIMATED_WEBP) needs a little more than the
    #: still quality's method 4 for the same SSIM.
    webp_anim_quality: int
    #: Colours per frame-own GIF palette (transparency included): built from the pixels a
    #: frame redraws only, so fewer than `gif_colors` keep the same SSIM (HIGH: 52 give
    #: vibe-check memegen-like bytes at its SSIM; the shared 72 keep sprite and pan below).
    gif_local_colors: int


PRESETS: dict[ImageQuality, Preset] = {
    ImageQuality.LOW: Preset(60, 2, 55, False, 2, 1, 32, 6, 50, 32),
    ImageQuality.MEDIUM: Preset(75, 2, 72, False, 3, 3, 64, 3, 65, 42),
    ImageQuality.HIGH: Preset(90, 2, 85, False, 4, 3, 72, 0, 77, 52),
    ImageQuality.LOSSLESS: Preset(100, 0, 100, True, 4, 6, 256, 0, 100, 256),
}

ALIASES = {"jpg": "jpeg", "apng": "png"}
#: libwebp animation settings. Method 2 costs what method 0 with Pillow's default keyframe
#: search did (kmin 3 / kmax 5 encodes many frames twice) and is ~25% smaller; kmax 0 turns
#: that search off, libwebp's own default (only the first frame is a keyframe). A forced
#: keyframe every 9 frames would bound the drift of slow fades (libwebp leaves pixels that
#: moved less than ~5 levels at q77, ~10 at q50, since the previous frame) but costs ~30%
#: on mostly still animations. Methods 3-4: ~8% fewer bytes for ~1.7x the CPU.
ANIMATED_WEBP = {"method": 2, "kmin": 0, "kmax": 0}


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
    frame_palettes: FramePalettes | None = None,
) -> EncodedImage:
    """Encode RGB frames (one for a still image) into `fmt`.

    `palette`, when given for GIF, is a P-mode image holding the animation's shared palette
    (computed once per animation, not per frame and size); `frame_palettes` carries the
    frames' own palettes from one size to the next (largest first).
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
            kwargs.update(ANIMATED_WEBP)
            if preset.webp_lossless:
                kwargs["method"] = 0  # lossless effort grows steeply; keep today's speed
            else:
                kwargs["quality"] = preset.webp_anim_quality
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
        policy = GifPolicy(
            preset.gif_colors, preset.gif_tolerance, local_colors=preset.gif_local_colors
        )
        buf.write(
            encode_gif(
                frames if animated else frames[:1],
                list(durations) if animated else [0],
                loop=loop,
                policy=policy,
                palette=palette,
                shared=frame_palettes,
            )
        )
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
