"""Animation helpers: one shared GIF palette per animation, frame timing, frame cap.

Quantising each frame separately is slow and makes colours flicker between
frames; we build one adaptive palette from a small sample of the composed frames
(text included, so captions keep their exact colours) and map every frame and
every size to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from domain.rendering.errors import TooManyFrames

#: Sample size for palette building: enough for 256 colours, cheap for median cut.
PALETTE_SAMPLE_PIXELS = 30_000
MIN_FRAME_MS = 20


def gif_palette(frames: Sequence[Image.Image], colors: int = 256) -> Image.Image:
    """A P-mode image whose palette suits every frame of the animation."""
    sample = list(frames[:: max(1, len(frames) // 4)])[:4]
    if len(sample) == 1:
        strip = sample[0]
    else:
        w = min(f.width for f in sample)
        h = min(f.height for f in sample)
        strip = Image.new("RGB", (w, h * len(sample)))
        for i, f in enumerate(sample):
            strip.paste(f.crop((0, 0, w, h)), (0, i * h))
    if strip.width * strip.height > PALETTE_SAMPLE_PIXELS:
        factor = max(2, round((strip.width * strip.height / PALETTE_SAMPLE_PIXELS) ** 0.5))
        strip = strip.reduce(factor)
    return strip.convert("RGB").quantize(colors, method=Image.Quantize.MEDIANCUT)


def to_palette(frame: Image.Image, palette: Image.Image) -> Image.Image:
    """Map a frame to the shared palette (no dithering: it shimmers between frames)."""
    rgb = frame if frame.mode == "RGB" else frame.convert("RGB")
    return rgb.quantize(palette=palette, dither=Image.Dither.NONE)


def normalise_durations(durations: Sequence[int], count: int, default: int = 100) -> list[int]:
    """One duration per frame; browsers treat < 20 ms as 100 ms, so clamp up."""
    out = [max(MIN_FRAME_MS, int(d or default)) for d in durations[:count]]
    out += [default] * (count - len(out))
    return out


def check_frame_cap(count: int, cap: int) -> None:
    if count > cap:
        raise TooManyFrames(f"the animation has {count} frames; the limit is {cap}")
