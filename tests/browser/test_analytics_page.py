"""The analytics page (api/static/analytics.html, js/analytics.js) in Debian's Chromium against
real parts: events produced to Kafka, a real analytics worker writing them into a chDB folder of
its own, the real API reading it (ANALYTICS_WORKER_URL), uPlot from node_modules.

Events are dated minutes in the past (one minute per batch), so the chart points under test sit
in buckets no other test writes to. The store going down is real: the worker is stopped.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from domain.events import ImageVariant, MemeRendered, MemeRequested, RenderStatus, View, Vote
from domain.ids import new_id
from domain.settings import Settings
from memestream.testing import processes
from memestream.testing.environment import environment
from producers.producer import EventProducer
from producers.roles import ANALYTICS, WORKER_ROLES
from producers.topics import MEME_RENDERED, MEME_REQUESTS, MEME_VIEWS, MEME_VOTES
from tests.browser.test_editor_and_feed import SHOTS
from tests.browser.test_security_headers import WATCH

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
# An uploaded template's id no other test renders (other tests make memes of the catalog's
# templates on the shared topics meanwhile); enough memes to stay in the top ten.
TEMPLATE = f"analytics-page-{uuid.uuid4().hex[:8]}"
PRIVATE_REDIS_DB = 11  # tests/test_rate_limit.py has 9, test_apps.py 10, trending 14-15
CHARTS = ("chart-generation", "chart-engagement", "chart-templates", "chart-latency")
VARIANTS = [ImageVariant(size="full", key="k", width=1, height=1, bytes=9, media_type="image/png")]


@contextmanager
def analytics_worker(settings: Settings, folder: Path, port: int, prefix: str) -> Iterator[None]:
    """The analytics worker on `folder` (chDB: it owns it) serving on `port`; from the topics'
    ends (its group `prefix` is pinned there before the first start). Its Redis side duties go
    to a database of its own: the memes made up here must not enter the shared recent list
    (the feed's first page), since PostgreSQL has no row for them."""
    env = environment(settings) | {
        "CLICKHOUSE_URL": f"chdb://{folder}",
        "REDIS_URL": f"{settings.redis_url.rsplit('/', 1)[0]}/{PRIVATE_REDIS_DB}",
        "WORKER_WEB_PORT": str(port - WORKER_ROLES.index(ANALYTICS.name)),
        "CONSUMER_GROUP_PREFIX": prefix,
        "KAFKA_AUTO_OFFSET_RESET": "latest",
        "ANALYTICS_FLUSH_INTERVAL_S": "0.2",
    }
    args = ["-m", "streams", "worker", "--role", ANALYTICS.name]
    with processes.process("worker-analytics-page", args, env) as proc:
        processes.wait_for_group(
            settings.kafka_bootstrap_servers, ANALYTICS.group_id_for(prefix), proc
        )
        yield


@pytest.fixture(scope="module")
def worker(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, int, str]]:
    folder = tmp_path_factory.mktemp("analytics-page-chdb")
    port = processes.free_port()
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    group = ANALYTICS.group_id_for(prefix)
    processes.pin_group_offsets(stack_settings.kafka_bootstrap_servers, group, ANALYTICS.topics)
    yield folder, port, prefix


@pytest.fixture(scope="module")
def api(stack_settings: Settings, worker: tuple[Path, int, str]) -> Iterator[str]:
    env = {"ANALYTICS_WORKER_URL": f"http://127.0.0.1:{worker[1]}"}
    with processes.memestream_api(stack_settings, "api-browser-analytics", **env) as url:
        yield url


@pytest.fixture
async def page(browser: Browser, api: str) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.add_init_script(WATCH)  # the page runs under its CSP: nothing is blocked
    page = await context.new_page()
    yield page
    await context.close()


def minute_ago(n: int) -> datetime:
    """Ten seconds into the minute that started `n` minutes ago."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=n) + timedelta(seconds=10)


async def produce(
    settings: Settings, at: datetime, *, memes: int, failed: int, views: int, ups: int, downs: int
) -> list[float]:
    """`memes` requests at `at`, all rendered but `failed`, and views and votes of the first;
    returns the render times (ms)."""
    producer = EventProducer(settings, client_id="test-analytics-page")
    times: list[float] = []
    try:
        requests = [
            MemeRequested(meme_id=new_id(), template_id=TEMPLATE, texts=["x"], occurred_at=at)
            for _ in range(memes)
        ]
        for i, request in enumerate(requests):
            ok = i >= failed
            ms = 100.0 + 20 * i
            times += [ms] if ok else []
            await producer.send(MEME_REQUESTS.name, request)
            await producer.send(
                MEME_RENDERED.name,
                MemeRendered.for_request(
                    request,
                    status=RenderStatus.RENDERED if ok else RenderStatus.FAILED,
                    variants=VARIANTS if ok else [],
                    render_ms=ms if ok else 0.0,
                    error=None if ok else "bad",
                    occurred_at=at,
                ),
            )
        meme = requests[0].meme_id
        for _ in range(views):
            await producer.send(MEME_VIEWS.name, View(meme_id=meme, occurred_at=at))
        for i in range(ups + downs):
            vote = Vote(meme_id=meme, user_id=f"u{i}", value=1 if i < ups else -1, occurred_at=at)
            await producer.send(MEME_VOTES.name, vote)
    finally:
        producer.close()
    return times


def wait_for_api(api: str, at: datetime, requested: int, timeout: float = 30.0) -> None:
    """Until the API's generation rate shows `requested` memes in `at`'s minute."""
    bucket = at.replace(second=0).isoformat()
    deadline = time.monotonic() + timeout
    while True:
        rows = httpx.get(f"{api}/api/analytics/generation-rate", params={"minutes": 60}).json()
        if any(r["bucket"] == bucket and r["requested"] == requested for r in rows["rows"]):
            return
        assert time.monotonic() < deadline, f"the API never showed {bucket}: {rows}"
        time.sleep(0.3)


async def table(page: Page, testid: str) -> dict[str, list[str]]:
    """A chart's plotted data (its table: first cell -> the others)."""
    rows = (
        await page.get_by_test_id(testid)
        .locator("details tbody tr")
        .evaluate_all("(rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))")
    )
    return {r[0]: r[1:] for r in rows}


def iso(at: datetime) -> str:
    return at.replace(second=0).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def plotted(
    page: Page, testid: str, key: str, shows: Callable[[list[str]], bool] = bool
) -> list[str]:
    """The row `key` of a chart's table, once the page has plotted what `shows` accepts (the
    hour's buckets are there from the first load, as zeros)."""
    deadline = time.monotonic() + 20
    while True:
        row = (await table(page, testid)).get(key, [])
        if row and shows(row):
            return row
        assert time.monotonic() < deadline, f"{testid} never plotted {key}: {row}"
        await asyncio.sleep(0.25)


def equals(expected: list[str]) -> Callable[[list[str]], bool]:
    return lambda row: row == expected


async def test_charts_plot_the_data_refresh_live_and_say_when_the_store_is_down(
    api: str, page: Page, stack_settings: Settings, worker: tuple[Path, int, str]
) -> None:
    folder, port, prefix = worker
    started = datetime.now(UTC)
    with analytics_worker(stack_settings, folder, port, prefix):
        # Nothing yet: every chart says so.
        await page.goto(f"{api}/analytics?minutes=15")
        await expect(page.locator("body")).to_have_attribute("data-refreshed", re.compile(r"\d"))
        for testid in CHARTS:
            await expect(page.get_by_test_id(testid).locator(".empty")).to_be_visible()
        await expect(page.get_by_test_id("analytics-error")).to_be_hidden()
        await expect(page.locator(".uplot canvas")).to_have_count(4)

        first = minute_ago(20)
        counts = {"memes": 20, "failed": 2, "views": 7, "ups": 3, "downs": 2}
        latencies = await produce(stack_settings, first, **counts)
        wait_for_api(api, first, 20)
        await page.get_by_test_id("range").select_option("60")  # 20 minutes ago is in the hour
        await plotted(page, "chart-generation", iso(first), equals(["20", "18", "2"]))
        await plotted(page, "chart-engagement", iso(first), equals(["7", "3", "2"]))
        await plotted(page, "chart-templates", TEMPLATE, equals(["18"]))
        latency = await plotted(page, "chart-latency", iso(first), lambda row: row[0] != "")
        p50, p95, p99 = (float(v) for v in latency)
        assert latencies == [100.0 + 20 * i for i in range(2, 20)]  # 140..480 ms
        # Percentiles from the 5 %-wide histogram buckets (sinks/clickhouse/finalize.py).
        assert 290 <= p50 <= 330 and 440 <= p95 <= 505 and p95 <= p99 <= 505
        for testid in CHARTS:
            await expect(page.get_by_test_id(testid).locator(".empty")).to_be_hidden()
        # The hour is drawn whole, one bucket a minute: zeros where nothing happened (before
        # this test: other tests may make memes on the shared topics meanwhile), gaps in the
        # latency (no renders, no percentile).
        generation = await table(page, "chart-generation")
        assert 60 <= len(generation) <= 62
        before = [k for k in generation if k < iso(started) and k != iso(first)]
        assert len(before) >= 35 and {tuple(generation[k]) for k in before} == {("0", "0", "0")}
        latency_rows = await table(page, "chart-latency")
        assert latency_rows.keys() == generation.keys()
        assert {tuple(latency_rows[k]) for k in before} == {("", "", "")}

        # New data appears without a reload.
        loads = int(await page.locator("body").get_attribute("data-refreshed") or 0)
        second = minute_ago(10)
        await produce(stack_settings, second, memes=2, failed=0, views=1, ups=1, downs=0)
        await plotted(page, "chart-generation", iso(second), equals(["2", "2", "0"]))
        await plotted(page, "chart-engagement", iso(second), equals(["1", "1", "0"]))
        await plotted(page, "chart-templates", TEMPLATE, equals(["20"]))
        assert int(await page.locator("body").get_attribute("data-refreshed") or 0) > loads
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / "analytics.png"), full_page=True)
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.screenshot(path=str(SHOTS / "analytics-phone.png"), full_page=True)

    # The worker is gone: the API answers 503 and the page says the store is down, keeping
    # the last data on screen.
    error = page.get_by_test_id("analytics-error")
    await expect(error).to_be_visible(timeout=20000)
    await expect(error).to_contain_text("analytics store is down")
    await expect(error).to_have_attribute("data-status", "503")
    await expect(page.get_by_test_id("analytics-status")).to_have_text("store down")
    assert (await table(page, "chart-generation"))[iso(first)] == ["20", "18", "2"]
    await page.screenshot(path=str(SHOTS / "analytics-store-down.png"))

    # Back up (the same chDB folder): the banner goes and the data is still there.
    with analytics_worker(stack_settings, folder, port, prefix):
        await expect(error).to_be_hidden(timeout=30000)
        await plotted(page, "chart-generation", iso(second), equals(["2", "2", "0"]))
    assert await page.evaluate("window.__csp") == []
