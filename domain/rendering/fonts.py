"""Font families, the fallback chain, and a per-process cache of faces per size.

Fonts come from Debian packages installed at set-up (`FONT_PACKAGES`), never from
the repository. Loading a FreeType face costs far more than drawing with it, so
every (file, size) is opened once per process and kept in an LRU that shares the
CACHE_SIZE_MB budget with decoded templates.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont, features

from domain.templates.lru import ByteLRU

#: Debian packages providing every face below; the Makefile bootstrap installs them.
FONT_PACKAGES: tuple[str, ...] = (
    "fonts-dejavu-core",
    "fonts-dejavu-extra",
    "fonts-noto-core",
    "fonts-noto-extra",
    "fonts-noto-color-emoji",
    "fonts-bebas-neue",
    "fonts-comic-neue",
)

FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path.home() / ".local/share/fonts",
)

#: Family name -> candidate files, best first. "impact" is the Impact-like default.
FAMILIES: dict[str, tuple[str, ...]] = {
    "impact": (
        "NotoSansDisplay-CondensedBlack.ttf",
        "NotoSans-CondensedBlack.ttf",
        "DejaVuSansCondensed-Bold.ttf",
        "DejaVuSans-Bold.ttf",
    ),
    "bebas": ("BebasNeue-Bold.otf", "BebasNeue-Regular.otf", "DejaVuSansCondensed-Bold.ttf"),
    "sans": ("NotoSans-Bold.ttf", "DejaVuSans-Bold.ttf"),
    "sans-regular": ("NotoSans-Regular.ttf", "DejaVuSans.ttf"),
    "serif": ("NotoSerif-Bold.ttf", "DejaVuSerif-Bold.ttf"),
    "comic": ("ComicNeue-Bold.otf", "ComicNeue-Bold.ttf", "DejaVuSans-Bold.ttf"),
    "mono": ("DejaVuSansMono-Bold.ttf",),
}
DEFAULT_FAMILY = "impact"

#: Tried in order for characters the chosen face lacks (scripts, symbols, emoji).
FALLBACK_CHAIN: tuple[str, ...] = (
    "NotoSans-Bold.ttf",
    "NotoSansArabic-Bold.ttf",
    "NotoSansHebrew-Bold.ttf",
    "NotoSansDevanagari-Bold.ttf",
    "NotoSansThai-Bold.ttf",
    "DejaVuSans-Bold.ttf",
    "NotoSansSymbols-Bold.ttf",
    "NotoSansSymbols2-Regular.ttf",
    "DejaVuSans.ttf",
    "NotoColorEmoji.ttf",
)

#: Bitmap colour-emoji fonts only load at their strike size; we scale the glyphs.
EMOJI_FILES = frozenset({"NotoColorEmoji.ttf"})
EMOJI_STRIKE = 109

_FACE_COST = 96 * 1024  # rough per-(file, size) FreeType footprint for the LRU budget
FONT_CACHE_SHARE = 0.2


class FontUnavailable(LookupError):
    """No installed file for a family; install FONT_PACKAGES."""


@lru_cache(maxsize=1)
def _font_index() -> dict[str, str]:
    """Basename -> absolute path of every installed font file (first found wins)."""
    index: dict[str, str] = {}
    for root in FONT_DIRS:
        if not root.is_dir():
            continue
        for dirpath, _, files in os.walk(root):
            for name in files:
                if name.lower().endswith((".ttf", ".otf", ".ttc")):
                    index.setdefault(name, os.path.join(dirpath, name))
    return index


def find_file(name: str) -> str | None:
    return _font_index().get(name)


def families() -> list[str]:
    return sorted(FAMILIES)


@lru_cache(maxsize=64)
def family_path(family: str) -> str:
    """Best installed file for `family` (unknown names get the default family)."""
    for name in FAMILIES.get(family, FAMILIES[DEFAULT_FAMILY]):
        path = find_file(name)
        if path:
            return path
    if family != DEFAULT_FAMILY:
        return family_path(DEFAULT_FAMILY)
    raise FontUnavailable(f"no font installed for {family!r}; install {', '.join(FONT_PACKAGES)}")


@lru_cache(maxsize=1)
def fallback_paths() -> tuple[str, ...]:
    return tuple(p for p in (find_file(n) for n in FALLBACK_CHAIN) if p)


def is_emoji_font(path: str) -> bool:
    return os.path.basename(path) in EMOJI_FILES


@lru_cache(maxsize=1)
def _layout() -> ImageFont.Layout:
    return ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC


@lru_cache(maxsize=1)
def font_cache() -> ByteLRU[ImageFont.FreeTypeFont]:
    from domain.settings import get_settings

    return ByteLRU(int(get_settings().cache_size_mb * 1024 * 1024 * FONT_CACHE_SHARE))


# Hot path: a plain dict in front of the LRU avoids locking for the common sizes.
_hot: dict[tuple[str, int, bool], ImageFont.FreeTypeFont] = {}
_HOT_LIMIT = 512


def get_font(path: str, size: int, *, complex_text: bool = False) -> ImageFont.FreeTypeFont:
    """The face at `path` and pixel `size`, opened once per process.

    `complex_text` selects raqm shaping (bidi, ligatures, Arabic joining); plain text
    uses the basic layout, which measures several times faster.
    """
    if is_emoji_font(path):
        size = EMOJI_STRIKE
    key = (path, size, complex_text)
    font = _hot.get(key)
    if font is not None:
        return font

    def create() -> tuple[ImageFont.FreeTypeFont, int]:
        engine = _layout() if complex_text else ImageFont.Layout.BASIC
        return ImageFont.truetype(path, size, layout_engine=engine), _FACE_COST

    font = font_cache().get_or_create(key, create)
    if len(_hot) >= _HOT_LIMIT:
        _hot.clear()
    _hot[key] = font
    return font


def clear_caches() -> None:
    _hot.clear()
    font_cache().clear()


def warm(families_: Iterable[str] = (DEFAULT_FAMILY,)) -> None:
    """Open the default faces ahead of the first request (process-pool initializer)."""
    for fam in families_:
        get_font(family_path(fam), 48)
