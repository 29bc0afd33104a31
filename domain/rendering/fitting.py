"""Auto-fit: the largest font size at which text wraps into a box.

The usual approach tries every size from large to small, reloading the font and
measuring the whole text each time. We measure each word once at a reference
size (cached), scale widths linearly to binary-search the size arithmetically,
and confirm the winner with one real measurement at that size. Glyph hinting
makes widths slightly non-linear, so the check steps down a size if needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from domain.rendering.fonts import get_font
from domain.rendering.runs import text_width

REFERENCE_SIZE = 100
#: Stroke (outline) width as a fraction of the font size.
STROKE_RATIO = 0.075
#: Baseline-to-baseline distance as a multiple of the cap + descender height.
LINE_SPACING = 1.18
ELLIPSIS = "…"
_MAX_VERIFY_STEPS = 8


@dataclass(frozen=True, slots=True)
class FittedText:
    """Lines to draw at `size`, with the vertical metrics to place them."""

    lines: tuple[str, ...]
    size: int
    stroke: int
    ascent: float  # baseline offset of the first line from the block's top
    line_advance: float
    block_height: float
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class FontMetrics:
    """A font's vertical metrics at REFERENCE_SIZE, shared with the editor's canvas
    (domain/rendering/font_metrics.py), so both fit text with the same numbers."""

    cap: float  # height of capitals above the baseline, at the reference size
    descent: float
    space: float


@lru_cache(maxsize=64)
def reference_metrics(path: str) -> FontMetrics:
    font = get_font(path, REFERENCE_SIZE)
    cap_top = font.getbbox("H", anchor="ls")[1]  # accents may rise into the line gap
    desc_bottom = font.getbbox("gjpy", anchor="ls")[3]
    return FontMetrics(cap=float(-cap_top), descent=float(desc_bottom), space=font.getlength(" "))


def _width_ref(path: str, word: str) -> float:
    return text_width(word, path, REFERENCE_SIZE)


def stroke_for(size: int, outlined: bool) -> int:
    return max(1, round(size * STROKE_RATIO)) if outlined else 0


def fit_text(
    text: str,
    path: str,
    width: int,
    height: int,
    *,
    max_size: int = 96,
    min_size: int = 8,
    max_lines: int = 4,
    outlined: bool = True,
) -> FittedText:
    """Largest size in [min_size, max_size] whose wrapped text fits `width` x `height`.

    If even `min_size` does not fit, the text is cut to `max_lines` with an ellipsis
    (`truncated=True`) rather than overflowing the box.
    """
    m = reference_metrics(path)
    paragraphs = [p.split() for p in text.split("\n")]
    line_unit = (m.cap + m.descent) / REFERENCE_SIZE  # line box height per pixel of size
    hi = min(max_size, int(height / (line_unit * 1.0 + 2 * STROKE_RATIO)) + 1)
    lo = max(1, min(min_size, hi))

    def layout(size: int) -> tuple[list[str], bool]:
        stroke = stroke_for(size, outlined)
        avail = width - 2 * stroke
        scale = size / REFERENCE_SIZE
        lines = _wrap(paragraphs, path, avail / scale if scale else 0.0, m.space)
        block = _block_height(len(lines), size, m)
        return lines, len(lines) <= max_lines and block + 2 * stroke <= height

    best = lo
    a, b = lo, hi
    while a <= b:
        mid = (a + b) // 2
        if layout(mid)[1]:
            best = mid
            a = mid + 1
        else:
            b = mid - 1

    # Confirm with real measurements at the chosen size (hinting is not linear).
    size = best
    for _ in range(_MAX_VERIFY_STEPS):
        lines, fits = layout(size)
        if fits and _real_fit(lines, path, size, width - 2 * stroke_for(size, outlined)):
            return _fitted(tuple(lines), size, outlined, m)
        if size <= lo:
            break
        size -= 1
    lines, _ = layout(size)
    return _truncate(lines, path, size, width, max_lines, outlined, m)


def _wrap(paragraphs: list[list[str]], path: str, avail_ref: float, space: float) -> list[str]:
    """Greedy word wrap in reference-size units; over-long words break by character."""
    lines: list[str] = []
    for words in paragraphs:
        current: list[str] = []
        current_w = 0.0
        for word in words:
            w = _width_ref(path, word)
            if w > avail_ref:
                if current:
                    lines.append(" ".join(current))
                    current, current_w = [], 0.0
                pieces = _break_word(word, path, avail_ref)
                lines.extend(pieces[:-1])
                current, current_w = [pieces[-1]], _width_ref(path, pieces[-1])
                continue
            extra = w if not current else current_w + space + w
            if extra <= avail_ref:
                current.append(word)
                current_w = extra
            else:
                lines.append(" ".join(current))
                current, current_w = [word], w
        lines.append(" ".join(current))
    return lines


def _break_word(word: str, path: str, avail_ref: float) -> list[str]:
    pieces: list[str] = []
    start = 0
    acc = 0.0
    for i, ch in enumerate(word):
        cw = _width_ref(path, ch)
        if acc + cw > avail_ref and i > start:
            pieces.append(word[start:i])
            start, acc = i, 0.0
        acc += cw
    pieces.append(word[start:])
    return pieces


def _block_height(n: int, size: int, m: FontMetrics) -> float:
    scale = size / REFERENCE_SIZE
    box = (m.cap + m.descent) * scale
    return n * box + (n - 1) * box * (LINE_SPACING - 1)


def _real_fit(lines: list[str], path: str, size: int, avail: int) -> bool:
    return all(text_width(line, path, size) <= avail for line in lines)


def _fitted(
    lines: tuple[str, ...], size: int, outlined: bool, m: FontMetrics, truncated: bool = False
) -> FittedText:
    scale = size / REFERENCE_SIZE
    stroke = stroke_for(size, outlined)
    box = (m.cap + m.descent) * scale
    return FittedText(
        lines=lines,
        size=size,
        stroke=stroke,
        ascent=m.cap * scale + stroke,
        line_advance=box * LINE_SPACING,
        block_height=_block_height(len(lines), size, m) + 2 * stroke,
        truncated=truncated,
    )


def _truncate(
    lines: list[str],
    path: str,
    size: int,
    width: int,
    max_lines: int,
    outlined: bool,
    m: FontMetrics,
) -> FittedText:
    """Keep what fits at the smallest size and mark the cut with an ellipsis."""
    avail = width - 2 * stroke_for(size, outlined)
    kept = lines[: max(1, max_lines)]
    last = kept[-1]
    while last and text_width(last + ELLIPSIS, path, size) > avail:
        last = last[: max(0, len(last) - max(1, len(last) // 8))]
    kept[-1] = last.rstrip() + ELLIPSIS
    return _fitted(tuple(kept), size, outlined, m, truncated=True)
