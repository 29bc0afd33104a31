"""What renders: the one validator of captions, text boxes, filters and template labels.

The upload route, generate and batch (api/) and the render worker (streams/render.py) all ask
this module, so an input the API accepts is one the engine renders, and the worker refuses the
rest with the same reason. Limits (the numbers are in the README's configuration table):

- text: `domain.rendering.text.clean_text` (no control characters but newline, tab and CR; no
  private-use, surrogate or unlisted format characters; at most MAX_TEXT_LENGTH, hard cap 2,000
  characters; at most 20 line breaks);
- boxes: at most MAX_TEMPLATE_BOXES per template (default and ceiling 20: the API takes at most
  20 texts and 20 box placements per request, so a template with more boxes could never be
  filled); integer geometry inside the image (booleans are not numbers); font sizes
  4 <= min <= max <= 400; 1..20 lines; a finite rotation in [-360, 360] degrees; colours that
  Pillow parses (`#rgb`, `#rrggbb`, `rgb()`, `hsl()`, names), at most 64 characters;
- filters (`transform`, `filters`): `domain.rendering.filters.parse_filters`, finite arguments;
- labels (template names, descriptions, tags, box names, any text stored in PostgreSQL): no
  control characters at all (CR and LF included), no NUL, no surrogates or private use.

Every refusal is a `RenderError` subclass (InvalidText, InvalidBox, InvalidOptions) whose
message names the field; the API answers it 422.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

from PIL import Image, ImageColor

from domain.rendering.errors import (
    InvalidBox,
    InvalidOptions,
    InvalidText,
    TextTooLong,
    TooManyTexts,
)
from domain.rendering.filters import MAX_FILTERED_PIXELS, Filter, apply_filters, parse_filters
from domain.rendering.options import SIZE_LIMITS
from domain.rendering.sizing import shrink_full
from domain.rendering.text import clean_text
from domain.templates.model import Template, TextBox

#: Ceiling of MAX_TEMPLATE_BOXES: what one request can fill (texts and placements).
ABSOLUTE_MAX_BOXES = 20
MIN_FONT_SIZE = 4
MAX_FONT_SIZE = 400
MAX_LINES = 20
MAX_ROTATION = 360.0
MAX_COLOUR_LENGTH = 64
MAX_BOX_NAME = 64
MAX_FONT_NAME = 64
_BOX_FIELDS = {f.name for f in fields(TextBox)}
_INT_FIELDS = ("x", "y", "width", "height", "max_font_size", "min_font_size", "max_lines")
_COLOUR_FIELDS = ("color", "outline_color", "shadow_color")


def max_template_boxes() -> int:
    """MAX_TEMPLATE_BOXES of this process (domain/settings.py)."""
    from domain.settings import get_settings

    return min(get_settings().max_template_boxes, ABSOLUTE_MAX_BOXES)


def label_problem(value: str) -> str | None:
    """Why `value` cannot be a stored label (a name, a tag, a search term), or None.

    NUL cannot be stored by PostgreSQL at all; other control characters (CR/LF included) break
    logs, headers and one-line displays; surrogates cannot be encoded; private-use characters
    render as nothing. Format characters (joiners, bidi marks) stay: names in any script use them.
    """
    for char in value:
        category = unicodedata.category(char)
        if category in ("Cc", "Cs", "Co"):
            return f"control or unsupported character U+{ord(char):04X} is not allowed"
    return None


def check_label(value: object, field: str, max_length: int) -> str:
    """A template name, description, tag or box name; raises InvalidText."""
    if not isinstance(value, str):
        raise InvalidText(f"{field} must be a string, got {type(value).__name__}")
    if len(value) > max_length:
        raise InvalidText(f"{field} is {len(value)} characters long; the limit is {max_length}")
    problem = label_problem(value)
    if problem:
        raise InvalidText(f"{field}: {problem}")
    return value


def check_texts(texts: Sequence[object], boxes: Sequence[TextBox]) -> list[str]:
    """The captions as drawn (cleaned), one per box at most; raises InvalidText."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise InvalidText("texts must be a list of strings, not one string")
    if len(texts) > len(boxes):
        raise InvalidText(f"{len(texts)} texts given but the image has {len(boxes)} text boxes")
    return [
        clean_text(raw, i, uppercase=box.uppercase)
        for i, (box, raw) in enumerate(zip(boxes, texts, strict=False))
    ]


def check_filters(specs: Sequence[object], field: str = "filters") -> list[Filter]:
    """Parsed filters; raises InvalidOptions naming `field` (transform or filters)."""
    if isinstance(specs, (str, bytes)) or not isinstance(specs, Sequence):
        raise InvalidOptions(f"{field} must be a list of filter strings")
    try:
        return parse_filters(specs)  # type: ignore[arg-type]
    except InvalidOptions as exc:
        raise InvalidOptions(f"{field}: {exc}") from exc


def _colour(index: int, name: str, value: object) -> None:
    if not isinstance(value, str) or len(value) > MAX_COLOUR_LENGTH:
        raise InvalidBox(f"box {index + 1}: {name} must be a colour string")
    try:
        ImageColor.getrgb(value)
    except ValueError as exc:
        raise InvalidBox(f"box {index + 1}: {name} {value!r} is not a colour") from exc


def check_box(index: int, box: TextBox, width: int, height: int) -> None:
    """Raises InvalidBox unless `box` (the `index`-th) renders on a width x height image."""
    where = f"box {index + 1}"
    for name in _INT_FIELDS:
        value = getattr(box, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidBox(f"{where}: {name} must be an integer")
    if box.width < 1 or box.height < 1:
        raise InvalidBox(f"{where} has zero size ({box.width}x{box.height})")
    if box.x < 0 or box.y < 0 or box.x + box.width > width or box.y + box.height > height:
        raise InvalidBox(f"{where} lies outside the {width}x{height} image")
    if box.align not in ("left", "center", "right"):
        raise InvalidBox(f"{where}: align must be left, center or right")
    if box.valign not in ("top", "middle", "bottom"):
        raise InvalidBox(f"{where}: valign must be top, middle or bottom")
    if not 1 <= box.max_lines <= MAX_LINES:
        raise InvalidBox(f"{where}: max_lines must be 1..{MAX_LINES}")
    if not MIN_FONT_SIZE <= box.min_font_size <= box.max_font_size <= MAX_FONT_SIZE:
        raise InvalidBox(
            f"{where}: font sizes must satisfy {MIN_FONT_SIZE} <= min <= max <= {MAX_FONT_SIZE}"
        )
    rotation = box.rotation
    if (
        not isinstance(rotation, (int, float))
        or isinstance(rotation, bool)
        or not math.isfinite(rotation)
        or abs(rotation) > MAX_ROTATION
    ):
        raise InvalidBox(f"{where}: rotation must be a number of degrees in [-360, 360]")
    if not isinstance(box.uppercase, bool):
        raise InvalidBox(f"{where}: uppercase must be true or false")
    if not isinstance(box.font, str) or not box.font or len(box.font) > MAX_FONT_NAME:
        raise InvalidBox(f"{where}: font must be a family name of 1..{MAX_FONT_NAME} characters")
    try:
        check_label(box.name, f"{where}: name", MAX_BOX_NAME)
        check_label(box.font, f"{where}: font", MAX_FONT_NAME)
    except InvalidText as exc:
        raise InvalidBox(str(exc)) from exc
    _colour(index, "color", box.color)
    for name in ("outline_color", "shadow_color"):
        value = getattr(box, name)
        if value is not None:
            _colour(index, name, value)
    if box.gradient is not None:
        if not isinstance(box.gradient, tuple) or len(box.gradient) != 2:
            raise InvalidBox(f"{where}: gradient must be two colours [top, bottom]")
        for value in box.gradient:
            _colour(index, "gradient", value)


def box_from_mapping(index: int, raw: object, width: int, height: int) -> TextBox:
    """A TextBox from a config or an upload's JSON (TextBox fields), checked by `check_box`."""
    if isinstance(raw, TextBox):
        check_box(index, raw, width, height)
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidBox(f"box {index + 1} must be an object")
    unknown = set(raw) - _BOX_FIELDS
    if unknown:
        shown = sorted(str(k)[:32] for k in unknown)[:5]
        raise InvalidBox(f"box {index + 1}: unknown keys {shown}")
    values: dict[str, Any] = dict(raw)
    values.setdefault("name", f"text{index + 1}")
    gradient = values.get("gradient")
    if gradient is not None:
        if isinstance(gradient, (str, bytes)) or not isinstance(gradient, Sequence):
            raise InvalidBox(f"box {index + 1}: gradient must be two colours [top, bottom]")
        values["gradient"] = tuple(gradient)
    try:
        box = TextBox(**values)
    except TypeError as exc:
        raise InvalidBox(f"box {index + 1}: {exc}") from exc
    check_box(index, box, width, height)
    return box


def check_boxes(
    boxes: object, width: int, height: int, *, max_boxes: int | None = None
) -> list[TextBox]:
    """A template's boxes: a non-empty list of at most MAX_TEMPLATE_BOXES valid boxes."""
    if isinstance(boxes, (str, bytes, Mapping)) or not isinstance(boxes, Sequence):
        raise InvalidBox("boxes must be a list")
    if not boxes:
        raise InvalidBox("at least one text box is required")
    cap = max_template_boxes() if max_boxes is None else max_boxes
    if len(boxes) > cap:
        raise InvalidBox(f"{len(boxes)} text boxes; at most {cap} (MAX_TEMPLATE_BOXES)")
    return [box_from_mapping(i, raw, width, height) for i, raw in enumerate(boxes)]


def check_request(
    texts: Sequence[object], transform: Sequence[object], filters: Sequence[object]
) -> None:
    """What a generation request can be judged on without its template: each text, and the
    `transform` and `filters` specs. The API refuses these with a 422; the render worker
    (streams/render.py) with a failed meme and a DLQ entry, for events that skipped the API."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise InvalidText("texts must be a list of strings, not one string")
    if len(texts) > ABSOLUTE_MAX_BOXES:
        raise InvalidText(f"{len(texts)} texts; a template has at most {ABSOLUTE_MAX_BOXES} boxes")
    for i, text in enumerate(texts):
        clean_text(text, i)
    check_filters(transform, "transform")
    check_filters(filters, "filters")


def check_generation(
    template: Template,
    texts: Sequence[str],
    *,
    max_text_length: int,
    transform: Sequence[object],
    filters: Sequence[object],
    placements: Sequence[tuple[int, int, int, int]] | None,
) -> None:
    """A generation request against its template, as generate and batch judge it before the
    request reaches Kafka: at most one text per box, each within `max_text_length` (the
    characters themselves are `check_request`'s), valid `transform` and `filters`, one
    placement per box inside the template when nothing transforms it, then the layout's dry
    run (`check_layout`, pixel work only when there is a transform, filters or placements)."""
    boxes = len(template.boxes)
    if len(texts) > boxes:
        raise TooManyTexts(f"{template.id!r} has {boxes} boxes, got {len(texts)}")
    if any(len(t) > max_text_length for t in texts):
        raise TextTooLong(f"each text is at most {max_text_length} chars")
    check_filters(transform, "transform")
    check_filters(filters, "filters")
    if placements is not None:
        if len(placements) != boxes:
            raise InvalidBox(f"{template.id!r} has {boxes} boxes, got {len(placements)}")
        if not transform:  # the image is the template's own size
            for i, (x, y, width, height) in enumerate(placements):
                if x + width > template.width or y + height > template.height:
                    raise InvalidBox(
                        f"box {i + 1} is outside the {template.width}x{template.height} template"
                    )
    check_layout(
        template.width,
        template.height,
        frames=template.frame_count,
        boxes=boxes,
        transform=transform,
        filters=filters,
        placements=placements,
    )


def place_boxes(
    boxes: Sequence[TextBox],
    placements: Sequence[tuple[int, int, int, int]],
    width: int,
    height: int,
) -> list[TextBox]:
    """The template's boxes moved and resized where the client put them (the editor).

    A box that reaches past the image is cut at its edge (a crop rounded to whole pixels can
    leave the editor's box a pixel over); one that starts outside it is refused.
    """
    if len(placements) != len(boxes):
        raise InvalidBox(f"{len(placements)} box placements given; the template has {len(boxes)}")
    placed = []
    for i, (box, (x, y, w, h)) in enumerate(zip(boxes, placements, strict=True)):
        if 0 <= x < width and 0 <= y < height:
            w, h = min(w, width - x), min(h, height - y)
        moved = replace(box, x=x, y=y, width=w, height=h)
        check_box(i, moved, width, height)
        placed.append(moved)
    return placed


def check_layout(
    width: int,
    height: int,
    *,
    frames: int,
    boxes: int,
    transform: Sequence[object],
    filters: Sequence[object],
    placements: Sequence[tuple[int, int, int, int]] | None,
) -> None:
    """A dry run of the engine's layout on a blank frame of the template's size: `transform`
    (crops must hit the image, rotations stay within the pixel budget), the box placements on
    the transformed image, then `filters` on the finished size. What the API accepts here the
    engine lays out the same way, so a crop or a box outside the image is a 422, not a failed
    meme. Only runs when the request has a transform, filters or placements, and only the
    crops and rotations (the rest cannot change the size); the budget is MAX_FILTERED_PIXELS
    shared by all `frames`, as in the engine."""
    parsed_transform = check_filters(transform, "transform")
    parsed_filters = check_filters(filters, "filters")
    if not parsed_transform and not parsed_filters and placements is None:
        return
    per_frame = MAX_FILTERED_PIXELS // max(1, frames)
    frame = Image.new("RGB", (width, height))
    if parsed_transform:
        frame = apply_filters(frame, _geometric(parsed_transform), per_frame)
    if placements is not None:
        default = TextBox(name="box", x=0, y=0, width=1, height=1)
        place_boxes([default] * boxes, placements, frame.width, frame.height)
    if parsed_filters:
        shrunk = shrink_full([frame], SIZE_LIMITS["full"])[0]
        apply_filters(shrunk, _geometric(parsed_filters), per_frame)


#: The filters that change the image's size or can miss it; the rest keep both and cannot
#: fail once parsed, so the dry run skips their pixel work (a blur of a blank frame).
_GEOMETRIC = frozenset({"crop", "rotate"})


def _geometric(filters: Sequence[Filter]) -> list[Filter]:
    return [f for f in filters if f.name in _GEOMETRIC]
