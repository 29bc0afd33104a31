"""Draw runs into text masks, reusing rasterised glyphs.

Rasterising with FreeType (worse: stroking an outline) dominates text cost, and
captions reuse the same few dozen letters. Plain runs are therefore composed from
cached per-glyph masks placed with their advances and kerning; only runs that
need shaping (right-to-left, joining scripts) go through raqm as a whole, and
colour emoji are drawn once at their bitmap strike and cached scaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw

from domain.rendering.fonts import EMOJI_STRIKE, get_font
from domain.rendering.runs import EMOJI_SCALE, Run, run_width
from domain.templates.lru import ByteLRU


@dataclass(frozen=True, slots=True)
class Glyph:
    mask: Image.Image | None  # None for blank glyphs (spaces)
    dx: int  # mask offset from the pen position on the baseline
    dy: int


@dataclass(frozen=True, slots=True)
class ColourPatch:
    """A colour bitmap (emoji) to paste with its own alpha, in mask coordinates."""

    image: Image.Image
    x: int
    y: int


@lru_cache(maxsize=1)
def glyph_cache() -> ByteLRU[Glyph]:
    from domain.settings import get_settings

    return ByteLRU(int(get_settings().cache_size_mb * 1024 * 1024 * 0.05))


def glyph(path: str, size: int, stroke: int, ch: str) -> Glyph:
    key = (path, size, stroke, ch)
    cache = glyph_cache()
    g = cache.get(key)
    if g is None:
        g = _raster(path, size, stroke, ch)
        cache.put(key, g, 64 + (g.mask.width * g.mask.height if g.mask else 0))
    return g


def _raster(path: str, size: int, stroke: int, ch: str) -> Glyph:
    font = get_font(path, size)
    x0, y0, x1, y1 = font.getbbox(ch, anchor="ls", stroke_width=stroke)
    if x1 <= x0 or y1 <= y0:
        return Glyph(None, 0, 0)
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask).text(
        (-x0, -y0), ch, font=font, fill=255, anchor="ls", stroke_width=stroke, stroke_fill=255
    )
    return Glyph(mask, x0, y0)


_advances: dict[tuple[str, int, str], float] = {}


def _advance(path: str, size: int, text: str) -> float:
    key = (path, size, text)
    a = _advances.get(key)
    if a is None:
        if len(_advances) > 200_000:
            _advances.clear()
        a = get_font(path, size).getlength(text)
        _advances[key] = a
    return a


def draw_glyph_run(
    mask: Image.Image, run: Run, size: int, stroke: int, x: float, baseline: float
) -> None:
    """Paste cached glyphs of a plain run, following advances and pair kerning."""
    pen = x
    prev = ""
    path = run.path
    # Paste through the core image: Image.paste's argument checks cost more than the
    # blend of a small glyph. Boxes are clipped here because the core does not clip.
    target = mask.im
    width, height = mask.size
    base = round(baseline)
    for ch in run.text:
        if prev:
            pen += _advance(path, size, prev + ch) - _advance(path, size, ch)
        prev = ch
        g = glyph(path, size, stroke, ch)
        if g.mask is None:
            continue
        x0, y0 = round(pen) + g.dx, base + g.dy
        gw, gh = g.mask.size
        if x0 >= 0 and y0 >= 0 and x0 + gw <= width and y0 + gh <= height:
            target.paste(255, (x0, y0, x0 + gw, y0 + gh), g.mask.im)
        else:
            mask.paste(255, (x0, y0), g.mask)


def draw_shaped_run(
    mask: Image.Image, run: Run, size: int, stroke: int, x: float, baseline: float
) -> None:
    font = get_font(run.path, size, complex_text=True)
    ImageDraw.Draw(mask).text(
        (x, baseline),
        run.text,
        font=font,
        fill=255,
        anchor="ls",
        stroke_width=stroke,
        stroke_fill=255,
    )


@lru_cache(maxsize=512)
def emoji_bitmap(path: str, text: str, size: int) -> tuple[Image.Image, int, int] | None:
    """RGBA emoji run scaled to `size`, with its offset from the pen on the baseline."""
    font = get_font(path, EMOJI_STRIKE, complex_text=True)
    x0, y0, x1, y1 = font.getbbox(text, anchor="ls")
    if x1 <= x0 or y1 <= y0:
        return None
    im = Image.new("RGBA", (x1 - x0, y1 - y0), (0, 0, 0, 0))
    ImageDraw.Draw(im).text((-x0, -y0), text, font=font, anchor="ls", embedded_color=True)
    k = size * EMOJI_SCALE / EMOJI_STRIKE
    w, h = max(1, round(im.width * k)), max(1, round(im.height * k))
    scaled = im.resize((w, h), Image.Resampling.LANCZOS)
    # Centre the emoji on the capital height rather than hanging from the strike's ascent.
    return scaled, round(x0 * k), round(y0 * k + size * 0.08)


def draw_runs(
    fill: Image.Image,
    stroke_mask: Image.Image | None,
    runs: tuple[Run, ...],
    size: int,
    stroke: int,
    x: float,
    baseline: float,
) -> list[ColourPatch]:
    """Draw one line starting at pen `x`; returns colour patches for emoji."""
    patches: list[ColourPatch] = []
    pen = x
    for run in runs:
        if run.kind == "emoji":
            bitmap = emoji_bitmap(run.path, run.text, size)
            if bitmap is not None:
                im, dx, dy = bitmap
                patches.append(ColourPatch(im, round(pen) + dx, round(baseline) + dy))
        elif run.kind == "glyphs":
            draw_glyph_run(fill, run, size, 0, pen, baseline)
            if stroke_mask is not None:
                draw_glyph_run(stroke_mask, run, size, stroke, pen, baseline)
        else:
            draw_shaped_run(fill, run, size, 0, pen, baseline)
            if stroke_mask is not None:
                draw_shaped_run(stroke_mask, run, size, stroke, pen, baseline)
        pen += run_width(run, size)
    return patches
