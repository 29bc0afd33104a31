"""Text: auto-fit, wrapping, fallback fonts, RTL, emoji, effects and alignment."""

from __future__ import annotations

import io
import os
import time

import pytest
from PIL import Image

from domain.rendering import RenderOptions, render_upload
from domain.rendering.fitting import fit_text
from domain.rendering.fonts import FONT_PACKAGES, family_path, get_font
from domain.rendering.runs import split_runs, text_width
from domain.rendering.text import clean_text
from domain.rendering.typesetting import typeset
from domain.templates import TextBox

IMPACT = family_path("impact")
LINE_70 = "WHEN THE CODE WORKS ON THE FIRST TRY AND YOU HAVE NO IDEA WHY IT WORKS"


def _blank(size: tuple[int, int] = (400, 300), colour: str = "#808080") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def _ink_bbox(data: bytes, background: tuple[int, int, int]) -> tuple[int, int, int, int]:
    im = Image.open(io.BytesIO(data)).convert("RGB")
    diff = Image.new("RGB", im.size, background)
    from PIL import ImageChops

    bbox = ImageChops.difference(im, diff).convert("L").point(lambda v: 255 if v > 40 else 0)
    box = bbox.getbbox()
    assert box is not None
    return box


def test_default_font_is_impact_like_condensed_black() -> None:
    assert "Condensed" in os.path.basename(IMPACT)
    assert "fonts-noto-extra" in FONT_PACKAGES and "fonts-noto-color-emoji" in FONT_PACKAGES


def test_fit_returns_largest_size_that_fits() -> None:
    fitted = fit_text(LINE_70, IMPACT, 560, 150, max_size=120, max_lines=3)
    assert 2 <= len(fitted.lines) <= 3
    stroke = fitted.stroke
    assert all(text_width(line, IMPACT, fitted.size) <= 560 - 2 * stroke for line in fitted.lines)
    assert fitted.block_height <= 150
    bigger = fit_text(
        LINE_70, IMPACT, 560, 150, max_size=fitted.size + 1, min_size=fitted.size + 1, max_lines=3
    )
    too_big = (
        bigger.truncated
        or bigger.block_height > 150
        or any(
            text_width(line, IMPACT, bigger.size) > 560 - 2 * bigger.stroke for line in bigger.lines
        )
    )
    assert too_big or len(bigger.lines) > 3


def test_short_text_hits_the_maximum_size() -> None:
    assert fit_text("HI", IMPACT, 500, 200, max_size=64).size == 64


def test_explicit_newlines_are_kept() -> None:
    fitted = fit_text("ONE\nTWO", IMPACT, 500, 300, max_size=60)
    assert fitted.lines == ("ONE", "TWO")


def test_warm_fit_is_under_a_millisecond() -> None:
    fit_text(LINE_70, IMPACT, 568, 150, max_size=96)
    runs = 200
    started = time.perf_counter()
    for _ in range(runs):
        fit_text(LINE_70, IMPACT, 568, 150, max_size=96)
    per_fit_ms = (time.perf_counter() - started) / runs * 1000
    assert per_fit_ms < 1.0, per_fit_ms


def test_fonts_are_cached_per_size() -> None:
    assert get_font(IMPACT, 40) is get_font(IMPACT, 40)
    assert get_font(IMPACT, 40) is not get_font(IMPACT, 41)


def test_fallback_chain_covers_other_scripts_and_emoji() -> None:
    runs = split_runs("HELLO مرحبا 😂", IMPACT)
    names = {os.path.basename(r.path) for r in runs}
    assert "NotoColorEmoji.ttf" in names
    assert any("Arabic" in n for n in names)
    assert {r.kind for r in runs} == {"glyphs", "shaped", "emoji"}
    # A right-to-left paragraph lists its runs right to left.
    rtl = split_runs("שלום WORLD", IMPACT)
    assert rtl[0].text.strip() == "WORLD"


def test_emoji_sequences_stay_together() -> None:
    runs = split_runs("👍🏽👨‍👩‍👧", IMPACT)
    assert len(runs) == 1 and runs[0].kind == "emoji"


def test_colour_emoji_are_drawn_in_colour() -> None:
    out = render_upload(
        _blank(),
        [{"x": 0, "y": 0, "width": 400, "height": 300, "text": "🔥"}],
        RenderOptions(format="png", sizes=("full",)),
    )
    im = Image.open(io.BytesIO(out.variants["full"].data)).convert("RGB")
    colours = im.getcolors(1 << 20) or []
    saturated = [c for _, c in colours if max(c) - min(c) > 120]
    assert saturated, "fire emoji should bring saturated orange/red pixels"


def test_rtl_text_renders_without_tofu() -> None:
    out = render_upload(
        _blank(),
        [
            {
                "x": 0,
                "y": 0,
                "width": 400,
                "height": 300,
                "text": "مرحبا بالعالم",
                "uppercase": False,
            }
        ],
        RenderOptions(format="png", sizes=("full",)),
    )
    box = _ink_bbox(out.variants["full"].data, (128, 128, 128))
    assert box[2] - box[0] > 100


@pytest.mark.parametrize("align", ["left", "center", "right"])
def test_alignment_places_ink(align: str) -> None:
    out = render_upload(
        _blank(),
        [
            {
                "x": 0,
                "y": 0,
                "width": 400,
                "height": 300,
                "text": "hi",
                "align": align,
                "max_font_size": 60,
            }
        ],
        RenderOptions(format="png", sizes=("full",)),
    )
    x0, _, x1, _ = _ink_bbox(out.variants["full"].data, (128, 128, 128))
    centre = (x0 + x1) / 2
    expected = {"left": 40, "center": 200, "right": 360}[align]
    assert abs(centre - expected) < 40, (align, x0, x1)


def test_vertical_centring() -> None:
    out = render_upload(
        _blank(),
        [{"x": 0, "y": 0, "width": 400, "height": 300, "text": "MID", "max_font_size": 60}],
        RenderOptions(format="png", sizes=("full",)),
    )
    _, y0, _, y1 = _ink_bbox(out.variants["full"].data, (128, 128, 128))
    assert abs((y0 + y1) / 2 - 150) < 12


def test_rotation_tilts_the_text() -> None:
    flat = typeset(TextBox("a", 0, 0, 300, 100), "WIDE TEXT")
    tilted = typeset(TextBox("a", 0, 0, 300, 100, rotation=30), "WIDE TEXT")
    assert flat is not None and tilted is not None
    fw, fh = flat.paints[-1].mask.size
    tw, th = tilted.paints[-1].mask.size
    assert th > fh * 1.5 and tw < fw * 1.2


def test_effects_add_paint_operations() -> None:
    plain = typeset(TextBox("a", 0, 0, 300, 100, outline_color=None), "TEXT")
    full = typeset(
        TextBox("a", 0, 0, 300, 100, shadow_color="#000000", gradient=("#ff0000", "#0000ff")),
        "TEXT",
    )
    assert plain is not None and full is not None
    assert len(plain.paints) == 1
    assert len(full.paints) == 3  # shadow, outline, gradient fill
    gradient = full.paints[-1].source
    assert isinstance(gradient, Image.Image)
    top = gradient.getpixel((0, 0))
    bottom = gradient.getpixel((0, gradient.height - 1))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > top[2] and bottom[2] > bottom[0]


def test_outline_colour_surrounds_fill() -> None:
    out = render_upload(
        _blank(colour="#808080"),
        [
            {
                "x": 0,
                "y": 0,
                "width": 400,
                "height": 300,
                "text": "I",
                "color": "#ffffff",
                "outline_color": "#000000",
            }
        ],
        RenderOptions(format="png", sizes=("full",)),
    )
    im = Image.open(io.BytesIO(out.variants["full"].data)).convert("L")
    row = [im.getpixel((x, 150)) for x in range(400)]
    assert max(row) > 240 and min(row) < 20
    first_dark = next(x for x, v in enumerate(row) if v < 40)
    first_white = next(x for x, v in enumerate(row) if v > 220)
    assert first_dark < first_white  # outline comes before the fill


def test_uppercasing_and_cleaning() -> None:
    assert clean_text("  hello   world \n\n", 0, uppercase=True) == "HELLO WORLD"
    assert clean_text("a\tb\r\nc", 0) == "a b\nc"
    assert clean_text(None, 0) == ""
