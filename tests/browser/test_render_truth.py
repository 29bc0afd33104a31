"""One rendering truth (issue #18, point 1): the editor's canvas, in Debian's Chromium, shows
what the server renders. For every filter, every transform and every template, the canvas's
pixels (toDataURL) are compared with `domain.rendering.render_meme` of the same draft (the
request the editor would send): mean absolute difference <= 4/255 per channel outside the
text boxes, and the canvas's line breaks (text-layout.js) equal the server's fitter's.

The API runs against the shared stack (it serves the page, previews, fonts and filter
constants); the server side of each comparison is rendered in this process.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.async_api import Page, async_playwright

from domain.rendering import RenderOptions, render_meme
from domain.rendering.typesetting import typeset
from domain.rendering.validation import check_texts, place_boxes
from domain.settings import Settings
from domain.templates import TemplateCatalog
from memestream.testing.processes import memestream_api
from tests.browser.test_editor_and_feed import ARGS, CHROMIUM

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
LIMIT = 4.0  # mean absolute difference per channel, in 0..255
TEXTS = [
    "When the canvas finally matches the server",
    "Every pixel, every line break",
    "Galaxy brain: one truth",
    "Shipping it",
]
FILTERS = ["none", "grayscale", "sepia", "invert", "contrast", "deepfry", "pixelate"]
TRANSFORMS: dict[str, str] = {
    "rotate:90": "st.rotation = 90;",
    "rotate:180": "st.rotation = 180;",
    "rotate:270": "st.rotation = 270;",
    # The editor's crop: boxes move with the picture and are cut at its edges.
    "crop": (
        "st.crop = {x: 40, y: 120, w: 420, h: 380};"
        "for (const b of st.boxes) { b.x -= 40; b.y -= 120; }"
    ),
    "rotate+crop+deepfry": (
        "st.rotation = 270; st.filter = 'deepfry';"
        "st.crop = {x: 0, y: 100, w: 500, h: 500};"
        "for (const b of st.boxes) { b.y -= 100; }"
    ),
}


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[str]:
    with memestream_api(stack_settings, "api-browser-render") as url:
        yield url


@pytest.fixture
async def page(api: str) -> AsyncIterator[Page]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await page.goto(f"{api}/")
        await page.locator("body[data-ready='true']").wait_for(state="attached", timeout=60_000)
        yield page
        await browser.close()


async def canvas_draft(page: Page, template_id: str, edit: str) -> dict[str, Any]:
    """Opens `template_id`, captions every box, applies `edit` (JS on the draft `st`) and
    returns the canvas's PNG, the request the editor would send and its layouts."""
    script = f"""async () => {{
        const ms = window.memestream;
        await ms.open({template_id!r});
        const texts = {TEXTS!r};
        await ms.edit((st) => {{
            st.boxes.forEach((b, i) => {{ b.text = texts[i % texts.length]; }});
            st.amount = 0.6;
            {edit}
        }});
        ms.showFrame(0); // an animated template: its first frame, as the render's
        const canvas = document.getElementById("canvas");
        return {{ png: canvas.toDataURL("image/png"), request: ms.request(),
                  layouts: ms.layouts(), boxes: ms.state.boxes }};
    }}"""
    result: dict[str, Any] = await page.evaluate(script)
    return result


def server_render(request: dict[str, Any], frame: int = 0) -> Image.Image:
    options = RenderOptions(
        format="png",
        sizes=("full",),
        transform=tuple(request["transform"]),
        boxes=tuple((b["x"], b["y"], b["width"], b["height"]) for b in request["boxes"]),
    )
    meme = render_meme(request["template_id"], request["texts"], options)
    image = Image.open(io.BytesIO(meme.variants["full"].data))
    image.seek(frame)  # an animated render is an APNG
    return image.convert("RGB")


def server_lines(request: dict[str, Any], size: tuple[int, int]) -> list[list[str] | None]:
    """The server's fitter's lines for each box, placed as the request places them."""
    template = TemplateCatalog.default().get(request["template_id"])
    placements = [(b["x"], b["y"], b["width"], b["height"]) for b in request["boxes"]]
    boxes = place_boxes(template.boxes, placements, *size)
    texts = check_texts(request["texts"], boxes)
    layers = [typeset(box, text) for box, text in zip(boxes, texts, strict=True)]
    return [list(layer.fitted.lines) if layer else None for layer in layers]


def outside_text(size: tuple[int, int], boxes: list[dict[str, Any]]) -> np.ndarray:
    """True where no caption can be: each box's rotated bounds, widened for the outline."""
    keep = np.ones((size[1], size[0]), dtype=bool)
    for b in boxes:
        if not b["text"].strip():
            continue
        turn = math.radians(b.get("rotation") or 0)
        w = abs(b["width"] * math.cos(turn)) + abs(b["height"] * math.sin(turn))
        h = abs(b["width"] * math.sin(turn)) + abs(b["height"] * math.cos(turn))
        cx, cy = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
        margin = 6
        x0, y0 = max(0, int(cx - w / 2) - margin), max(0, int(cy - h / 2) - margin)
        x1, y1 = int(cx + w / 2) + margin + 1, int(cy + h / 2) + margin + 1
        keep[y0:y1, x0:x1] = False
    return keep


def compare(draft: dict[str, Any], frame: int = 0) -> tuple[float, float, Image.Image]:
    """Mean absolute difference outside the text boxes, and over the whole image (text is
    drawn by two rasterisers: reported, not bounded)."""
    data = base64.b64decode(draft["png"].split(",", 1)[1])
    canvas = Image.open(io.BytesIO(data)).convert("RGB")
    server = server_render(draft["request"], frame)
    assert canvas.size == server.size, (canvas.size, server.size)
    mask = outside_text(server.size, draft["boxes"])
    diff = np.abs(np.asarray(canvas, np.int16) - np.asarray(server, np.int16))
    return float(diff[mask].mean()), float(diff.mean()), canvas


def check(draft: dict[str, Any], name: str, report: dict[str, str]) -> None:
    mad, whole, canvas = compare(draft)
    report[name] = f"outside text {mad:.2f}/255, whole {whole:.2f}/255"
    assert mad <= LIMIT, f"{name}: canvas differs from the render by {mad:.2f}/255"
    js_lines = [layout["lines"] if layout else None for layout in draft["layouts"]]
    assert js_lines == server_lines(draft["request"], canvas.size), name


async def test_every_filter_matches_the_server(page: Page) -> None:
    report: dict[str, str] = {}
    for name in FILTERS:
        draft = await canvas_draft(page, "classic", f"st.filter = {name!r};")
        check(draft, f"filter {name}", report)
    print("\n".join(f"{k}: {v}" for k, v in report.items()))


async def test_every_transform_matches_the_server(page: Page) -> None:
    report: dict[str, str] = {}
    for name, edit in TRANSFORMS.items():
        draft = await canvas_draft(page, "two-buttons", edit)
        check(draft, f"transform {name}", report)
    print("\n".join(f"{k}: {v}" for k, v in report.items()))


async def test_every_template_matches_the_server(page: Page) -> None:
    """Box settings included: rotated, outlined, coloured, sans and impact boxes."""
    report: dict[str, str] = {}
    for template in TemplateCatalog.default().all():
        draft = await canvas_draft(page, template.id, "")
        check(draft, f"template {template.id}", report)
    print("\n".join(f"{k}: {v}" for k, v in report.items()))


async def test_an_animated_template_previews_animated(page: Page) -> None:
    """vibe-check plays on the canvas: all the render's frames, each one the render's."""
    draft = await canvas_draft(page, "vibe-check", "st.filter = 'sepia';")
    template = TemplateCatalog.default().get("vibe-check")
    assert await page.evaluate("window.memestream.frames()") == template.frame_count > 1
    await page.evaluate("window.memestream.showFrame(null)")  # plays again
    grab = "document.getElementById('canvas').toDataURL('image/png')"
    shots = set()
    for _ in range(4):
        shots.add(await page.evaluate(grab))
        await page.wait_for_timeout(90)
    assert len(shots) > 1, "the canvas does not animate"
    frame = template.frame_count // 2
    await page.evaluate(f"window.memestream.showFrame({frame})")
    draft["png"] = await page.evaluate(grab)
    mad, whole, _ = compare(draft, frame)
    print(f"\nvibe-check frame {frame}: outside text {mad:.2f}/255, whole {whole:.2f}/255")
    assert mad <= LIMIT
