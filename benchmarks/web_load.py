"""Page load of the web app's pages: first paint and bytes transferred, in Chromium.

A private API process (the stores from the settings, rate limit off) serves the pages; each
page is opened RUNS times in a fresh browser context (cold cache) at a 390x844 phone viewport
and at 1280x800, and measured with the browser's Performance API: `first-paint` and
`first-contentful-paint` (paint timing) and the bytes transferred (`transferSize` of the
navigation plus every resource entry) once the network has been idle for half a second plus
SETTLE_S, so lazily loaded images inside the first screen are counted and those below it are
not. Prints one line per page and viewport (medians) and the RESULT line.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from dataclasses import dataclass

from playwright.async_api import Browser, async_playwright

from benchmarks._platform import store_env
from benchmarks._result import Result, emit
from domain.settings import get_settings
from memestream.testing.processes import free_port, process, wait_for_http

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PAGES = {"feed.html": "/feed", "index.html": "/", "analytics.html": "/analytics"}
VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 800)}
RUNS = 2 if os.environ.get("BENCH_QUICK") == "1" else 5
SETTLE_S = 1.0

#: What the page reports about its own load, read after the network settled.
MEASURE = """() => {
  const paint = Object.fromEntries(performance.getEntriesByType("paint")
    .map((e) => [e.name, e.startTime]));
  const entries = [...performance.getEntriesByType("navigation"),
                   ...performance.getEntriesByType("resource")];
  return {
    firstPaint: paint["first-paint"] ?? null,
    firstContentfulPaint: paint["first-contentful-paint"] ?? null,
    bytes: entries.reduce((sum, e) => sum + (e.transferSize || 0), 0),
    requests: entries.length,
    domNodes: document.getElementsByTagName("*").length,
  };
}"""


@dataclass(frozen=True, slots=True)
class Load:
    first_paint_ms: float
    fcp_ms: float
    bytes: int
    requests: int
    dom_nodes: int


async def measure(browser: Browser, url: str, viewport: tuple[int, int]) -> Load:
    context = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page = await context.new_page()
        await page.goto(url, wait_until="networkidle")
        await page.wait_for_timeout(SETTLE_S * 1000)
        m = await page.evaluate(MEASURE)
    finally:
        await context.close()
    return Load(
        first_paint_ms=m["firstPaint"] or 0.0,
        fcp_ms=m["firstContentfulPaint"] or 0.0,
        bytes=m["bytes"],
        requests=m["requests"],
        dom_nodes=m["domNodes"],
    )


async def run(api_url: str) -> list[Result]:
    results: list[Result] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            for name, path in PAGES.items():
                for label, viewport in VIEWPORTS.items():
                    await measure(browser, api_url + path, viewport)  # warms the server side
                    loads = [await measure(browser, api_url + path, viewport) for _ in range(RUNS)]
                    fp = statistics.median(x.first_paint_ms for x in loads)
                    fcp = statistics.median(x.fcp_ms for x in loads)
                    kb = statistics.median(x.bytes for x in loads) / 1024
                    reqs = statistics.median(x.requests for x in loads)
                    nodes = statistics.median(x.dom_nodes for x in loads)
                    figure = (
                        f"first paint {fp:.0f} ms, FCP {fcp:.0f} ms, {kb:,.1f} KiB in "
                        f"{reqs:.0f} requests, {nodes:.0f} DOM nodes"
                    )
                    print(f"{name:<11} {label:<8} {figure}", flush=True)
                    results.append(
                        {
                            "target": f"web_load_{name.split('.')[0]}_{label}",
                            "value": round(fp, 1),
                            "unit": "ms",
                            "figure": figure,
                            "method": (
                                f"median of {RUNS} cold loads in Chromium at "
                                f"{viewport[0]}x{viewport[1]}; Performance API paint timing "
                                "and transferSize"
                            ),
                        }
                    )
        finally:
            await browser.close()
    return results


def main() -> None:
    settings = get_settings()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with process("bench-web-api", args, store_env(settings) | {"API_PORT": str(port)}) as api:
        wait_for_http(f"{url}/health", api)
        results = asyncio.run(run(url))
    emit("web_load", results)


if __name__ == "__main__":
    main()
