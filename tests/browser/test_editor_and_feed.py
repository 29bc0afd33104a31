"""The editor and the live feed in Debian's Chromium, driven by Playwright, against the real
stack: make a meme (type, drag, undo, redo), see it in another browser's feed (behind its
"N new" button), vote across browsers, restart the API without losing events, vote offline
and see it sync.

Screenshots of every step go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from domain.events import MemeRequested
from domain.ids import new_id
from domain.settings import Settings
from memestream.testing import processes
from memestream.testing.environment import environment
from producers.producer import EventProducer
from producers.topics import MEME_REQUESTS

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(300)]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SHOTS = processes.ARTIFACTS / "screenshots"


class Api:
    """The API on a fixed port, so pages reconnect to the same address after a restart."""

    def __init__(self, settings: Settings) -> None:
        self.port = processes.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = environment(settings) | {"API_PORT": str(self.port), "FEED_HEARTBEAT_S": "1"}
        self._cm: object | None = None

    @contextmanager
    def running(self, name: str) -> Iterator[None]:
        args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(self.port)]
        with processes.process(name, args, self.env) as proc:
            processes.wait_for_http(f"{self.url}/health", proc)
            yield


@pytest.fixture(scope="module")
def trending_worker(stack_settings: Settings) -> Iterator[None]:
    """Issue 5's trending agents turn votes into the vote-count feed events other pages see."""
    from producers.roles import TRENDING

    prefix = f"test-{uuid.uuid4().hex[:8]}"
    env = environment(stack_settings) | {
        "WORKER_WEB_PORT": processes.worker_web_port("trending")[1],
        "CONSUMER_GROUP_PREFIX": prefix,
        "KAFKA_AUTO_OFFSET_RESET": "latest",
    }
    args = ["-m", "streams", "worker", "--role", "trending"]
    with processes.process("worker-trending-browser", args, env) as proc:
        processes.wait_for_group(
            stack_settings.kafka_bootstrap_servers, TRENDING.group_id_for(prefix), proc
        )
        yield


@pytest.fixture
async def contexts(tmp_path: Path) -> AsyncIterator[tuple[BrowserContext, BrowserContext]]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        made = []
        for name in ("alice", "bob"):
            made.append(
                await p.chromium.launch_persistent_context(
                    str(tmp_path / f"profile-{name}"),
                    executable_path=CHROMIUM,
                    headless=True,
                    args=ARGS,
                    viewport={"width": 1280, "height": 800},
                )
            )
        try:
            yield made[0], made[1]
        finally:
            for context in made:
                await context.close()


async def sign_up(context: BrowserContext, url: str) -> None:
    creds = {"username": f"b{uuid.uuid4().hex[:10]}", "password": "correct horse battery"}
    assert (await context.request.post(f"{url}/api/auth/register", data=creds)).status == 201
    assert (await context.request.post(f"{url}/api/auth/login", data=creds)).ok


async def shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


async def open_feed(context: BrowserContext, url: str) -> Page:
    page = await context.new_page()
    await page.goto(f"{url}/feed")
    await expect(page.get_by_test_id("connection")).to_have_text("live", timeout=15000)
    return page


async def reveal(page: Page, card: str, timeout_s: float = 20.0) -> None:
    """Waits for a new meme's card: the feed announces new memes on its "N new" button and
    shows them when it is clicked (other memes may be announced too)."""
    located = page.locator(card)
    button = page.get_by_test_id("new-memes")
    for _ in range(int(timeout_s * 4)):  # bounded
        if await located.count():
            break
        if await button.is_visible():
            await button.click()
        await page.wait_for_timeout(250)
    await expect(located).to_be_visible()


async def produce_requests(settings: Settings, n: int) -> list[str]:
    producer = EventProducer(settings, client_id="browser-test")
    try:
        events = [
            MemeRequested(meme_id=new_id(), template_id="classic", texts=[f"while down {i}", ""])
            for i in range(n)
        ]
        await asyncio.gather(*(producer.send(MEME_REQUESTS.name, e) for e in events))
    finally:
        await asyncio.to_thread(producer.close)
    return [e.meme_id for e in events]


async def test_editor_feed_votes_restart_and_offline(
    stack_settings: Settings,
    render_worker: None,
    trending_worker: None,
    contexts: tuple[BrowserContext, BrowserContext],
) -> None:
    alice, bob = contexts
    api = Api(stack_settings)
    with api.running("api-browser-1"):
        await sign_up(alice, api.url)
        await sign_up(bob, api.url)

        # 1. The editor: type (the canvas follows), drag a box, undo, redo.
        editor = alice.pages[0] if alice.pages else await alice.new_page()
        editor.on("pageerror", lambda e: print("page error:", e))
        editor.on("console", lambda m: print("console:", m.text) if m.type == "error" else None)
        await editor.goto(api.url)
        # The first test of a cold CI run: the API and the browser start from nothing.
        await expect(editor.locator("body")).to_have_attribute("data-ready", "true", timeout=45000)
        await editor.get_by_test_id("template-search").fill("drake")
        await expect(editor.get_by_test_id("template-drake")).to_be_visible()
        await expect(editor.get_by_test_id("template-classic")).to_have_count(0)
        await editor.get_by_test_id("template-search").fill("")
        await editor.get_by_test_id("template-classic").click()
        await expect(editor.get_by_test_id("template-name")).to_have_text("Classic Top & Bottom")
        canvas = editor.get_by_test_id("canvas")
        drawn = int(await canvas.get_attribute("data-rendered") or 0)
        await editor.get_by_test_id("text-0").press_sequentially("browser tests pass")
        assert int(await canvas.get_attribute("data-rendered") or 0) >= drawn + 18
        box = editor.get_by_test_id("box-0")
        x0 = int(await box.get_attribute("data-x") or 0)
        bounds = await box.bounding_box()
        assert bounds
        cx, cy = bounds["x"] + bounds["width"] / 2, bounds["y"] + bounds["height"] / 2
        await editor.mouse.move(cx, cy)
        await editor.mouse.down()
        await editor.mouse.move(cx + 60, cy + 40, steps=8)
        await editor.mouse.up()
        moved = int(await box.get_attribute("data-x") or 0)
        assert moved > x0
        await shot(editor, "01-editor-dragged")
        await editor.locator("body").click(position={"x": 5, "y": 790})  # focus off the box
        await editor.keyboard.press("Control+z")
        await expect(box).to_have_attribute("data-x", str(x0))
        await editor.keyboard.press("Control+Shift+z")
        await expect(box).to_have_attribute("data-x", str(moved))
        await expect(editor.get_by_test_id("text-0")).to_have_value("browser tests pass")
        await shot(editor, "02-editor-redone")
        drawn = int(await canvas.get_attribute("data-rendered") or 0)
        await editor.get_by_test_id("filter").select_option("grayscale")  # in the Web Worker
        await expect(canvas).not_to_have_attribute("data-rendered", str(drawn))
        await shot(editor, "02b-editor-grayscale")
        await editor.keyboard.press("Control+z")
        await expect(editor.get_by_test_id("filter")).to_have_value("none")

        # 2. Both browsers watch the feed; Alice generates; Bob sees it appear.
        alice_feed = await open_feed(alice, api.url)
        bob_feed = await open_feed(bob, api.url)
        await editor.bring_to_front()
        await editor.get_by_test_id("generate").click()
        made = editor.get_by_test_id("made-meme").first
        await expect(made).to_have_attribute("data-status", "rendered", timeout=30000)
        meme_id = await made.get_attribute("data-meme-id")
        await shot(editor, "03-editor-generated")
        # The card, not the trending board's entry for the same meme.
        card = f"[data-testid='meme-card'][data-meme-id='{meme_id}']"
        bob_card = bob_feed.locator(card)
        alice_card = alice_feed.locator(card)
        await reveal(bob_feed, card, timeout_s=15)
        await reveal(alice_feed, card, timeout_s=15)
        await shot(bob_feed, "04-bob-sees-the-new-meme")

        # 3. Bob votes; the count moves at once for him and, via the feed, for Alice.
        await bob_card.get_by_test_id("vote-up").click()
        await expect(bob_card.get_by_test_id("vote-count")).to_have_text("1")
        await expect(bob_card).to_have_attribute("data-sync", "synced")
        await expect(alice_card.get_by_test_id("vote-count")).to_have_text("1", timeout=20000)
        await shot(alice_feed, "05-alice-sees-bobs-vote")

    # 4. The API restarts; memes rendered meanwhile reach the open pages, none missed.
    missed = await produce_requests(stack_settings, 2)
    await asyncio.sleep(3)  # the worker renders them while no API runs
    with api.running("api-browser-2"):
        for page in (bob_feed, alice_feed):
            await expect(page.get_by_test_id("connection")).to_have_text("live", timeout=20000)
            for missed_id in missed:
                missed_card = f"[data-testid='meme-card'][data-meme-id='{missed_id}']"
                await reveal(page, missed_card, timeout_s=20)
        await shot(bob_feed, "06-resumed-after-restart")

        # 5. Offline: Bob's vote is queued, then synced when he is back.
        await bob.set_offline(True)
        await expect(bob_feed.get_by_test_id("connection")).not_to_have_text("live")
        await bob_card.get_by_test_id("vote-down").click()
        await expect(bob_card.get_by_test_id("vote-count")).to_have_text("-1")
        await expect(bob_card).to_have_attribute("data-sync", "queued")
        await expect(bob_feed.get_by_test_id("queued")).to_be_visible()
        await shot(bob_feed, "07-offline-vote-queued")
        await bob.set_offline(False)
        await expect(bob_feed.get_by_test_id("connection")).to_have_text("live", timeout=20000)
        await expect(bob_card).to_have_attribute("data-sync", "synced", timeout=15000)
        await expect(bob_feed.get_by_test_id("queued")).to_be_hidden()
        await expect(bob_card.get_by_test_id("vote-count")).to_have_text("-1")
        await expect(alice_card.get_by_test_id("vote-count")).to_have_text("-1", timeout=20000)
        await shot(bob_feed, "08-offline-vote-synced")
        await shot(alice_feed, "09-alice-sees-the-synced-vote")
