"""Animation helpers: the shared GIF palette, frame timing, frame cap.

One palette for the whole animation is built from a small sample of the composed frames
(text included, so captions keep their colours) and handed to every size; the GIF writer
(`gif.py`) measures whether the frames need palettes of their own instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from domain.rendering.errors import TooManyFrames

#: Colours a GIF palette may hold: one of the 256 indices is kept for transparency.
MAX_COLORS = 255
MIN_FRAME_MS = 20


def gif_palette(frames: Sequence[Image.Image], colors: int = 256) -> Image.Image:
    """A P-mode image whose palette (`colors` - 1 entries, one left for transparency) suits
    the animation: an octree over up to four sampled frames at half size (a few ms)."""
    sample = list(frames[:: max(1, len(frames) // 4)])[:4]
    w = min(f.width for f in sample)
    h = min(f.height for f in sample)
    strip = Image.new("RGB", (w, h * len(sample)))
    for i, f in enumerate(sample):
        strip.paste(f.convert("RGB").crop((0, 0, w, h)), (0, i * h))
    if min(w, h) >= 16:
        strip = strip.reduce(2)
    count = max(2, min(colors - 1, MAX_COLORS))
    return strip.quantize(count, method=Image.Quantize.FASTOCTREE)


def normalise_durations(durations: Sequence[int], count: int, default: int = 100) -> list[int]:
    """One duration per frame; browsers treat < 20 ms as 100 ms, so clamp up."""
    out = [max(MIN_FRAME_MS, int(d or default)) for d in durations[:count]]
    out += [default] * (count - len(out))
    return out


def check_frame_cap(count: int, cap: int) -> None:
    if count > cap:
        raise TooManyFrames(f"the animation has {count} frames; the limit is {cap}")
