"""The metrics the editor lays captions out with (domain/rendering/font_metrics.py) give the
widths and vertical metrics the renderer's fitter uses, so the canvas can break lines alike."""

from __future__ import annotations

import pytest

from domain.rendering.fitting import reference_metrics
from domain.rendering.font_metrics import font_files, font_metrics
from domain.rendering.fonts import FAMILIES, family_path
from domain.rendering.runs import text_width

SAMPLES = ["WHEN THE CANVAS MATCHES", "Every pixel, every line break!", "Galaxy brain: 1 truth?"]


def browser_width(metrics: dict[str, object], text: str, size: int) -> float:
    """text-layout.js's widthAt: each design advance scaled in FreeType's 16.16 fixed point
    to 26.6, then rounded to whole pixels (TrueType faces)."""
    advances = metrics["advances"]
    upem = metrics["units_per_em"]
    assert isinstance(advances, dict) and isinstance(upem, int)
    scale = (size * 64 * 65536 + upem // 2) // upem
    fixed = [(advances[str(ord(ch))] * scale + 0x8000) >> 16 for ch in text]  # 26.6
    if metrics["whole_pixel_advances"]:
        return sum((v + 32) >> 6 for v in fixed)
    return sum(fixed) / 64


#: TrueType faces: every template's font. The CFF faces (bebas, comic) measure with kerning
#: or fractional advances the shipped table does not carry: their widths are approximate.
TRUETYPE = [f for f in sorted(FAMILIES) if font_metrics(f)["whole_pixel_advances"]]


def test_the_template_fonts_are_truetype() -> None:
    assert {"impact", "sans"} <= set(TRUETYPE)


@pytest.mark.parametrize("family", TRUETYPE)
def test_widths_from_the_shipped_advances_are_pillows(family: str) -> None:
    metrics = font_metrics(family)
    path = family_path(family)
    for size in (9, 17, 33, 48, 61, 100):
        for text in SAMPLES:
            assert browser_width(metrics, text, size) == text_width(text, path, size), (size, text)


def test_the_vertical_metrics_are_the_fitters() -> None:
    metrics = font_metrics("impact")
    m = reference_metrics(family_path("impact"))
    assert (metrics["cap"], metrics["descent"], metrics["space"]) == (m.cap, m.descent, m.space)
    assert metrics["file"] in font_files()


def test_an_unknown_family_gets_the_default_and_only_family_files_are_servable() -> None:
    assert font_metrics("no-such-family")["family"] == "impact"
    files = font_files()
    assert set(files.values()) == {family_path(f) for f in FAMILIES}
    assert all("/" not in name for name in files)
