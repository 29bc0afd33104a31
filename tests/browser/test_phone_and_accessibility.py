"""Every page on a phone and to axe-core, in Chromium: the editor (`/`), the feed (`/feed`),
a meme page (`/feed#meme=<id>`), the templates page (`/templates`) and the analytics page
(`/analytics`: its charts, or its store-down banner when no analytics worker answers).

On phones 360-430 px wide nothing overflows sideways (the header included); at 390x844 every
button, link and field is at least 44x44 px and the editor's first caption field is on the
first screen with the canvas. axe-core (from node_modules/, installed by scripts/bootstrap.sh)
finds no serious or critical violation on any page at 390x844 or at 1280x800, each page has
one `h1`, meme images carry their captions as alt text and the editor's text boxes have a role
and an accessible name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, Page, expect

from domain.settings import PROJECT_ROOT, Settings
from memestream.testing.memes import insert_meme
from memestream.testing.processes import memestream_api

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
PHONES = [(360, 740), (390, 844), (430, 932)]
DESKTOP = (1280, 800)
PAGES = ["/", "/feed", "/feed#meme={meme}", "/templates", "/analytics"]

#: Visible controls smaller than 44x44 px (WCAG 2.5.5), described for the failure message.
SMALL_TARGETS = """() => [...document.querySelectorAll(
    "button, a[href], input:not([type=hidden]), select, textarea, [role=button]")]
  .filter((el) => el.checkVisibility() && !el.closest("[hidden]"))
  .map((el) => [el, el.getBoundingClientRect()])
  .filter(([, r]) => r.width > 0 && (r.width < 44 || r.height < 44))
  .map(([el, r]) => `${el.tagName.toLowerCase()}#${el.id}.${el.className}` +
       ` "${(el.textContent || el.getAttribute("aria-label") || "").trim().slice(0, 20)}"` +
       ` ${Math.round(r.width)}x${Math.round(r.height)}`)"""
OVERFLOW = """() => ({
  page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  header: document.querySelector("header").scrollWidth
    - document.querySelector("header").clientWidth,
})"""


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[str]:
    with memestream_api(stack_settings, "api-browser-a11y") as url:
        yield url


@pytest.fixture(scope="module")
def meme(stack_settings: Settings) -> str:
    return insert_meme(stack_settings, texts=["one does not simply", "test accessibility"])


async def open_page(browser: Browser, url: str, size: tuple[int, int]) -> Page:
    # The CSP forbids inline scripts; axe is injected as one, so this context bypasses it
    # (tests/browser/test_security_headers.py checks the pages under the CSP).
    context = await browser.new_context(
        viewport={"width": size[0], "height": size[1]}, bypass_csp=True
    )
    page = await context.new_page()
    await page.goto(url)
    await ready(page, url)
    return page


async def ready(page: Page, url: str) -> None:
    """Until the page has drawn what it shows (the editor its template, the feed its cards)."""
    if "#meme=" in url:
        await expect(page.get_by_test_id("meme-image")).to_have_attribute(
            "src", re.compile("size=full")
        )
    elif url.endswith("/analytics"):
        await expect(page.locator("body")).to_have_attribute(
            "data-refreshed", re.compile(r"\d"), timeout=15000
        )
    elif url.endswith("/templates"):
        await expect(page.get_by_test_id("upload-form")).to_be_visible(timeout=15000)
    elif url.endswith("/feed"):
        await expect(page.get_by_test_id("meme-card").first).to_be_visible(timeout=15000)
    else:
        await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=45000)
        await expect(page.get_by_test_id("text-0")).to_be_visible()


@pytest.mark.parametrize("path", PAGES)
async def test_no_sideways_overflow_on_phones_and_44_px_targets(
    api: str, meme: str, browser: Browser, path: str
) -> None:
    url = api + path.format(meme=meme)
    for width, height in PHONES:
        page = await open_page(browser, url, (width, height))
        overflow = await page.evaluate(OVERFLOW)
        assert overflow == {"page": 0, "header": 0}, f"{width} px: {overflow}"
        if width == 390:
            assert await page.evaluate(SMALL_TARGETS) == []
            if path == "/":  # the captions are on the first screen, with the canvas
                for testid in ("canvas", "text-0"):
                    box = await page.get_by_test_id(testid).bounding_box()
                    assert box and box["y"] >= 0 and box["y"] + box["height"] <= height, testid
        await page.context.close()


@pytest.mark.parametrize("path", PAGES)
async def test_axe_finds_no_serious_or_critical_violation(
    api: str, meme: str, browser: Browser, path: str
) -> None:
    assert AXE.exists(), f"{AXE} is missing: run scripts/bootstrap.sh (npm install)"
    url = api + path.format(meme=meme)
    for size in (PHONES[1], DESKTOP):
        page = await open_page(browser, url, size)
        await page.add_script_tag(path=str(AXE))
        result = await page.evaluate("axe.run(document, { resultTypes: ['violations'] })")
        bad = [
            f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert bad == [], f"{path} at {size}: {bad}"
        assert await page.locator("h1").count() == 1
        await page.context.close()


async def test_meme_images_carry_captions_and_text_boxes_have_a_role_and_name(
    api: str, meme: str, browser: Browser
) -> None:
    page = await open_page(browser, f"{api}/feed#meme={meme}", DESKTOP)
    alt = "Meme: one does not simply / test accessibility"
    await expect(page.get_by_test_id("meme-image")).to_have_attribute("alt", alt)
    await page.context.close()

    page = await open_page(browser, api, DESKTOP)
    box = page.get_by_test_id("box-0")
    await expect(box).to_have_attribute("role", "button")
    await page.get_by_test_id("text-0").fill("hello phone")
    name = await box.get_attribute("aria-label")
    assert name and name.endswith(": hello phone")
    await expect(page.get_by_role("button", name=name)).to_have_count(1)
    # The box is reachable by keyboard and moves with the arrows.
    await box.focus()
    x = int(await box.get_attribute("data-x") or 0)
    await page.keyboard.press("ArrowRight")
    await expect(box).not_to_have_attribute("data-x", str(x))
    await page.context.close()
