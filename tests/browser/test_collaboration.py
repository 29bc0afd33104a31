"""Shared drafts on a CRDT (api/static/js/draft-sync.js, api/feed/drafts.py) in Debian's
Chromium against the real stack: two and three browser contexts typing into one caption at
once converge every time (100 runs each), every other field (template, box position, filter,
rotation) is shared, edits made offline merge on reconnect, a late joiner and a reload see the
merged draft, and each editor sees where the others are.

Edits go through the caption's real input path (value + `input` event, as typing does), from
page.evaluate, so 100 runs take seconds, not minutes. Timings are printed (`-s` shows them).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from domain.settings import Settings
from tests.browser.test_editor_and_feed import SHOTS, Api, shot

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.timeout(600)]
RUNS = 100
#: Types `tokens` into caption `box` one by one at random places, as fast as a person
#: mashing keys (0-3 ms apart): the co-editors' keystrokes interleave on the wire.
TYPE = """async ([box, tokens]) => {
  const el = document.getElementById(`text-${box}`);
  for (const token of tokens) {
    const at = Math.floor(Math.random() * (el.value.length + 1));
    el.value = el.value.slice(0, at) + token + el.value.slice(at);
    el.dispatchEvent(new Event("input", { bubbles: true }));
    await new Promise((r) => setTimeout(r, Math.random() * 3));
  }
}"""
TEXT = "(box) => window.memestream.state.boxes[box]?.text ?? null"
DOC_TEXT = "(box) => window.memestream.draft?.toState().boxes[box]?.text ?? null"
SET = """([box, text]) => {
  const el = document.getElementById(`text-${box}`);
  el.value = text;
  el.dispatchEvent(new Event("input", { bubbles: true }));
}"""


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[Api]:
    server = Api(stack_settings)
    with server.running("api-browser-collaboration"):
        yield server


@pytest.fixture
async def contexts(browser: Browser) -> AsyncIterator[list[BrowserContext]]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    made = [await browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(4)]
    try:
        yield made
    finally:
        for context in made:
            await context.close()


async def open_draft(context: BrowserContext, url: str, draft: str) -> Page:
    page = await context.new_page()
    page.on("pageerror", lambda e: print("page error:", e))
    await page.goto(f"{url}/?template=classic&draft={draft}")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=45000)
    await page.wait_for_function("() => window.memestream.draft?.toState().templateId")
    return page


async def texts(pages: list[Page], box: int) -> list[str | None]:
    return list(await asyncio.gather(*(p.evaluate(TEXT, box) for p in pages)))


async def converged(
    pages: list[Page], box: int, tokens: list[str], wait_s: float = 10.0, exact: bool = False
) -> str:
    """Waits until every page shows the same caption holding every token (`exact`: made of
    exactly the tokens' characters, as keystrokes at random places interleave); returns it."""
    deadline = time.monotonic() + wait_s
    while True:
        seen = await texts(pages, box)
        docs = await asyncio.gather(*(p.evaluate(DOC_TEXT, box) for p in pages))
        first = seen[0]
        same = first is not None and all(s == first for s in [*seen, *docs])
        if exact:
            done = same and sorted(first or "") == sorted("".join(tokens))
        else:
            done = same and all(t in (first or "") for t in tokens)
        if done:
            return first or ""
        if time.monotonic() > deadline:
            raise AssertionError(f"no convergence after {wait_s}s: {seen} / {docs}")
        await asyncio.sleep(0.01)


async def convergence_runs(pages: list[Page], label: str) -> list[float]:
    """RUNS times: every page types 3 tokens into caption 0 at once; all must converge."""
    timings = []
    for run in range(RUNS):
        tokens = [[f"<{run}.{i}.{k}>" for k in range(3)] for i in range(len(pages))]
        started = time.perf_counter()
        await asyncio.gather(
            *(p.evaluate(TYPE, [0, t]) for p, t in zip(pages, tokens, strict=True))
        )
        text = await converged(pages, 0, [t for mine in tokens for t in mine], exact=True)
        timings.append(time.perf_counter() - started)
        assert len(text) == sum(len(t) for mine in tokens for t in mine)  # nothing doubled
        await pages[run % len(pages)].evaluate(SET, [0, ""])  # the next run starts empty
        await converged(pages, 0, [])
        assert await texts(pages, 0) == [""] * len(pages)
    timings.sort()
    print(
        f"\n{label}: {RUNS} runs converged; per run median {statistics.median(timings) * 1000:.0f}"
        f" ms, p95 {timings[int(0.95 * RUNS) - 1] * 1000:.0f} ms, max {timings[-1] * 1000:.0f} ms,"
        f" total {sum(timings):.1f} s"
    )
    return timings


async def test_two_and_three_editors_typing_at_once_converge_every_time(
    api: Api, contexts: list[BrowserContext]
) -> None:
    draft = f"c{uuid.uuid4().hex[:12]}"
    pages = [await open_draft(c, api.url, draft) for c in contexts[:3]]
    await converged(pages, 0, [])
    two = await convergence_runs(pages[:2], "two editors")
    three = await convergence_runs(pages, "three editors")
    assert len(two) == len(three) == RUNS
    await shot(pages[2], "collaboration-three-editors")


async def test_every_field_offline_edits_late_joiners_and_presence(
    api: Api, contexts: list[BrowserContext]
) -> None:
    draft = f"c{uuid.uuid4().hex[:12]}"
    a = await open_draft(contexts[0], api.url, draft)
    b = await open_draft(contexts[1], api.url, draft)
    state = "window.memestream.state"

    # Template, filter, rotation and box position travel too.
    await b.get_by_test_id("template-drake").click()
    await a.wait_for_function(f"() => {state}.templateId === 'drake'")
    await expect(a.get_by_test_id("template-name")).to_have_text(
        await b.get_by_test_id("template-name").inner_text()
    )
    await a.get_by_test_id("filter").select_option("sepia")
    await b.wait_for_function(f"() => {state}.filter === 'sepia'")
    await b.locator("#rotate-right").click()
    await a.wait_for_function(f"() => {state}.rotation === 90")
    await a.get_by_test_id("box-0").focus()
    x = await a.evaluate(f"() => {state}.boxes[0].x")
    await a.keyboard.press("ArrowRight")
    await b.wait_for_function(f"() => {state}.boxes[0].x === {x} + 1")

    # Presence: B in caption 1 shows on A's box 1, with B's name; leaving clears it.
    await b.get_by_test_id("text-1").focus()
    await expect(a.get_by_test_id("box-1")).to_have_class(re.compile(r"\bpeer\b"))
    name = await b.evaluate("() => window.memestream.draft.awareness.getLocalState().user.name")
    await expect(a.get_by_test_id("box-1")).to_have_attribute("data-peer", name)
    await shot(a, "collaboration-presence")
    await b.get_by_test_id("text-1").blur()
    await expect(a.get_by_test_id("box-1")).not_to_have_attribute("data-peer", name)

    # Offline: B edits both captions while A edits caption 0; they merge on reconnect.
    await contexts[1].set_offline(True)
    await b.wait_for_function("() => !window.memestream.socket.online")
    await b.evaluate(SET, [0, "offline top"])
    await b.evaluate(SET, [1, "offline bottom"])
    await a.evaluate(SET, [0, "online"])
    await asyncio.sleep(0.3)
    assert await b.evaluate(TEXT, 0) == "offline top"  # nothing from A reached B
    await contexts[1].set_offline(False)
    top = await converged([a, b], 0, ["offline top", "online"], wait_s=20)
    bottom = await converged([a, b], 1, ["offline bottom"])
    assert bottom == "offline bottom"

    # A late joiner and a reload see the merged draft, template and all.
    c = await open_draft(contexts[2], api.url, draft)
    assert await converged([a, b, c], 0, [top]) == top
    assert await c.evaluate(f"() => {state}.templateId") == "drake"
    await a.reload()
    await expect(a.locator("body")).to_have_attribute("data-ready", "true", timeout=45000)
    assert await converged([a, b, c], 1, [bottom]) == bottom
    assert await a.evaluate(f"() => {state}.filter") == "sepia"
    assert await a.evaluate(f"() => {state}.rotation") == 90
