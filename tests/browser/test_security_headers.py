"""The pages under their Content-Security-Policy (api/security_headers.py) in Debian's
Chromium: the editor, the feed and the templates page load, run their scripts and workers
(the service worker too), reach the API and the live feed, and the browser reports no CSP
violation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Browser, expect

from domain.settings import Settings
from memestream.testing.processes import memestream_api

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]
#: Records what the CSP blocks before any page script runs.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[str]:
    with memestream_api(stack_settings, "api-browser-csp", FEED_HEARTBEAT_S="1") as url:
        yield url


async def test_the_editor_and_the_feed_work_under_the_csp(api: str, browser: Browser) -> None:
    context = await browser.new_context()
    await context.add_init_script(WATCH)
    editor = await context.new_page()
    errors: list[str] = []
    editor.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    response = await editor.goto(api)
    assert response is not None and "content-security-policy" in response.headers
    await expect(editor.locator("body")).to_have_attribute("data-ready", "true", timeout=45000)
    await expect(editor.get_by_test_id("template-drake")).to_be_visible()
    await editor.get_by_test_id("text-0").fill("csp holds")
    feed = await context.new_page()
    await feed.goto(f"{api}/feed")
    await expect(feed.get_by_test_id("connection")).to_have_text("live", timeout=15000)
    # The templates page, and the service worker the editor registered, under the same CSP.
    templates = await context.new_page()
    await templates.goto(f"{api}/templates")
    await expect(templates.get_by_test_id("upload-form")).to_be_visible()
    await expect(editor.locator("body")).to_have_attribute("data-offline-ready", "true")
    for page in (editor, feed, templates):
        assert await page.evaluate("window.__csp") == []
    assert not [e for e in errors if "Content Security Policy" in e]
    await context.close()
