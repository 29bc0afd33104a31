"""Image filters applied to every frame: blur, sharpen, edges, grayscale, sepia, invert,
contrast, pixelate, deep fry, crop, rotate, flip.

Filters are given as short strings so they travel in events unchanged:
``"blur"``, ``"blur:6"``, ``"sharpen"``, ``"edges"``, ``"grayscale"``, ``"deepfry"``,
``"crop:x,y,w,h"`` (pixels of the rendered meme), ``"rotate:90"`` (degrees,
counter-clockwise), ``"flip:horizontal"`` / ``"flip:vertical"``. The colour filters take a
strength in [0, 1] (``"sepia:0.6"``, default 1), as the web editor's slider does, and
``"pixelate:12"`` a block size in pixels. As `filters` they apply to the finished meme, text
included; as a request's `transform`, to the template before the text (the editor's order).

Every constant lives in `filter_params.json`, which the web editor's filter worker reads too
(served at `/api/render/filters`), so the canvas and the renderer cannot drift apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from domain.rendering.errors import ImageTooLarge, InvalidOptions

MAX_FILTERS = 8
#: Longest filter string: the longest legal one (a crop of four numbers) is far shorter.
MAX_FILTER_LENGTH = 64
#: Pixels all frames of one render may reach through filters (about 120 MB as RGB).
MAX_FILTERED_PIXELS = 40_000_000
#: Filters whose one argument is a strength in [0, 1].
_STRENGTH = {"grayscale", "sepia", "invert", "contrast"}
#: The filters' constants, shared with the editor's worker (api/static/js/filters-worker.js).
PARAMS_FILE = Path(__file__).with_name("filter_params.json")
PARAMS: dict[str, Any] = json.loads(PARAMS_FILE.read_text())


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    args: tuple[float, ...] = ()

    def __call__(self, im: Image.Image) -> Image.Image:
        return _APPLY[self.name](im, self.args)


def parse_filters(specs: Sequence[str]) -> list[Filter]:
    """Validate filter strings up front so a bad one fails before any pixel work."""
    if len(specs) > MAX_FILTERS:
        raise InvalidOptions(f"at most {MAX_FILTERS} filters per render")
    return [parse_filter(s) for s in specs]


def parse_filter(spec: str) -> Filter:
    if not isinstance(spec, str):
        raise InvalidOptions(f"filter must be a string, got {type(spec).__name__}")
    if len(spec) > MAX_FILTER_LENGTH:
        raise InvalidOptions(f"a filter is at most {MAX_FILTER_LENGTH} characters")
    name, _, raw = spec.strip().lower().partition(":")
    name = {
        "greyscale": "grayscale",
        "gray": "grayscale",
        "edge": "edges",
        "deep-fry": "deepfry",
        "deep_fry": "deepfry",
        "mirror": "flip",
    }.get(name, name)
    if name not in _APPLY:
        raise InvalidOptions(f"unknown filter {name!r}; use one of {', '.join(sorted(_APPLY))}")
    if name == "flip":
        direction = raw or "horizontal"
        if direction not in ("horizontal", "vertical", "h", "v"):
            raise InvalidOptions("flip takes 'horizontal' or 'vertical'")
        return Filter(name, (0.0 if direction.startswith("h") else 1.0,))
    try:
        args = tuple(float(a) for a in raw.split(",")) if raw else ()
    except ValueError as exc:
        raise InvalidOptions(f"bad arguments for filter {name!r}: {raw!r}") from exc
    if not all(math.isfinite(a) for a in args):  # nan, inf: no angle, size or strength
        raise InvalidOptions(f"filter {name!r} takes finite numbers, got {raw!r}")
    _check(name, args)
    return Filter(name, args)


def _check(name: str, args: tuple[float, ...]) -> None:
    if name == "blur" and args and not 0 < args[0] <= 50:
        raise InvalidOptions("blur radius must be in (0, 50]")
    if name == "crop" and (len(args) != 4 or args[2] < 1 or args[3] < 1 or min(args) < 0):
        raise InvalidOptions("crop takes x,y,width,height with positive width and height")
    if name in _STRENGTH and args and (len(args) != 1 or not 0 <= args[0] <= 1):
        raise InvalidOptions(f"{name} takes one strength in [0, 1], e.g. {name}:0.5")
    if name == "pixelate" and args and (len(args) != 1 or not 1 <= args[0] <= 256):
        raise InvalidOptions("pixelate takes a block size of 1..256 pixels")
    if name == "rotate" and len(args) != 1:
        raise InvalidOptions("rotate takes an angle in degrees, e.g. rotate:90")
    if name in ("sharpen", "edges") and args:
        raise InvalidOptions(f"{name} takes no arguments")
    if name == "deepfry" and args and not 0 < args[0] <= 3:
        raise InvalidOptions("deepfry strength must be in (0, 3]")


def apply_filters(
    im: Image.Image, filters: Sequence[Filter], max_pixels: int = MAX_FILTERED_PIXELS
) -> Image.Image:
    """Applies `filters` in order; rotations grow the image, so a chain that would pass
    `max_pixels` (the caller's share of the budget per frame) is refused at that step."""
    for f in filters:
        im = f(im)
        if im.width * im.height > max_pixels:
            raise ImageTooLarge(
                f"{f.name} makes the image {im.width}x{im.height}; "
                f"at most {max_pixels:,} pixels per frame"
            )
    return im


def _blur(im: Image.Image, args: tuple[float, ...]) -> Image.Image:
    return im.filter(ImageFilter.GaussianBlur(args[0] if args else PARAMS["blur"]["radius"]))


def _sharpen(im: Image.Image, _: tuple[float, ...]) -> Image.Image:
    return im.filter(ImageFilter.UnsharpMask(**PARAMS["sharpen"]))


def _edges(im: Image.Image, _: tuple[float, ...]) -> Image.Image:
    return im.filter(ImageFilter.FIND_EDGES)


def _strength(args: tuple[float, ...]) -> float:
    return args[0] if args else 1.0


def _blend(im: Image.Image, filtered: Image.Image, args: tuple[float, ...]) -> Image.Image:
    strength = _strength(args)
    return filtered if strength >= 1 else Image.blend(im, filtered, strength)


def _grayscale(im: Image.Image, args: tuple[float, ...]) -> Image.Image:
    return _blend(im, im.convert("L").convert("RGB"), args)


#: The usual sepia matrix (the editor's Web Worker uses the same coefficients).
_SEPIA = tuple(PARAMS["sepia"])


def _sepia(im: Image.Image, args: tuple[float, ...]) -> Image.Image:
    return _blend(im, im.convert("RGB", _SEPIA), args)


def _invert(im: Image.Image, args: tuple[float, ...]) -> Image.Image:
    return _blend(im, ImageOps.invert(im.convert("RGB")), args)


def _contrast(im: Image.Image, args: tuple[float, ...]) -> Image.Image:
    return ImageEnhance.Contrast(im).enhance(1 + PARAMS["contrast"]["gain"] * _strength(args))


def _pixelate(im: Image.Image, args: tuple[float, ...]) -> Image.Image:
    block = max(1, int(args[0])) if args else PARAMS["pixelate"]["block"]
    small = im.resize((max(1, im.width // block), max(1, im.height // block)), Image.Resampling.BOX)
    return small.resize(im.size, Image.Resampling.NEAREST)


def _deepfry(im: Image.Image, args: tuple[float, ...]) -> Image.Image:
    """Oversaturate, crank contrast, sharpen hard and posterise: the 'deep-fried' look."""
    k = args[0] if args else 1.0
    p = PARAMS["deepfry"]
    im = ImageEnhance.Color(im).enhance(1 + p["color_gain"] * k)
    im = ImageEnhance.Contrast(im).enhance(1 + p["contrast_gain"] * k)
    sharpen = ImageFilter.UnsharpMask(p["unsharp_radius"], int(p["unsharp_percent"] * k), 0)
    im = im.filter(sharpen)
    r, g, b = im.split()
    r = r.point(lambda v: min(255, int(v * (1 + p["red_gain"] * k))))
    im = Image.merge("RGB", (r, g, b))
    bits = p["posterize_bits"] - int(p["posterize_bits_per_strength"] * k)
    return ImageOps.posterize(im, max(2, bits))


def _crop(im: Image.Image, args: tuple[float, ...]) -> Image.Image:
    x, y, w, h = (int(a) for a in args)
    box = (max(0, x), max(0, y), min(im.width, x + w), min(im.height, y + h))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise InvalidOptions(f"crop {x},{y},{w},{h} is outside the {im.width}x{im.height} image")
    return im.crop(box)


def _rotate(im: Image.Image, args: tuple[float, ...]) -> Image.Image:
    angle = args[0] % 360
    exact = {
        90.0: Image.Transpose.ROTATE_90,
        180.0: Image.Transpose.ROTATE_180,
        270.0: Image.Transpose.ROTATE_270,
    }
    if angle == 0:
        return im
    if angle in exact:
        return im.transpose(exact[angle])
    return im.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(0, 0, 0))


def _flip(im: Image.Image, args: tuple[float, ...]) -> Image.Image:
    vertical = bool(args and args[0])
    return im.transpose(
        Image.Transpose.FLIP_TOP_BOTTOM if vertical else Image.Transpose.FLIP_LEFT_RIGHT
    )


_APPLY: dict[str, Callable[[Image.Image, tuple[float, ...]], Image.Image]] = {
    "blur": _blur,
    "sharpen": _sharpen,
    "edges": _edges,
    "grayscale": _grayscale,
    "sepia": _sepia,
    "invert": _invert,
    "contrast": _contrast,
    "pixelate": _pixelate,
    "deepfry": _deepfry,
    "crop": _crop,
    "rotate": _rotate,
    "flip": _flip,
}
