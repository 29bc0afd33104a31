"""The server's text metrics, as the web editor needs them to lay captions out the same way.

The canvas draws with the same font files (served by the API), but Pillow measures with
hinted advances: each glyph's width is its design advance scaled by FreeType in fixed point
and, for TrueType faces, rounded to whole pixels (CFF faces keep 1/64 pixels). Shipping the
design advances, units per em and the fitter's own vertical metrics lets the browser compute
the very widths `fitting.fit_text` uses, so lines break identically.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from fontTools.ttLib import TTFont

from domain.rendering.fitting import LINE_SPACING, REFERENCE_SIZE, STROKE_RATIO, reference_metrics
from domain.rendering.fonts import FAMILIES, family_path

#: Code points shipped: Latin, Greek, Cyrillic and general punctuation; others are
#: measured by the browser (rare in captions, and drawn by fallback faces anyway).
MAX_CODE_POINT = 0x2100


def font_files() -> dict[str, str]:
    """Basename -> path of every file a family resolves to: all the API may serve."""
    return {os.path.basename(p): p for p in (family_path(f) for f in FAMILIES)}


@lru_cache(maxsize=16)
def font_metrics(family: str) -> dict[str, Any]:
    """What the editor's layout reads for `family` (unknown names get the default family)."""
    path = family_path(family)
    font = TTFont(path, lazy=True)
    try:
        cmap = font.getBestCmap() or {}
        hmtx = font["hmtx"].metrics
        advances = {cp: hmtx[name][0] for cp, name in cmap.items() if cp < MAX_CODE_POINT}
        upem = font["head"].unitsPerEm
        hinted = "glyf" in font  # TrueType outlines: FreeType rounds advances to pixels
    finally:
        font.close()
    m = reference_metrics(path)
    return {
        "family": family if family in FAMILIES else "impact",
        "file": os.path.basename(path),
        "units_per_em": upem,
        "whole_pixel_advances": hinted,
        "advances": {str(cp): a for cp, a in sorted(advances.items())},
        "reference_size": REFERENCE_SIZE,
        "cap": m.cap,
        "descent": m.descent,
        "space": m.space,
        "stroke_ratio": STROKE_RATIO,
        "line_spacing": LINE_SPACING,
    }
