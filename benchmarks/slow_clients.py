"""Slow clients against a real API on loopback: 1,000 connections that trickle their headers
or their body, while normal `GET /health` requests are timed.

The API runs as `memestream api` does (memestream/stack/apps.py: api/slow_clients.py's header
and body deadlines, HTTP_HEADER_TIMEOUT_S and HTTP_BODY_TIMEOUT_S at their defaults unless set).
Phases: normal requests alone (baseline), then the same while SLOW connections trickle (90 %
headers, one header line a second; 10 % a POST body, a few bytes a second). Printed: p50/p95 of
the normal requests in both phases, how many slow connections the server closed with 408 and
after how long, and how many were still open when the run gave up (timeout + 10 s).

`BENCH_SLOW_BASELINE=1` runs plain uvicorn instead (no deadlines), for comparison: the slow
connections then stay open until the run gives up. Loopback only, bounded loops.

    .venv/bin/python -m benchmarks.slow_clients
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Any

import httpx

from benchmarks._platform import store_env
from benchmarks._result import Result, emit
from domain.settings import Settings, get_settings
from memestream.stack.apps import api_command
from memestream.testing.processes import free_port, process, wait_for_http

SLOW = 1_000
BODY_SHARE = 0.1
PROBE_RATE = 50.0  # normal requests per second
BASELINE_S = 5.0
BASELINE_ONLY = os.environ.get("BENCH_SLOW_BASELINE") == "1"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def probe(url: str, seconds: float) -> tuple[list[float], int]:
    """GET /health at PROBE_RATE on one kept-alive connection: latencies (ms) and failures."""
    latencies: list[float] = []
    failures = 0
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        end = time.monotonic() + seconds
        next_at = time.monotonic()
        while time.monotonic() < end:
            started = time.perf_counter()
            try:
                response = await client.get("/health")
                if response.status_code == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failures += 1
            except httpx.HTTPError:
                failures += 1
            next_at += 1 / PROBE_RATE
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return latencies, failures


async def slow_one(port: int, body: bool, give_up_s: float) -> tuple[str, float, bool]:
    """One trickling connection: (kind, seconds until the server closed it, got a 408)."""
    kind = "body" if body else "headers"
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return kind, -1.0, False
    if body:
        writer.write(
            b"POST /api/meme/generate HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
    else:
        writer.write(b"GET /health HTTP/1.1\r\nHost: bench\r\n")

    async def trickle() -> None:
        for i in range(int(give_up_s) + 1):  # bounded: one write a second
            writer.write(b"[1,2,3," if body else f"X-Slow-{i}: {i}\r\n".encode())
            await asyncio.sleep(1.0)

    task = asyncio.create_task(trickle())
    got_408 = False
    try:
        async with asyncio.timeout(give_up_s):
            data = await reader.read(64)
            got_408 = data.startswith(b"HTTP/1.1 408")
            while data:
                data = await reader.read(4096)
        closed_after = time.monotonic() - started
    except (TimeoutError, OSError):
        closed_after = -1.0  # still open when we gave up (or reset)
    finally:
        task.cancel()
        writer.close()
    return kind, closed_after, got_408


async def slow_many(port: int, give_up_s: float) -> list[tuple[str, float, bool]]:
    bodies = int(SLOW * BODY_SHARE)
    tasks = []
    for i in range(SLOW):
        tasks.append(asyncio.create_task(slow_one(port, i < bodies, give_up_s)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # connect in batches: the listen backlog is finite
    return await asyncio.gather(*tasks)


def slow_process(port: int, give_up_s: float, out: Any) -> None:
    out.put(asyncio.run(slow_many(port, give_up_s)))


def main() -> None:
    settings: Settings = get_settings()
    header_s, body_s = settings.http_header_timeout_s, settings.http_body_timeout_s
    give_up_s = max(header_s, body_s) + 10
    port = free_port()
    env = store_env(settings) | {"API_PORT": str(port), "LOG_LEVEL": "WARNING"}
    edge = settings.model_copy(update={"api_port": port, "api_host": "127.0.0.1"})
    argv = api_command(edge, ["--no-access-log", "--backlog", "4096"])
    if BASELINE_ONLY:
        argv = [a for a in argv if a != "api.slow_clients:SlowClientTimeouts"]
        argv[argv.index("--http") + 1] = "httptools"
    url = f"http://127.0.0.1:{port}"
    print(
        f"cores {os.cpu_count()} (nproc), {SLOW:,} slow connections "
        f"({int(SLOW * BODY_SHARE)} trickle a body), header timeout {header_s:g} s, "
        f"body timeout {body_s:g} s" + (" (BASELINE: plain uvicorn)" if BASELINE_ONLY else "")
    )
    with process("bench-api-slow", argv[1:], env) as api:
        wait_for_http(f"{url}/health", api)
        base, base_fail = asyncio.run(probe(url, BASELINE_S))
        print(
            f"alone:        {len(base)} GET /health, p50 {percentile(base, 0.5):.2f} ms, "
            f"p95 {percentile(base, 0.95):.2f} ms, {base_fail} failed"
        )
        out: Any = mp.get_context("spawn").Queue()
        slow = mp.get_context("spawn").Process(target=slow_process, args=(port, give_up_s, out))
        slow.start()
        time.sleep(2.0)  # let them connect
        during, during_fail = asyncio.run(probe(url, give_up_s - 2.0))
        results: list[tuple[str, float, bool]] = out.get(timeout=give_up_s + 60)
        slow.join(timeout=30)
    print(
        f"with {SLOW:,} slow: {len(during)} GET /health, p50 {percentile(during, 0.5):.2f} ms, "
        f"p95 {percentile(during, 0.95):.2f} ms, {during_fail} failed"
    )
    figures: dict[str, str] = {}
    for kind, limit in (("headers", header_s), ("body", body_s)):
        mine = [r for r in results if r[0] == kind]
        closed = [t for _, t, _ in mine if t >= 0]
        got_408 = sum(1 for _, _, g in mine if g)
        still_open = len(mine) - len(closed)
        figure = (
            f"{len(closed)}/{len(mine)} closed ({got_408} with 408), after "
            f"min {min(closed, default=float('nan')):.1f} s / median "
            f"{statistics.median(closed) if closed else float('nan'):.1f} s / max "
            f"{max(closed, default=float('nan')):.1f} s (timeout {limit:g} s); "
            f"{still_open} still open after {give_up_s:g} s"
        )
        figures[kind] = figure
        print(f"slow {kind:7}: {figure}")
    emit(
        "slow_clients",
        [
            Result(
                target="slow_clients_health_p95",
                value=round(percentile(during, 0.95), 2),
                unit="ms",
                figure=(
                    f"GET /health p95 {percentile(during, 0.95):.1f} ms with {SLOW:,} slow "
                    f"connections (alone {percentile(base, 0.95):.1f} ms), "
                    f"{during_fail} failed; headers: {figures['headers']}; body: {figures['body']}"
                ),
                method=(
                    f"{PROBE_RATE:g}/s GET /health on one connection while {SLOW:,} loopback "
                    "connections trickle headers (90 %) or a body (10 %) once a second"
                    + (" (baseline: plain uvicorn)" if BASELINE_ONLY else "")
                ),
            )
        ],
    )


if __name__ == "__main__":
    sys.exit(main())
