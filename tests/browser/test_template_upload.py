"""Uploading a template from the templates page (api/static/templates.html, js/upload.js) in
Debian's Chromium against the real API (PostgreSQL, MinIO): an image with two caption boxes
drawn on it becomes a template the editor's picker finds and opens; refused uploads show the
server's own problem title and detail; a search with no match says so instead of a blank grid.
Test images are made with Pillow here.
"""

from __future__ import annotations

import io
import os
import random
import string
from collections.abc import AsyncIterator, Iterator

import pytest
from PIL import Image, ImageDraw
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from domain.settings import Settings
from memestream.testing.processes import memestream_api
from tests.browser.test_editor_and_feed import ARGS, CHROMIUM, SHOTS, shot, sign_up

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
MAX_UPLOAD_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[str]:
    # A low upload limit, so a "too large" image is a small one.
    env = {"MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}
    with memestream_api(stack_settings, "api-browser-upload", **env) as url:
        yield url


@pytest.fixture
async def context(api: str) -> AsyncIterator[BrowserContext]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser: Browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        await sign_up(context, api)
        yield context
        await browser.close()


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    if noise:  # incompressible: large for its size
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (40, 90, 160))
        ImageDraw.Draw(image).ellipse((120, 80, 280, 220), fill=(250, 200, 60))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def choose(page: Page, name: str, data: bytes, mime: str = "image/png") -> None:
    file = {"name": name, "mimeType": mime, "buffer": data}
    await page.get_by_test_id("upload-file").set_input_files(file)


async def drag(page: Page, x0: float, y0: float, x1: float, y1: float) -> None:
    await page.mouse.move(x0, y0)
    await page.mouse.down()
    await page.mouse.move(x1, y1, steps=6)
    await page.mouse.up()


async def test_an_upload_with_drawn_boxes_becomes_a_template_the_picker_finds(
    api: str, context: BrowserContext
) -> None:
    page = await context.new_page()
    await page.goto(f"{api}/templates")
    await expect(page.get_by_test_id("whoami")).to_be_visible(timeout=15000)
    await choose(page, "sunset.png", png(400, 300))
    stage = page.get_by_test_id("upload-stage")
    await expect(stage).to_have_attribute("data-ready", "true")
    image = await stage.locator("img").bounding_box()
    assert image and round(image["width"]) == 400  # shown at its own size: 1 px = 1 px
    left, top = image["x"], image["y"]
    await drag(page, left + 20, top + 10, left + 380, top + 70)
    await drag(page, left + 300, top + 290, left + 20, top + 230)  # drawn up and to the left
    await drag(page, left + 100, top + 150, left + 102, top + 151)  # a click is not a box
    await expect(page.get_by_test_id("upload-boxes").locator("li")).to_have_count(2)
    await page.get_by_test_id("upload-box-0").get_by_label("Name of box 1").fill("headline")
    word = "".join(random.choices(string.ascii_lowercase, k=12))
    await page.get_by_test_id("upload-name").fill(f"Sunset {word}")
    await shot(page, "20-upload-boxes-drawn")
    await page.get_by_test_id("upload-submit").click()
    done = page.get_by_test_id("upload-done")
    await expect(done).to_be_visible(timeout=15000)
    template_id = await done.get_attribute("data-template-id")
    assert template_id
    await expect(page.get_by_test_id("upload-error")).to_be_hidden()
    await expect(page.get_by_test_id(f"my-template-{template_id}")).to_be_visible()

    record = await (await context.request.get(f"{api}/api/templates/{template_id}")).json()
    assert (record["name"], record["width"], record["height"]) == (f"Sunset {word}", 400, 300)
    boxes = [(b["name"], b["x"], b["y"], b["width"], b["height"]) for b in record["boxes"]]
    assert [b[0] for b in boxes] == ["headline", "text 2"]
    for got, want in zip(boxes, [(20, 10, 360, 60), (20, 230, 280, 60)], strict=True):
        assert all(abs(g - w) <= 1 for g, w in zip(got[1:], want, strict=True)), boxes

    # The editor's picker finds it by name and opens it with its two boxes.
    await page.get_by_test_id("upload-open").click()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=30000)
    await expect(page.get_by_test_id("template-name")).to_have_text(f"Sunset {word}")
    await expect(page.get_by_test_id("text-1")).to_be_visible()
    await expect(page.get_by_test_id("text-2")).to_have_count(0)
    await page.get_by_test_id("template-search").fill(word)
    await expect(page.get_by_test_id(f"template-{template_id}")).to_be_visible()
    await expect(page.locator(".cell")).to_have_count(1)
    await expect(page.get_by_test_id("template-empty")).to_be_hidden()
    await shot(page, "21-uploaded-template-in-the-picker")


@pytest.mark.parametrize(
    ("name", "data", "mime", "status"),
    [
        ("notes.png", b"these are not the pixels you are looking for\n" * 40, "image/png", 415),
        ("noise.png", png(300, 300, noise=True), "image/png", 413),
    ],
    ids=["not-an-image", "too-large"],
)
async def test_a_refused_upload_shows_the_servers_error(
    api: str, context: BrowserContext, name: str, data: bytes, mime: str, status: int
) -> None:
    page = await context.new_page()
    await page.goto(f"{api}/templates")
    await expect(page.get_by_test_id("whoami")).to_be_visible(timeout=15000)
    await choose(page, name, data, mime)
    await page.get_by_test_id("upload-name").fill("refused")
    async with page.expect_response(f"{api}/api/templates") as answer:
        await page.get_by_test_id("upload-submit").click()
    response = await answer.value
    assert response.status == status
    problem = await response.json()
    error = page.get_by_test_id("upload-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text(problem["title"])
    await expect(error).to_contain_text(problem["detail"])
    await expect(page.get_by_test_id("upload-done")).to_be_hidden()
    await shot(page, f"22-upload-refused-{status}")


async def test_a_search_without_a_match_says_so(api: str, context: BrowserContext) -> None:
    page = await context.new_page()
    await page.goto(api)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=30000)
    empty = page.get_by_test_id("template-empty")
    await expect(empty).to_be_hidden()
    await page.get_by_test_id("template-search").fill("zebracornflakes")
    await expect(empty).to_have_text("No template matches “zebracornflakes”.")
    await expect(page.locator(".cell")).to_have_count(0)
    await shot(page, "23-picker-empty-search")
    await page.get_by_test_id("template-search").fill("")
    await expect(empty).to_be_hidden()
    await expect(page.get_by_test_id("template-drake")).to_be_visible()


async def test_boxes_are_added_and_placed_with_the_keyboard_alone(
    api: str, context: BrowserContext
) -> None:
    """No pointer: "Add a box", then its x / y / width / height fields, then Enter submits;
    a size beyond the image is clamped to it."""
    page = await context.new_page()
    await page.goto(f"{api}/templates")
    await expect(page.get_by_test_id("whoami")).to_be_visible(timeout=15000)
    await choose(page, "keys.png", png(400, 300))
    await expect(page.get_by_test_id("upload-stage")).to_have_attribute("data-ready", "true")

    async def add_box(name: str, x: int, y: int, width: int, height: int) -> None:
        await page.get_by_test_id("upload-add-box").focus()
        await page.keyboard.press("Enter")  # focus moves to the new box's name
        await page.keyboard.press("Control+A")
        await page.keyboard.type(name)
        for value in (x, y, width, height):
            await page.keyboard.press("Tab")
            await page.keyboard.press("Control+A")
            await page.keyboard.type(str(value))
        await page.keyboard.press("Tab")  # leaving the field applies it

    await add_box("top", 30, 40, 300, 50)
    await add_box("wide", 50, 200, 5000, 60)  # wider than the image: clamped to 400 at x 0
    item = page.get_by_test_id("upload-box-1")
    await expect(item.locator("[data-field=width]")).to_have_value("400")
    await expect(item.locator("[data-field=x]")).to_have_value("0")
    overlay = page.get_by_test_id("drawn-box-0")
    assert await overlay.evaluate("el => el.style.left") == "7.5%"  # 30 of 400 px
    word = "".join(random.choices(string.ascii_lowercase, k=12))
    await page.get_by_test_id("upload-name").focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type(f"Keys {word}")
    await page.keyboard.press("Enter")
    done = page.get_by_test_id("upload-done")
    await expect(done).to_be_visible(timeout=15000)
    template_id = await done.get_attribute("data-template-id")
    record = await (await context.request.get(f"{api}/api/templates/{template_id}")).json()
    boxes = [(b["name"], b["x"], b["y"], b["width"], b["height"]) for b in record["boxes"]]
    assert boxes == [("top", 30, 40, 300, 50), ("wide", 0, 200, 400, 60)]
