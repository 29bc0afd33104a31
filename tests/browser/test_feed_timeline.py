"""The feed as a timeline in Chromium (api/static/js/feed.js): a fresh visitor sees the latest
memes at once, scrolling loads older pages while the DOM stays bounded, new memes are counted
on one "N new" button (no toast each) and appear at the top on click, and a trending entry
opens the meme page (full image, captions, votes), by mouse and by keyboard.

The memes are rows as the render worker leaves them (memestream.testing.memes), listed in the
Redis recent list as the sink lists rendered memes; live announcements are FeedEvents on a
private feed topic, relayed by the API as the render worker's would be.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from domain.events import FeedEvent, FeedKind
from domain.settings import Settings
from memestream.testing.memes import insert_meme
from memestream.testing.processes import memestream_api
from sinks.postgres.pool import create_pool
from sinks.postgres.votes import refresh_trending_daily
from sinks.redis.client import create_redis
from sinks.redis.recent import RecentMemes
from tests.feed_support import private_topic, produce

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
#: Cards a 1280x800 window may hold: the rows on screen plus two above and two below, at
#: most four columns (feed.js's OVERSCAN and MIN_CARD), with a row of slack.
MAX_CARDS = 4 * (800 // 316 + 2 + 4 + 1)


@pytest.fixture(scope="module")
def feed_topic(stack_settings: Settings) -> Iterator[str]:
    with private_topic(stack_settings) as name:
        yield name


@pytest.fixture(scope="module")
def api(stack_settings: Settings, feed_topic: str) -> Iterator[str]:
    with memestream_api(stack_settings, "api-browser-timeline", FEED_TOPIC=feed_topic) as url:
        yield url


async def rendered_memes(settings: Settings, n: int, label: str) -> list[str]:
    """n rendered memes, oldest first, pushed to the recent list as the sink pushes them."""
    ids = [
        insert_meme(settings, texts=[f"{label} {i} top", f"{label} {i} bottom"]) for i in range(n)
    ]
    redis = create_redis(settings)
    try:
        await RecentMemes(redis, settings.recent_memes_max).push(*ids)
    finally:
        await redis.aclose()
    return ids


async def upvote(api: str, meme_id: str) -> None:
    """A new user's vote, through the API's REST path."""
    creds = {"username": f"t{uuid.uuid4().hex[:10]}", "password": "correct horse battery"}
    async with httpx.AsyncClient(base_url=api, timeout=10) as client:
        assert (await client.post("/api/auth/register", json=creds)).status_code == 201
        token = (await client.post("/api/auth/login", json=creds)).json()["token"]
        voted = await client.post(
            f"/api/meme/{meme_id}/vote",
            json={"value": 1},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert voted.status_code == 200, voted.text


def card_of(meme_id: str) -> str:
    return f"[data-testid='meme-card'][data-meme-id='{meme_id}']"


async def timeline(page: Page) -> list[str]:
    return await page.evaluate("window.memestream.timeline")


async def test_a_fresh_visitor_sees_the_latest_memes_and_scrolls_back_with_a_bounded_dom(
    api: str, browser: Browser, stack_settings: Settings
) -> None:
    # Older memes than the test's own, so the pages go on past them whatever the database
    # held before (a fresh CI stack holds almost nothing): rows only, not in the recent list.
    for i in range(30):
        insert_meme(stack_settings, texts=[f"older {i} top", f"older {i} bottom"])
    mine = await rendered_memes(stack_settings, 80, "history")
    newest_first = list(reversed(mine))
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(f"{api}/feed")
    first = page.get_by_test_id("meme-card").first
    await expect(first).to_have_attribute("data-meme-id", newest_first[0], timeout=15000)
    img = first.locator("img")
    await expect(img).to_have_attribute("alt", "Meme: history 79 top / history 79 bottom")
    await expect(img).to_have_attribute("loading", "lazy")
    assert "size=medium" in (await img.get_attribute("src") or "")
    assert (await timeline(page))[:24] == newest_first[:24]

    most = 0
    for _ in range(60):  # bounded: page by page to past the 80 memes of this test
        await page.mouse.wheel(0, 2500)
        await page.wait_for_timeout(150)
        most = max(most, await page.get_by_test_id("meme-card").count())
        listed = await timeline(page)
        if len(listed) > len(mine) + 24:
            break
    listed = await timeline(page)
    assert len(listed) > len(mine) + 24, "older pages did not load"
    assert len(listed) == len(set(listed))
    assert [m for m in listed if m in mine] == newest_first
    assert 0 < most <= MAX_CARDS, f"{most} cards in the DOM"
    # The cards in the DOM are the ones around the viewport, not the first ones loaded.
    shown = await page.get_by_test_id("meme-card").evaluate_all(
        "cards => cards.map(c => c.dataset.memeId)"
    )
    assert newest_first[0] not in shown
    await context.close()


async def test_new_memes_wait_behind_one_n_new_button_instead_of_toasts(
    api: str, browser: Browser, stack_settings: Settings, feed_topic: str
) -> None:
    await rendered_memes(stack_settings, 3, "before")
    context = await browser.new_context(viewport=PHONE)
    page = await context.new_page()
    await page.goto(f"{api}/feed")
    await expect(page.get_by_test_id("connection")).to_have_text("live", timeout=15000)
    await expect(page.get_by_test_id("meme-card").first).to_be_visible(timeout=15000)
    top = await page.get_by_test_id("meme-card").first.get_attribute("data-meme-id")
    button = page.get_by_test_id("new-memes")
    await expect(button).to_be_hidden()

    fresh = await rendered_memes(stack_settings, 3, "live")
    events = [
        FeedEvent(meme_id=m, kind=FeedKind.RENDERED, template_id="drake", status="rendered")
        for m in fresh
    ]
    for event in events:  # one at a time: the order they were rendered in
        await produce(stack_settings, feed_topic, [event])
    await expect(button).to_have_text("3 new memes", timeout=15000)
    await expect(button).to_be_visible()
    assert await page.locator(".toast").count() == 0
    for meme_id in fresh:  # announced, not yet shown
        await expect(
            page.locator(f"[data-testid='meme-card'][data-meme-id='{meme_id}']")
        ).to_have_count(0)
    await expect(page.get_by_test_id("meme-card").first).to_have_attribute(
        "data-meme-id", top or ""
    )

    await button.click()
    await expect(button).to_be_hidden()
    cards = page.get_by_test_id("meme-card")
    for i, meme_id in enumerate(reversed(fresh)):  # the newest on top
        await expect(page.locator(card_of(meme_id))).to_be_visible()
        assert (await timeline(page))[i] == meme_id
    await expect(cards.first.locator("img")).to_have_attribute(
        "alt", "Meme: live 2 top / live 2 bottom"
    )
    assert await page.locator(".toast").count() == 0
    await context.close()


async def test_a_trending_entry_opens_the_meme_page_by_mouse_and_by_keyboard(
    api: str, browser: Browser, stack_settings: Settings
) -> None:
    (meme_id,) = await rendered_memes(stack_settings, 1, "trending")
    await upvote(api, meme_id)
    pool = create_pool(stack_settings)  # so the PostgreSQL fallback ranks it if Redis has no set
    await pool.open()
    try:
        await refresh_trending_daily(pool)
    finally:
        await pool.close()
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    await page.goto(f"{api}/feed")
    entry = page.get_by_test_id("trending-link").first
    await expect(entry).to_be_visible(timeout=15000)
    target = await entry.evaluate("a => a.closest('li').dataset.memeId")
    await entry.click()
    meme_page = page.get_by_test_id("meme-page")
    await expect(meme_page).to_be_visible()
    await expect(page.get_by_test_id("feed-list")).to_be_hidden()
    assert page.url.endswith(f"#meme={target}")
    image = page.get_by_test_id("meme-image")
    await expect(image).to_have_attribute("src", f"/api/meme/{target}/image?size=full")
    await expect(page.get_by_test_id("meme-title")).not_to_have_text("Loading…")

    # Back to the feed, then the same by keyboard only, on the meme this test voted on.
    await page.get_by_test_id("meme-back").click()
    await expect(page.get_by_test_id("feed-list")).to_be_visible()
    await page.goto(f"{api}/feed#meme={meme_id}")
    await expect(page.get_by_test_id("meme-captions").locator("li")).to_have_text(
        ["trending 0 top", "trending 0 bottom"]
    )
    await expect(image).to_have_attribute("alt", "Meme: trending 0 top / trending 0 bottom")
    await expect(meme_page.get_by_test_id("vote-count")).to_have_text("1")
    await expect(page.get_by_test_id("meme-tally")).to_have_text("1 up · 0 down")
    await page.get_by_test_id("meme-back").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("feed-list")).to_be_visible()
    await page.goto(f"{api}/feed")  # a keyboard user arriving: Tab from the top of the page
    await expect(page.get_by_test_id("trending-link").first).to_be_visible(timeout=15000)
    for testid in ("skip-to-trending", "trending-link"):  # the list never ends: skip it
        for _ in range(30):  # bounded: Tab until it has the focus
            await page.keyboard.press("Tab")
            if await page.evaluate("document.activeElement?.dataset.testid") == testid:
                break
        else:
            raise AssertionError(f"{testid} is not reachable by Tab")
        if testid == "skip-to-trending":
            await page.keyboard.press("Enter")
    focused = await page.evaluate("document.activeElement.closest('li').dataset.memeId")
    await page.keyboard.press("Enter")
    await expect(meme_page).to_be_visible()
    assert page.url.endswith(f"#meme={focused}")
    await context.close()
