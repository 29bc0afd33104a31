"""domain/rendering/validation.py: what it accepts renders, what it refuses it names.

The properties run the real engine: hypothesis generates requests and upload boxes from a
grammar full of hostile values (NaN, infinities, booleans for numbers, huge sizes, bad
colours, control characters, crops and boxes outside the image); whatever the validator
the API uses accepts must render without a `RenderError`.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from api.models import GenerateRequest
from domain.rendering import RenderOptions, render_meme, render_upload
from domain.rendering.errors import (
    InvalidBox,
    InvalidOptions,
    InvalidText,
    RenderError,
    TextTooLong,
    TooManyTexts,
)
from domain.rendering.text import ABSOLUTE_MAX_TEXT
from domain.rendering.validation import (
    check_boxes,
    check_generation,
    check_label,
    check_layout,
    check_request,
    check_texts,
)
from domain.templates import TemplateCatalog, TextBox

PROPERTY = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
NUMBERS = st.one_of(
    st.integers(-50, 2000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.5, -0.0, 1e300, 90, 45, 1]),
)
NAMES = ["blur", "sharpen", "edges", "grayscale", "sepia", "invert", "contrast", "pixelate"]
NAMES += ["deepfry", "crop", "rotate", "flip", "nosuch"]


@st.composite
def filter_specs(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(NAMES))
    args = draw(st.lists(NUMBERS, max_size=4))
    if name == "flip":
        return f"flip:{draw(st.sampled_from(['horizontal', 'vertical', 'diagonal']))}"
    return name + (":" + ",".join(str(a) for a in args) if args else "")


TEXT = st.text(max_size=40) | st.sampled_from(["a\x00b", "\x1b[31m", "ok\nline", "\u202e"])
#: Legal specs, drawn half of the time so that many requests get through.
GOOD_SPECS = ["blur", "rotate:90", "rotate:33.5", "crop:0,0,300,200", "crop:10,10,1,1"]
GOOD_SPECS += ["sepia:0.5", "flip", "pixelate:12", "deepfry", "rotate:-0", "grayscale:1"]
SPECS = st.sampled_from(GOOD_SPECS) | filter_specs()
#: One printable text, then anything.
TEXTS = st.tuples(st.text("abc XYZ!?", min_size=1, max_size=30), st.lists(TEXT, max_size=2)).map(
    lambda t: [t[0], *t[1]]
)


@st.composite
def generate_payloads(draw: st.DrawFn) -> dict[str, Any]:
    template_id = draw(st.sampled_from(sorted(TemplateCatalog.default().ids())))
    payload: dict[str, Any] = {
        "template_id": template_id,
        "texts": draw(TEXTS),
        "format": draw(st.sampled_from(["jpeg", "png"])),
        "transform": draw(st.lists(SPECS, max_size=2)),
        "filters": draw(st.lists(SPECS, max_size=2)),
    }
    if draw(st.booleans()):
        count = len(TemplateCatalog.default().get(template_id).boxes)
        count = draw(st.sampled_from([count, count, count, count + 1]))
        side = st.integers(-5, 900)
        box = st.fixed_dictionaries({"x": side, "y": side, "width": side, "height": side})
        payload["boxes"] = draw(st.lists(box, min_size=count, max_size=count))
    return payload


def _accepted(payload: dict[str, Any]) -> GenerateRequest | None:
    """What the generate route accepts: the model, then the validator's checks (the route's
    `check_request`, api/routes/memes/request_checks.py, calls `check_generation`)."""
    try:
        request = GenerateRequest.model_validate(payload)
    except ValidationError:
        return None
    template = TemplateCatalog.default().get(request.template_id)
    if len(request.texts) > len(template.boxes):
        return None
    placements = None if request.boxes is None else [
        (b.x, b.y, b.width, b.height) for b in request.boxes
    ]  # fmt: skip
    try:
        check_request(request.texts, request.transform, request.filters)
        check_generation(
            template,
            request.texts,
            max_text_length=ABSOLUTE_MAX_TEXT,
            transform=request.transform,
            filters=request.filters,
            placements=placements,
        )
    except RenderError:
        return None
    return request


def test_accepted_generate_requests_render() -> None:
    accepted: list[str] = []

    @PROPERTY
    @given(payload=generate_payloads())
    def renders(payload: dict[str, Any]) -> None:
        request = _accepted(payload)
        if request is None:
            return
        boxes = None if request.boxes is None else tuple(
            (b.x, b.y, b.width, b.height) for b in request.boxes
        )  # fmt: skip
        options = RenderOptions(
            format=request.format,
            sizes=("full",),
            transform=tuple(request.transform),
            filters=tuple(request.filters),
            boxes=boxes,
        )
        render_meme(request.template_id, request.texts, options)  # raises on a failure
        accepted.append(request.template_id)

    renders()
    print(f"\ngenerate property: {len(accepted)} accepted requests rendered")
    assert len(accepted) >= 5, "the grammar must produce accepted requests too"


BOX_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "x": st.one_of(st.integers(-5, 70), st.booleans(), st.floats(), st.just("1")),
    "y": st.integers(-5, 70),
    "width": st.one_of(st.integers(-1, 70), st.just(10**9)),
    "height": st.integers(-1, 70),
    "rotation": st.one_of(NUMBERS, st.booleans()),
    "color": st.sampled_from(["red", "#fff", "#12", "notacolor", "rgb(1,2,3)", "\x00", ""]),
    "max_font_size": st.sampled_from([1, 8, 96, 400, 401, 100_000]),
    "min_font_size": st.sampled_from([0, 4, 8, 12]),
    "max_lines": st.sampled_from([0, 1, 4, 20, 21]),
    "uppercase": st.sampled_from([True, False, 1, "yes"]),
    "name": st.sampled_from(["top", "a\x00b", "a\r\nb", "x" * 100]),
    "font": st.sampled_from(["impact", "nosuchfont", "", "a\x00"]),
    "gradient": st.sampled_from([None, ["red", "blue"], ["red"], ["red", "nope"]]),
}


@st.composite
def upload_boxes(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 3))
    boxes = []
    for _ in range(count):
        chosen = draw(st.sets(st.sampled_from(sorted(BOX_VALUES)), max_size=6))
        box: dict[str, Any] = {"x": 2, "y": 2, "width": 40, "height": 20}
        box.update({k: draw(BOX_VALUES[k]) for k in chosen})
        boxes.append(box)
    return boxes


def _png(width: int = 64, height: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def test_accepted_upload_boxes_render() -> None:
    image = _png()
    accepted: list[int] = []

    @PROPERTY
    @given(boxes=upload_boxes(), texts=st.lists(TEXT, max_size=3))
    def renders(boxes: list[dict[str, Any]], texts: list[str]) -> None:
        try:
            parsed = check_boxes(boxes, 64, 64)
            check_texts(texts, parsed)
        except RenderError:
            return
        options = RenderOptions(format="png", sizes=("full",))
        render_upload(image, boxes, options, texts=texts, content_type="image/png")
        accepted.append(len(boxes))

    renders()
    print(f"\nupload property: {len(accepted)} accepted box lists rendered")
    assert len(accepted) >= 5, "the grammar must produce accepted boxes too"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"rotation": math.nan}, "rotation"),
        ({"rotation": math.inf}, "rotation"),
        ({"rotation": True}, "rotation"),
        ({"x": True}, "x must be an integer"),
        ({"color": "notacolor"}, "not a colour"),
        ({"max_font_size": 100_000}, "font sizes"),
        ({"name": "a\r\nb"}, r"U\+000D"),
        ({"uppercase": 1}, "uppercase"),
        ({"surprise": 1}, "unknown keys"),
    ],
)
def test_refused_boxes_name_the_reason(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidBox, match=reason):
        check_boxes([{"x": 0, "y": 0, "width": 10, "height": 10, **change}], 64, 64)


def test_boxes_per_template_are_capped() -> None:
    box = {"x": 0, "y": 0, "width": 10, "height": 10}
    assert len(check_boxes([box] * 20, 64, 64)) == 20
    with pytest.raises(InvalidBox, match="MAX_TEMPLATE_BOXES"):
        check_boxes([box] * 21, 64, 64)
    with pytest.raises(InvalidBox, match="at most 3"):
        check_boxes([box] * 4, 64, 64, max_boxes=3)


@pytest.mark.parametrize("spec", ["rotate:nan", "rotate:inf", "crop:0,0,nan,5", "blur:-inf"])
def test_non_finite_filter_arguments_are_refused(spec: str) -> None:
    with pytest.raises(InvalidOptions, match="finite"):
        check_request(["x"], [spec], [])


def test_layout_dry_run_refuses_what_the_engine_would() -> None:
    layout = {"frames": 1, "boxes": 1, "transform": [], "filters": [], "placements": None}
    with pytest.raises(InvalidOptions, match="outside"):
        check_layout(600, 600, **{**layout, "filters": ["crop:5000,5000,10,10"]})
    with pytest.raises(InvalidBox, match="outside"):
        check_layout(600, 600, **{**layout, "transform": ["crop:0,0,100,100"],
                                  "placements": [(150, 0, 10, 10)]})  # fmt: skip
    check_layout(600, 600, **{**layout, "transform": ["rotate:90"], "placements": [(0, 0, 9, 9)]})


def test_generation_refusals_name_their_kind() -> None:
    """Each refusal of `check_generation` is a kind the API answers with its own problem type."""
    drake = TemplateCatalog.default().get("drake")
    none: dict[str, Any] = {"transform": [], "filters": [], "placements": None}
    base: dict[str, Any] = {"max_text_length": 10, **none}
    check_generation(drake, ["a", "b"], **base)
    with pytest.raises(TooManyTexts):
        check_generation(drake, ["a"] * (len(drake.boxes) + 1), **base)
    with pytest.raises(TextTooLong):
        check_generation(drake, ["x" * 11], **base)
    with pytest.raises(InvalidOptions, match="transform"):
        check_generation(drake, ["a"], **{**base, "transform": ["sepia:7"]})
    with pytest.raises(InvalidOptions, match="filters"):
        check_generation(drake, ["a"], **{**base, "filters": ["explode"]})
    inside = [(0, 0, 10, 10)] * len(drake.boxes)
    check_generation(drake, ["a"], **{**base, "placements": inside})
    with pytest.raises(InvalidBox, match="boxes"):
        check_generation(drake, ["a"], **{**base, "placements": inside[:1]})
    outside = [(drake.width - 5, 0, 10, 10), *inside[1:]]
    with pytest.raises(InvalidBox, match="outside"):
        check_generation(drake, ["a"], **{**base, "placements": outside})


@pytest.mark.parametrize("label", ["a\x00b", "a\rb", "a\nb", "\x1b", "\ud800", "\ue000"])
def test_labels_refuse_control_characters(label: str) -> None:
    with pytest.raises(InvalidText):
        check_label(label, "name", 80)
    assert check_label("Dr\u00e4ke \u200d", "name", 80)


def test_catalogue_boxes_pass_the_validator() -> None:
    for template in TemplateCatalog.default().all():
        assert check_boxes(template.boxes, template.width, template.height)
        assert all(isinstance(b, TextBox) for b in template.boxes)
