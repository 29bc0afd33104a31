"""Does AI load slow the API down? `/health` and a cached `GET /api/meme/{id}` while captions run.

    .venv/bin/python -m benchmarks.ai_isolation [--seconds 30] [--captions 6] [--boxes 20]

Starts a private API (and, in a checkout that has the inference role, `python -m streams
worker --role inference`), uploads a template with `--boxes` boxes, then measures the two
probes' latency for a few seconds idle and for `--seconds` while `--captions` concurrent
clients caption that template back to back (each the moment its last answer came). Prints
p50/p95/p99 per probe and phase, the captions answered and by whom (model or heuristic), the
API's RSS before and after, the models used and `nproc`. Rate limits are off (one client IP,
as in the other benchmarks): this measures isolation, not the cost budget that would refuse
most of these captions. The script only uses what the code before the inference role had too,
so the same file measures a checkout of the old code ("before") and the new ("after").
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import psutil
import psycopg
from PIL import Image

from benchmarks._result import emit
from domain.settings import PROJECT_ROOT, get_settings
from memestream.testing.processes import free_port, process, wait_for_http
from producers.roles import INFERENCE, web_port

PASSWORD = "benchmark password 1"
INFERENCE_ROLE = PROJECT_ROOT / "streams" / "inference.py"  # absent in the code before


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]  # noqa: E731
    return {"n": len(ordered), "p50": pick(50), "p95": pick(95), "p99": pick(99)}


@contextmanager
def running(env: dict[str, str]) -> Iterator[tuple[str, int, str]]:
    """The API (url, pid) and which AI layout runs ("after": an inference worker, "before")."""
    port = free_port()
    api_args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with ExitStack() as stack:
        layout = "before"
        if INFERENCE_ROLE.exists():
            layout = "after"
            web = free_port()
            worker_env = env | {"WORKER_WEB_PORT": str(web - web_port(0, INFERENCE))}
            args = ["-m", "streams", "worker", "--role", "inference"]
            worker = stack.enter_context(process("bench-inference", args, worker_env))
            wait_for_http(f"http://127.0.0.1:{web}/health", worker, timeout=300)
        api = stack.enter_context(process("bench-api", api_args, env | {"API_PORT": str(port)}))
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", api, timeout=120)
        yield url, api.pid, layout


def upload_template(client: httpx.Client, boxes: int) -> str:
    name = f"bench{uuid.uuid4().hex[:10]}"
    credentials = {"username": name, "password": PASSWORD}
    assert client.post("/api/auth/register", json=credentials).status_code == 201
    token = client.post("/api/auth/login", json=credentials).json()["token"]
    client.cookies.clear()
    buffer = io.BytesIO()
    Image.new("RGB", (600, 40 * boxes), (70, 110, 160)).save(buffer, "PNG")
    layout = [{"x": 10, "y": 40 * i + 4, "width": 580, "height": 32} for i in range(boxes)]
    response = client.post(
        "/api/templates",
        headers={"Authorization": f"Bearer {token}"},
        data={"name": f"Tall {name}", "boxes": json.dumps(layout), "description": "a list"},
        files={"file": ("t.png", buffer.getvalue(), "image/png")},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def a_meme(client: httpx.Client, database_url: str) -> str:
    """A rendered meme (its metadata is cached); on a fresh database, a new one, which stays
    pending without a render worker and is then read from PostgreSQL (the script says so)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT id FROM memes WHERE status = 'rendered' ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    if row is not None:
        return str(row[0])
    print("no rendered meme in PostgreSQL: probing a pending one (not cached)")
    body = {"template_id": "classic", "texts": ["benchmark", "meme"]}
    accepted = client.post("/api/meme/generate", json=body)
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["meme_id"])


async def probe(url: str, meme_id: str, seconds: float) -> dict[str, list[float]]:
    """One request at a time per probe, 20 ms apart: latencies in ms."""
    found: dict[str, list[float]] = {"health": [], "meme": []}
    paths = {"health": "/health", "meme": f"/api/meme/{meme_id}"}
    end = time.monotonic() + seconds

    async def loop(name: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while time.monotonic() < end:
                started = time.perf_counter()
                response = await client.get(paths[name])
                found[name].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                await asyncio.sleep(0.02)

    await asyncio.gather(loop("health"), loop("meme"))
    return found


async def caption_load(
    url: str, template_id: str, clients: int, stop: asyncio.Event
) -> tuple[list[float], Counter[str]]:
    latencies: list[float] = []
    sources: Counter[str] = Counter()

    async def one(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            n = 0
            while not stop.is_set():
                started = time.perf_counter()
                response = await client.post(
                    "/api/meme/caption",
                    json={"template_id": template_id, "topic": f"topic {i} {n}"},
                )
                latencies.append(time.perf_counter() - started)
                sources[response.json().get("source", str(response.status_code))] += 1
                n += 1

    tasks = [asyncio.create_task(one(i)) for i in range(clients)]
    await stop.wait()
    await asyncio.gather(*tasks)  # each finishes its caption in flight
    return latencies, sources


async def measure(url: str, pid: int, template_id: str, meme_id: str, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    api = psutil.Process(pid)
    async with httpx.AsyncClient(base_url=url) as client:
        await client.get(f"/api/meme/{meme_id}")  # into the caches
    idle = await probe(url, meme_id, 5.0)
    rss_before = api.memory_info().rss / 2**20
    stop = asyncio.Event()
    load = asyncio.create_task(caption_load(url, template_id, args.captions, stop))
    loaded = await probe(url, meme_id, args.seconds)
    stop.set()
    latencies, sources = await load
    rss_after = api.memory_info().rss / 2**20
    return idle, loaded, latencies, sources, rss_before, rss_after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--captions", type=int, default=6)
    parser.add_argument("--boxes", type=int, default=20)
    args = parser.parse_args()
    if os.environ.get("BENCH_QUICK"):
        args.seconds = 10.0
    settings = get_settings()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "NATS_URL": settings.nats_url,
        "CLICKHOUSE_URL": settings.clickhouse_url,
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_ENABLED": "false",
        "INFERENCE_SUBJECT": f"bench-{uuid.uuid4().hex[:8]}.inference",
        "HF_HUB_OFFLINE": "1",
    }
    models = "packaged (SmolLM2-135M captions, MiniLM-L6)"
    try:
        import transformers  # noqa: F401
    except ImportError:
        models = "none installed: heuristics only"
    with running(env) as (url, pid, layout):
        with httpx.Client(base_url=url, timeout=60) as client:
            template_id = upload_template(client, args.boxes)
            meme_id = a_meme(client, settings.database_url)
        idle, loaded, latencies, sources, rss0, rss1 = asyncio.run(
            measure(url, pid, template_id, meme_id, args)
        )
    cores = os.cpu_count() or 1
    print(
        f"layout: {layout} (AI {'in an inference worker' if layout == 'after' else 'in the API'})"
    )
    print(f"nproc: {cores}; models: {models}; template: {args.boxes} boxes")
    results = []
    for phase, found in (("idle", idle), (f"{args.captions} captions", loaded)):
        for name, values in found.items():
            p = percentiles(values)
            figure = f"p50 {p['p50']:.1f} / p95 {p['p95']:.1f} / p99 {p['p99']:.1f} ms"
            load = f"{args.captions} clients caption a {args.boxes}-box template ({layout})"
            print(
                f"{phase:>12} {name:>6}: n={p['n']:5d} p50 {p['p50']:7.1f} ms"
                f"  p95 {p['p95']:7.1f} ms  p99 {p['p99']:7.1f} ms"
            )
            if phase != "idle":
                results.append(
                    {
                        "target": f"ai_isolation_{name}_p95_{layout}",
                        "value": round(p["p95"], 1),
                        "unit": "ms",
                        "figure": figure,
                        "method": f"{name} every 20 ms for {args.seconds:g} s while {load}",
                    }
                )
    mean = statistics.fmean(latencies) if latencies else 0.0
    print(
        f"captions answered: {len(latencies)} (mean {mean:.2f} s, sources {dict(sources)})"
        f"; API RSS {rss0:.0f} -> {rss1:.0f} MiB"
    )
    emit("ai_isolation", results)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
