"""Split text into runs, each drawn by one font of the fallback chain.

FreeType draws tofu for characters a face lacks, so every character goes to the
first face (chosen family, then `FALLBACK_CHAIN`) whose cmap covers it. Emoji
sequences (ZWJ, skin tones, flags, keycaps, VS16) stay together for the colour
emoji face. Runs in a right-to-left paragraph are ordered right to left; raqm
shapes inside each run.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from fontTools.ttLib import TTFont

from domain.rendering.fonts import (
    EMOJI_STRIKE,
    fallback_paths,
    get_font,
    is_emoji_font,
)

Kind = Literal["glyphs", "shaped", "emoji"]

#: Colour emoji are drawn at this fraction of the font size (their em box is tall).
EMOJI_SCALE = 0.92

_JOINERS = {0x200D, 0xFE0F, 0x20E3}


@dataclass(frozen=True, slots=True)
class Run:
    text: str
    path: str
    kind: Kind


@lru_cache(maxsize=64)
def coverage(path: str) -> frozenset[int]:
    """Code points a font file maps to glyphs (read once per process)."""
    try:
        font = TTFont(path, lazy=True, fontNumber=0)
        cmap = font.getBestCmap() or {}
        font.close()
    except Exception:  # unreadable font: treat as covering nothing
        return frozenset()
    return frozenset(cmap)


def _is_emoji_char(cp: int) -> bool:
    return (
        0x1F000 <= cp <= 0x1FAFF
        or 0x2600 <= cp <= 0x27BF
        or 0x2300 <= cp <= 0x23FF
        or 0x2B00 <= cp <= 0x2BFF
        or cp in (0x00A9, 0x00AE, 0x203C, 0x2049, 0x2122, 0x2139, 0x3030, 0x303D)
    )


def _is_modifier(cp: int) -> bool:
    return cp in _JOINERS or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F


def _emoji_path() -> str | None:
    for p in fallback_paths():
        if is_emoji_font(p):
            return p
    return None


def is_rtl_paragraph(text: str) -> bool:
    for ch in text:
        bidi = unicodedata.bidirectional(ch)
        if bidi in ("R", "AL"):
            return True
        if bidi == "L":
            return False
    return False


def _needs_shaping(text: str) -> bool:
    for ch in text:
        if ord(ch) < 0x0590:
            continue
        if unicodedata.bidirectional(ch) in ("R", "AL", "AN") or unicodedata.category(ch) in (
            "Mn",
            "Mc",
        ):
            return True
        if 0x0900 <= ord(ch) <= 0x0DFF or 0x0E00 <= ord(ch) <= 0x0EFF:
            return True
    return False


@lru_cache(maxsize=8192)
def split_runs(text: str, primary: str) -> tuple[Run, ...]:
    """Runs in visual order (right-to-left paragraphs reverse the run order)."""
    emoji = _emoji_path()
    chain = [primary, *[p for p in fallback_paths() if p != primary and not is_emoji_font(p)]]
    assigned: list[tuple[str, str]] = []  # (char, path)
    prev_emoji = False
    for i, ch in enumerate(text):
        cp = ord(ch)
        if emoji and (prev_emoji and (_is_modifier(cp) or 0x1F1E6 <= cp <= 0x1F1FF)):
            assigned.append((ch, emoji))
            continue
        nxt = ord(text[i + 1]) if i + 1 < len(text) else 0
        wants_emoji = (
            (cp >= 0x1F000 and _is_emoji_char(cp))
            or (_is_emoji_char(cp) and nxt == 0xFE0F)
            or (nxt == 0xFE0F and (ord(text[i + 2]) if i + 2 < len(text) else 0) == 0x20E3)
        )
        if emoji and wants_emoji and cp in coverage(emoji):
            assigned.append((ch, emoji))
            prev_emoji = True
            continue
        prev_emoji = False
        path = primary
        if not ch.isspace():
            for candidate in chain:
                if cp in coverage(candidate):
                    path = candidate
                    break
        elif assigned:
            path = assigned[-1][1] if not is_emoji_font(assigned[-1][1]) else primary
        assigned.append((ch, path))
    runs: list[Run] = []
    buf: list[str] = []
    cur: str | None = None
    for ch, path in assigned:
        if path != cur and buf and cur is not None:
            runs.append(_make_run("".join(buf), cur))
            buf = []
        cur = path
        buf.append(ch)
    if buf and cur is not None:
        runs.append(_make_run("".join(buf), cur))
    if is_rtl_paragraph(text) and len(runs) > 1:
        runs.reverse()
    return tuple(runs)


def _make_run(text: str, path: str) -> Run:
    if is_emoji_font(path):
        return Run(text, path, "emoji")
    return Run(text, path, "shaped" if _needs_shaping(text) else "glyphs")


def run_font_size(run: Run, size: int) -> int:
    return EMOJI_STRIKE if run.kind == "emoji" else size


_widths: dict[tuple[str, str, int], float] = {}


def run_width(run: Run, size: int) -> float:
    """Advance width of a run at `size` pixels (cached; emoji scaled from their strike)."""
    key = (run.path, run.text, size if run.kind != "emoji" else -1)
    w = _widths.get(key)
    if w is None:
        if len(_widths) > 100_000:
            _widths.clear()
        font = get_font(run.path, run_font_size(run, size), complex_text=run.kind != "glyphs")
        w = font.getlength(run.text)
        _widths[key] = w
    if run.kind == "emoji":
        return w * size * EMOJI_SCALE / EMOJI_STRIKE
    return w


def text_width(text: str, primary: str, size: int) -> float:
    return sum(run_width(r, size) for r in split_runs(text, primary))
