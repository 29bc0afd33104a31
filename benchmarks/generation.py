"""Image generation: latency from POST to image served, and end-to-end throughput.

    .venv/bin/python -m benchmarks.generation [--api URL] [--rate 3000] [--duration 30]

Without `--api` it starts a private API and render worker on the configured stores
(benchmarks/_platform.py). Latency: 100 requests sent open-loop at 5/s; each is timed from
its scheduled send until `GET /api/meme/{id}/image` returns the image (status polled every
25 ms). Throughput: the loadgen replays a generation-only trace at `--rate` requests/min
through the REST API; memes/min = rendered memes / (last `rendered_at` in PostgreSQL - the
first send), i.e. request-to-persisted end to end. The same trace is then produced straight
into Kafka to measure the render worker's capacity without the API.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import time
from typing import Any

import httpx
import psycopg

from benchmarks._platform import platform
from benchmarks._result import Result, emit
from domain.settings import Settings, get_settings
from loadgen.histograms import LatencyHistogram
from loadgen.kafka_target import KafkaTarget
from loadgen.replay import replay
from loadgen.rest_target import RestTarget
from loadgen.scenarios import Phase, generate, get_scenario

POLL_S = 0.025


async def _until_served(client: httpx.AsyncClient, meme_id: str, limit_s: float = 60.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        body = (await client.get(f"/api/meme/{meme_id}")).json()
        if body.get("status") == "failed":
            return False
        if body.get("status") == "rendered":
            image = await client.get(f"/api/meme/{meme_id}/image")
            if image.status_code == 200 and image.content:
                return True
        await asyncio.sleep(POLL_S)
    return False


async def measure_latency(api_url: str, n: int, rate: float) -> tuple[LatencyHistogram, int]:
    hist = LatencyHistogram()
    failures = 0
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=api_url, timeout=30, limits=limits) as client:

        async def one(i: int, intended: float) -> None:
            nonlocal failures
            response = await client.post(
                "/api/meme/generate",
                json={"template_id": "drake", "texts": ["BENCHMARKS", f"REQUEST {i}"]},
            )
            if response.status_code != 202:
                failures += 1
                return
            if await _until_served(client, response.json()["meme_id"]):
                hist.record(loop.time() - intended)
            else:
                failures += 1

        start = loop.time() + 0.1
        tasks = []
        for i in range(n):
            intended = start + i / rate
            await asyncio.sleep(max(0.0, intended - loop.time()))
            tasks.append(asyncio.create_task(one(i, intended)))
        await asyncio.gather(*tasks)
    return hist, failures


def _persisted(settings: Settings, ids: list[str]) -> tuple[int, int, float]:
    """(rendered, failed, epoch seconds of the last rendered_at)."""
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            """SELECT count(*) FILTER (WHERE status = 'rendered'),
                      count(*) FILTER (WHERE status = 'failed'),
                      EXTRACT(EPOCH FROM max(rendered_at))
               FROM memes WHERE id = ANY(%s::uuid[])""",
            (ids,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), float(row[2] or 0.0)


async def measure_throughput(
    api_url: str | None,
    settings: Settings,
    per_min: float,
    duration_s: float,
    drain_s: float = 300,
) -> dict[str, Any]:
    """Through the REST API at `api_url`, or straight into Kafka when it is None."""
    users = max(1, round(per_min / 60))
    scenario = dataclasses.replace(
        get_scenario("generation"),
        phases=(Phase(duration_s, users, users),),
        rate_per_user=per_min / 60 / users,
    )
    records = list(generate(scenario, seed=42))
    target = RestTarget(api_url, timeout_s=30) if api_url else KafkaTarget(settings)
    first_sent = time.time()
    result = await replay(records, target, speed=1.0)
    ids = result.stats.created
    generate_stats = result.stats.actions.get("generate")
    deadline = time.monotonic() + drain_s
    rendered = failed = 0
    last = first_sent
    while time.monotonic() < deadline:
        rendered, failed, last = await asyncio.to_thread(_persisted, settings, ids)
        if rendered + failed >= len(ids):
            break
        await asyncio.sleep(1.0)
    span = max(0.0, last - first_sent)
    return {
        "offered": len(records),
        "accepted": len(ids),
        "rendered": rendered,
        "failed": failed,
        "span_s": span,
        "memes_per_min": rendered / span * 60 if span else 0.0,
        "accept_p95_s": generate_stats.latency.percentile(95) if generate_stats else 0.0,
        "errors": result.stats.errors,
        "outcomes": {
            "statuses": dict(generate_stats.statuses) if generate_stats else {},
            "errors": dict(generate_stats.error_samples) if generate_stats else {},
        },
    }


async def warm_up(api_url: str, n: int = 6) -> None:
    """Render a few memes first: the worker's process pool and models load lazily."""
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:
        for i in range(n):
            response = await client.post(
                "/api/meme/generate", json={"template_id": "drake", "texts": ["WARM", f"UP {i}"]}
            )
            if response.status_code == 202:
                await _until_served(client, response.json()["meme_id"], limit_s=120)


async def run(api_url: str, settings: Settings, args: argparse.Namespace) -> list[Result]:
    await warm_up(api_url)
    hist, failures = await measure_latency(api_url, args.requests, args.request_rate)
    tp = await measure_throughput(api_url, settings, args.rate, args.duration)
    direct = await measure_throughput(None, settings, args.rate, args.duration)
    cores = os.cpu_count() or 1
    print(
        f"latency over {hist.count} memes ({failures} failed): p50 {hist.percentile(50):.3f} s, "
        f"p95 {hist.percentile(95):.3f} s, p99 {hist.percentile(99):.3f} s, max {hist.max():.3f} s"
    )
    print(
        f"throughput: offered {tp['offered']} at {args.rate:g}/min for {args.duration:g} s, "
        f"accepted {tp['accepted']}, rendered {tp['rendered']}, failed {tp['failed']} "
        f"in {tp['span_s']:.1f} s -> {tp['memes_per_min']:,.0f} memes/min "
        f"(accept p95 {tp['accept_p95_s'] * 1000:.0f} ms); cores: {cores}; {tp['outcomes']}"
    )
    print(
        f"render pipeline alone (Kafka in): {direct['rendered']} rendered in "
        f"{direct['span_s']:.1f} s -> {direct['memes_per_min']:,.0f} memes/min"
    )
    return [
        {
            "target": "generation_p95",
            "value": round(hist.percentile(95), 3),
            "unit": "s",
            "figure": f"p50 {hist.percentile(50):.2f} s, p95 {hist.percentile(95):.2f} s "
            f"({hist.count} memes, {failures} failed)",
            "method": f"{args.requests} POST /api/meme/generate open-loop at "
            f"{args.request_rate:g}/s after a warm-up, timed until GET .../image served it "
            f"(25 ms polling); 1 render worker with default settings (AI moderation "
            f"{'on' if settings.ai_enabled else 'off'})",
        },
        {
            "target": "generation_throughput",
            "value": round(tp["memes_per_min"]),
            "unit": "memes/min",
            "figure": f"{tp['memes_per_min']:,.0f} memes/min ({tp['rendered']} rendered of "
            f"{tp['accepted']} accepted at an offered {args.rate:g}/min)",
            "method": f"loadgen open-loop generation trace through the REST API for "
            f"{args.duration:g} s; rendered / (last rendered_at in PostgreSQL - first send); "
            "API + 1 render worker on this machine",
        },
        {
            "target": "generation_throughput",
            "value": round(direct["memes_per_min"]),
            "unit": "memes/min",
            "figure": f"{direct['memes_per_min']:,.0f} memes/min without the API "
            f"({direct['rendered']} rendered of {direct['accepted']} produced)",
            "method": "the same trace produced straight into meme.requests by the loadgen's "
            "Kafka target: the render worker's capacity alone",
        },
    ]


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", help="a running API (with its render worker) to measure")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--request-rate", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=3000.0, help="offered requests/min")
    parser.add_argument("--duration", type=float, default=10.0 if quick else 30.0)
    parser.add_argument("--workers", type=int, default=1, help="render workers to start")
    args = parser.parse_args()
    settings = get_settings()
    if args.api:
        results = asyncio.run(run(args.api, settings, args))
    else:
        with platform(settings, workers=args.workers) as running:
            results = asyncio.run(run(running.api_url, settings, args))
    emit("generation", results)


if __name__ == "__main__":
    main()
