"""Offline first (api/static/sw.js, js/offline.js, the editor's queue) in Debian's Chromium:
after one online visit the editor opens and works with the network off and the API stopped,
a meme made then waits as a queued card (also across a reload) and becomes the real, rendered
meme once the browser is back online, and the worker keeps exactly one shell version.

Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from domain.settings import Settings
from tests.browser.test_editor_and_feed import ARGS, CHROMIUM, SHOTS, Api, shot, sign_up

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]
#: True once the template's full-size image is in the worker's image cache.
CACHED = """(url) => caches.open("memestream-images-v1").then((c) => c.match(url)).then(Boolean)"""
#: The worker's shell caches, by name.
SHELLS = "caches.keys().then((k) => k.filter((n) => n.startsWith('memestream-shell-')))"


@pytest.fixture
async def context(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield context
        finally:
            await context.close()


async def rendered(page: Page) -> int:
    return int(await page.get_by_test_id("canvas").get_attribute("data-rendered") or 0)


async def test_the_editor_opens_offline_and_a_queued_meme_becomes_real(
    stack_settings: Settings, render_worker: None, context: BrowserContext
) -> None:
    api = Api(stack_settings)
    page = context.pages[0] if context.pages else await context.new_page()
    page.on("pageerror", lambda e: print("page error:", e))
    with api.running("api-browser-offline-1"):
        await sign_up(context, api.url)
        script = await (await context.request.get(f"{api.url}/sw.js")).text()
        version = json.loads(script.split(";", 1)[0].split("=", 1)[1])

        # One online visit: the worker installs, takes control and caches what the editor uses.
        await page.goto(api.url)
        await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=45000)
        await expect(page.locator("body")).to_have_attribute("data-offline-ready", "true")
        assert await page.evaluate("navigator.serviceWorker.controller !== null")
        await page.get_by_test_id("template-classic").click()
        await expect(page.get_by_test_id("template-name")).to_have_text("Classic Top & Bottom")
        await page.get_by_test_id("text-0").fill("made offline")
        await page.wait_for_function(
            CACHED, arg="/api/templates/classic/preview?width=1024&lossless=true"
        )
        assert await page.evaluate(SHELLS) == [f"memestream-shell-{version}"]
        await page.wait_for_timeout(500)  # the draft autosaves 300 ms after the last edit

    # 2. No API and no network: reload, and the editor opens from the worker's caches.
    await context.set_offline(True)
    response = await page.reload()
    assert response is not None and response.from_service_worker
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=20000)
    await expect(page.get_by_test_id("template-name")).to_have_text("Classic Top & Bottom")
    await expect(page.get_by_test_id("text-0")).to_have_value("made offline")
    await expect(page.get_by_test_id("template-drake")).to_be_visible()  # the cached list
    before = await rendered(page)
    await page.get_by_test_id("text-1").press_sequentially("still works")
    assert await rendered(page) >= before + len("still works")
    await shot(page, "10-offline-editor")
    # A template never opened online has no cached image: the editor says so and keeps its own.
    await page.get_by_test_id("template-drake").click()
    await expect(page.locator(".toast").first).to_contain_text("not available offline")
    await expect(page.get_by_test_id("template-name")).to_have_text("Classic Top & Bottom")
    await expect(page.get_by_test_id("text-1")).to_have_value("still works")

    # 3. Generate offline: a queued card, kept across a reload.
    await page.get_by_test_id("generate").click()
    card = page.get_by_test_id("made-meme").first
    await expect(card).to_have_attribute("data-status", "queued")
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=20000)
    card = page.get_by_test_id("made-meme").first
    await expect(card).to_have_attribute("data-status", "queued")
    await expect(page.get_by_test_id("made-meme")).to_have_count(1)
    await shot(page, "11-offline-queued-meme")

    # 4. Back online: the card becomes the real meme, rendered by the worker.
    with api.running("api-browser-offline-2"):
        await context.set_offline(False)
        await expect(card).to_have_attribute("data-status", "rendered", timeout=45000)
        meme_id = await card.get_attribute("data-meme-id")
        assert meme_id
        await expect(card.locator("img")).to_have_attribute(
            "src", f"{api.url}/api/meme/{meme_id}/image?size=thumb"
        )
        meme = await (await context.request.get(f"{api.url}/api/meme/{meme_id}")).json()
        assert meme["status"] == "rendered"
        assert meme["texts"] == ["made offline", "still works"]
        assert await page.evaluate("localStorage.getItem('memestream:queue:generate')") == "[]"
        await expect(page.get_by_test_id("made-meme")).to_have_count(1)
        await shot(page, "12-queued-meme-rendered")


async def test_the_worker_drops_an_earlier_deploys_shell(
    stack_settings: Settings, context: BrowserContext
) -> None:
    """What a deploy leaves behind: the shell cache of another version. The worker that
    activates keeps only its own (a changed static file changes the version: tests/test_web.py)."""
    api = Api(stack_settings)
    page = context.pages[0] if context.pages else await context.new_page()
    with api.running("api-browser-deploy"):
        await page.goto(f"{api.url}/health")  # the origin, before any worker
        await page.evaluate(
            """caches.open("memestream-shell-0123456789abcdef")
                 .then((c) => c.put("/static/js/editor.js", new Response("// old")))"""
        )
        assert await page.evaluate(SHELLS) == ["memestream-shell-0123456789abcdef"]
        await page.goto(api.url)
        await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=45000)
        await expect(page.locator("body")).to_have_attribute("data-offline-ready", "true")
        script = await (await context.request.get(f"{api.url}/sw.js")).text()
        version = json.loads(script.split(";", 1)[0].split("=", 1)[1])
        assert await page.evaluate(SHELLS) == [f"memestream-shell-{version}"]
        editor = await page.evaluate(
            f"""caches.open("memestream-shell-{version}")
                 .then((c) => c.match("/static/js/editor.js")).then((r) => r.text())"""
        )
        assert "installServiceWorker" in editor
