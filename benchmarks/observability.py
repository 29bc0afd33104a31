"""Per-request cost of the API's telemetry: RED metrics + request id, and the server span.

Calls a one-route FastAPI app through ASGI directly (no sockets, no server) so only the
middlewares differ: bare, + `HttpMetricsMiddleware`, + `ServerSpanMiddleware` (the API's
set-up), and FastAPI's own tracing instead of ours, for comparison. Rounds are interleaved
and the median of each is kept, since the machine is shared. Also the cost of the Kafka
header work `EventProducer.send` adds per event (a PRODUCER span, request id, traceparent).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from api.http_metrics import HttpMetricsMiddleware
from api.observability import TELEMETRY, ServerSpanMiddleware
from benchmarks._result import emit
from domain.logs import bound_request_id, request_id_headers
from domain.tracing import produce_span, setup_tracing

QUICK = os.environ.get("BENCH_QUICK") == "1"
REQUESTS = 2_000 if QUICK else 10_000
ROUNDS = 3 if QUICK else 7
SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/api/meme/abc",
    "raw_path": b"/api/meme/abc",
    "query_string": b"",
    "headers": [(b"host", b"bench")],
    "scheme": "http",
    "http_version": "1.1",
    "server": ("bench", 80),
    "client": ("127.0.0.1", 1),
    "root_path": "",
}


def make(variant: str) -> FastAPI:
    native = variant == "fastapi-native"
    app = FastAPI(telemetry={"operation_spans": False} if native else TELEMETRY)

    @app.get("/api/meme/{meme_id}")
    async def meme(meme_id: str) -> dict[str, str]:
        return {"id": meme_id}

    if variant == "span":
        app.add_middleware(ServerSpanMiddleware)
    if variant != "bare":
        app.add_middleware(HttpMetricsMiddleware)
    return app


async def per_request_us(app: FastAPI, n: int) -> float:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    started = time.perf_counter()
    for _ in range(n):
        await app(dict(SCOPE), receive, send)
    return (time.perf_counter() - started) / n * 1e6


async def per_call_us(fn: Callable[[], Awaitable[None]], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - started) / n * 1e6


async def produce_headers() -> None:
    with bound_request_id("bench"), produce_span("meme.requests", request_id_headers([])):
        pass


async def main() -> None:
    setup_tracing(exporter="none", service_name="bench")
    variants = ("bare", "red", "span", "fastapi-native")
    apps = {v: make(v) for v in variants}
    for app in apps.values():
        await per_request_us(app, 300)
    timings: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(ROUNDS):
        for v in variants:
            timings[v].append(await per_request_us(apps[v], REQUESTS))
    median = {v: statistics.median(t) for v, t in timings.items()}
    headers_us = statistics.median([await per_call_us(produce_headers, REQUESTS) for _ in range(3)])
    red = median["red"] - median["bare"]
    span = median["span"] - median["red"]
    native = median["fastapi-native"] - median["red"]
    for v in variants:
        print(f"{v:>15}: {median[v]:7.1f} us/request")
    print(
        f"RED + request id: +{red:.1f} us; server span: +{span:.1f} us (FastAPI's: +{native:.1f})"
    )
    print(f"EventProducer.send header work: {headers_us:.1f} us/event; cores {os.cpu_count()}")
    emit(
        "observability",
        [
            {
                "target": "telemetry_overhead",
                "value": round(red + span, 1),
                "unit": "us",
                "figure": (
                    f"+{red:.0f} us RED/request id, +{span:.0f} us server span per request "
                    f"(FastAPI's own +{native:.0f} us); {headers_us:.0f} us per produced event"
                ),
                "method": (
                    f"median of {ROUNDS} interleaved rounds of {REQUESTS} ASGI calls of one route, "
                    "bare vs the API's middlewares, SDK tracer with no exporter"
                ),
            }
        ],
    )


if __name__ == "__main__":
    asyncio.run(main())
