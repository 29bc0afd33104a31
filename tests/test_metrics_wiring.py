"""Every series a dashboard, an alert rule or an autoscaler reads is really recorded.

Why: test_dashboards.py and test_manifests.py check that those queries name declared metrics,
which store_up, live_connections, feed_delivery_seconds and queue_depth{queue="inference"}
always were, while nothing recorded them: the panels stayed empty, MemestreamStoreDown could
never fire and the HPA and KEDA read nothing. Here the queries are checked against what the
processes expose after a little real traffic:

- the API, a uvicorn subprocess: every referenced series it exports has a sample in its
  `/metrics` (label values the queries match on included), and the ones this traffic drives
  (connections, delivery, store probes, a view-queue overflow) have the values it implies;
- the render worker, a subprocess: its series after a render and a poison message, the DLQ
  counter labelled with the same full group id as `events_consumed` and the DLQ header;
- every other worker series (trending, analytics, inference): some production code records
  it (the metric object, or a domain.metrics helper using it, is used outside domain.metrics).
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
import yaml
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

from domain import metrics
from domain.ai.batching import WAITING, BatcherClosed, MicroBatcher
from domain.settings import Settings
from producers.producer import EventProducer
from producers.topics import MEME_REQUESTS
from streams.dlq import UNKNOWN_GROUP, dead_letter
from tests.feed_support import feed_api, sse_events

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("api", "domain", "producers", "sinks", "streams")
GENERATE = {"template_id": "classic", "texts": ["EVERY PANEL", "HAS DATA"]}

#: Series only workers export; the API must export every other referenced series.
WORKER_SERIES = {
    "memestream_consumer_lag",
    "memestream_events_consumed_total",
    "memestream_event_processing_seconds_bucket",
    "memestream_dlq_messages_total",
    "memestream_memes_generated_total",
    "memestream_render_duration_seconds_bucket",
    "memestream_generation_latency_seconds_bucket",
    "memestream_trending_freshness_seconds_bucket",
    "memestream_inference_duration_seconds_bucket",
    "memestream_inference_fallbacks_total",
}
#: Of those, what one render and one poison message make the render worker expose.
RENDER_SERIES = {
    "memestream_consumer_lag",
    "memestream_events_consumed_total",
    "memestream_event_processing_seconds_bucket",
    "memestream_dlq_messages_total",
    "memestream_memes_generated_total",
    "memestream_render_duration_seconds_bucket",
    "memestream_generation_latency_seconds_bucket",
}
#: Labels Prometheus' scrape jobs add (deploy/prometheus/), not the metrics themselves.
TARGET_LABELS = {"component", "namespace", "pod", "job", "instance"}


# --- what the queries read -------------------------------------------------------------------
SERIES = re.compile(r"\b(memestream_[a-z0-9_]+)\s*(\{[^}]*\})?")
EQUALS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=(?![~=])\s*"([^"]*)"')


def queries() -> list[tuple[str, str]]:
    """(where, PromQL or series name) of every dashboard panel, alert and autoscaler signal."""
    out: list[tuple[str, str]] = []
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        stack = list(json.loads(path.read_text())["panels"])
        while stack:
            panel = stack.pop()
            stack.extend(panel.get("panels", []))
            for target in panel.get("targets", []):
                if "expr" in target:
                    out.append((f"{path.name}: {panel['title']}", target["expr"]))
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    for group in alerts["groups"]:
        out.extend((f"alert {r['alert']}", r["expr"]) for r in group["rules"])
    adapter = yaml.safe_load((ROOT / "deploy/prometheus/adapter-rules.yaml").read_text())
    out.extend(("prometheus-adapter", rule["seriesQuery"]) for rule in adapter["rules"])
    strimzi = ROOT / "deploy/strimzi"
    for name in ("scaling.yaml", "workloads.yaml"):
        for doc in yaml.safe_load_all((strimzi / name).read_text()):
            if not doc:
                continue
            kind, spec = doc["kind"], doc.get("spec", {})
            if kind == "ScaledObject":
                out.extend(
                    (f"KEDA {doc['metadata']['name']}", t["metadata"]["query"])
                    for t in spec["triggers"]
                    if t["type"] == "prometheus"
                )
            elif kind == "HorizontalPodAutoscaler":
                out.extend(
                    (f"HPA {doc['metadata']['name']}", m["pods"]["metric"]["name"])
                    for m in spec["metrics"]
                    if m["type"] == "Pods"
                )
    return out


def referenced() -> dict[str, set[tuple[str, str]]]:
    """Series name -> the `label="value"` matchers queries put on it (empty: any sample)."""
    out: dict[str, set[tuple[str, str]]] = {}
    for _, query in queries():
        for name, matchers in SERIES.findall(query):
            out.setdefault(name, set()).update(EQUALS.findall(matchers or ""))
    return out


def test_the_queries_name_the_series_this_test_expects() -> None:
    series = referenced()
    for name in (
        "memestream_store_up",
        "memestream_live_connections",
        "memestream_feed_delivery_seconds_bucket",
        "memestream_queue_depth",
        "memestream_trending_freshness_seconds_bucket",
    ):
        assert name in series, name
    assert ("queue", "inference") in series["memestream_queue_depth"]
    assert set(series) <= set(metrics.series_labels()), set(series) - set(metrics.series_labels())
    assert set(series) >= WORKER_SERIES, WORKER_SERIES - set(series)


# --- scraping ----------------------------------------------------------------------------------
def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the matching samples (0 when none)."""
    return sum(
        v
        for n, got, v in samples(text)
        if n == name and all(got.get(k) == want for k, want in labels.items())
    )


def missing_series(text: str, names: set[str]) -> list[str]:
    """The referenced series (and matched label values) without a sample in `text`."""
    wanted = referenced()
    known = metrics.series_labels()
    have = samples(text)
    problems = []
    for name in sorted(names):
        matchers = {(k, v) for k, v in wanted[name] if k not in TARGET_LABELS and k in known[name]}
        if not any(n == name and matchers <= set(labels.items()) for n, labels, _ in have):
            problems.append(f"{name}{dict(matchers) or ''}")
    return problems


def wait_for_metrics(url: str, problems: Any, timeout_s: float, what: str) -> str:
    """The first scrape of `url` in which `problems(text)` finds none."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = httpx.get(url, timeout=5).text
        found = problems(text)
        if not found:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {found} after {timeout_s} s")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[str]:
    """The API under uvicorn: a view queue of one message (a burst of views overflows it) and
    fast heartbeats (so a test reading the feed never blocks long)."""
    env = {"VIEW_QUEUE_SIZE": "1", "FEED_HEARTBEAT_S": "0.5", "WORKER_ID": "api-metrics"}
    with feed_api(stack_settings, "api-metrics-wiring", **env) as url:
        yield url


async def _drive_api(api: str) -> tuple[str, str]:
    """Connections on both transports, a generation the render worker renders and the feed
    delivers, then a burst of reads of it. Returns the meme id and a scrape taken while both
    connections were open."""
    ws_url = api.replace("http://", "ws://") + "/api/feed/ws"
    async with (
        httpx.AsyncClient(base_url=api, timeout=30) as client,
        websockets.connect(ws_url) as ws,  # permessage-deflate: the connection task writes
        client.stream("GET", "/api/feed/stream?channels=new") as sse,
    ):
        await ws.send(json.dumps({"type": "subscribe", "channels": ["new"], "ref": "s"}))
        events = sse_events(sse)
        async with asyncio.timeout(10):
            while (await anext(events)).event != "hello":
                pass
            while json.loads(await ws.recv())["type"] != "subscribed":
                pass
        accepted = await client.post("/api/meme/generate", json=GENERATE)
        assert accepted.status_code == 202, accepted.text
        meme_id = accepted.json()["meme_id"]
        async with asyncio.timeout(90):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "event" and frame["data"]["meme_id"] == meme_id:
                    break
        async with asyncio.timeout(10):
            while True:
                body = (await client.get("/metrics")).text
                if value(body, "memestream_feed_delivery_seconds_count", transport="websocket"):
                    break
                await asyncio.sleep(0.1)
        while_open = body
        # Views: the first waits in the one-message queue (linger 50 ms), the rest overflow it.
        reads = await asyncio.gather(*(client.get(f"/api/meme/{meme_id}") for _ in range(20)))
        assert all(r.status_code == 200 for r in reads), [r.status_code for r in reads]
        assert (await client.get(f"/api/meme/{meme_id}")).status_code == 200  # a cache hit
    return meme_id, while_open


@pytest.mark.services
@pytest.mark.e2e
def test_api_and_render_worker_export_every_series_the_queries_read(
    api: str, render_worker: int, stack_settings: Settings
) -> None:
    meme_id, while_open = asyncio.run(_drive_api(api))

    # Both connections counted while open, and the WebSocket's delivery of the meme timed.
    assert value(while_open, "memestream_live_connections", transport="sse") >= 1
    assert value(while_open, "memestream_live_connections", transport="websocket") >= 1
    assert value(while_open, "memestream_feed_delivery_seconds_count", transport="websocket") >= 1

    stores = {"postgres", "redis", "kafka", "storage"}
    if stack_settings.clickhouse_url.startswith("http"):
        stores.add("clickhouse")

    def probed_and_closed(text: str) -> list[str]:
        down = [f"{s} not up" for s in stores if value(text, "memestream_store_up", store=s) != 1]
        open_ = [
            f"{t} still open"
            for t in ("sse", "websocket")
            if value(text, "memestream_live_connections", transport=t)
        ]
        return down + open_

    body = wait_for_metrics(
        f"{api}/metrics", probed_and_closed, 20, "stores up and both connections closed"
    )
    assert value(body, "memestream_produce_errors_total", topic="meme.views", reason="queue_full")
    assert value(body, "memestream_cache_hits_total") and value(
        body, "memestream_cache_misses_total"
    )
    api_series = set(referenced()) - WORKER_SERIES
    assert missing_series(body, api_series) == [], "the API does not export these"

    # The render worker: the meme above, then a message it cannot decode.
    async def poison() -> None:
        producer = EventProducer(stack_settings, client_id="test-metrics-wiring")
        try:
            await producer.send_raw(MEME_REQUESTS.name, meme_id.encode(), b"\x00not avro")
        finally:
            await asyncio.to_thread(producer.close)

    asyncio.run(poison())
    worker = wait_for_metrics(
        f"http://127.0.0.1:{render_worker}/metrics",
        lambda text: (
            missing_series(text, RENDER_SERIES | {"memestream_queue_depth"})
            + ["no dead letter"] * (not value(text, "memestream_dlq_messages_total"))
        ),
        60,
        "the render worker's series (KEDA's inference queue included)",
    )
    consumed = {
        labels["group"]
        for name, labels, _ in samples(worker)
        if name == "memestream_events_consumed_total" and labels["topic"] == MEME_REQUESTS.name
    }
    dead = {
        labels["group"]
        for name, labels, _ in samples(worker)
        if name == "memestream_dlq_messages_total"
    }
    lagging = {
        labels["group"] for name, labels, _ in samples(worker) if name == "memestream_consumer_lag"
    }
    (group,) = consumed
    assert group.endswith("-render") and group.startswith("test-"), "the full group id"
    assert dead == {group} and lagging == {group}


# --- worker series recorded somewhere ------------------------------------------------------------
def _metric_objects(series: str) -> set[str]:
    return {
        name
        for name, obj in vars(metrics).items()
        if isinstance(obj, Counter | Gauge | Histogram) and series in metrics.metric_series(obj)
    }


def _helpers(objects: set[str]) -> set[str]:
    """Functions and classes of domain.metrics that use one of `objects`, directly or through
    another of them (`observe_http` -> the HTTP metrics, which api/http_metrics.py calls)."""
    tree = ast.parse((ROOT / "domain/metrics.py").read_text())
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    found: set[str] = set()
    while True:
        using = objects | found
        more = {
            node.name
            for node in defs
            if any(isinstance(n, ast.Name) and n.id in using for n in ast.walk(node))
        }
        if more <= found:
            return found
        found |= more


@cache
def _uses() -> dict[str, set[str]]:
    """Module path -> every name and attribute it uses (imports alone do not count)."""
    out = {}
    for package in SOURCES:
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "domain/metrics.py":
                continue
            tree = ast.parse(path.read_text())
            names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
            out[str(path.relative_to(ROOT))] = names
    return out


def recorded_in(series: str) -> list[str]:
    objects = _metric_objects(series)
    assert objects, f"{series} is no metric of domain.metrics"
    recorders = objects | _helpers(objects)
    return sorted(path for path, names in _uses().items() if names & recorders)


@pytest.mark.parametrize(
    "series",
    sorted(WORKER_SERIES - RENDER_SERIES),
)
def test_worker_series_are_recorded_by_some_code(series: str) -> None:
    assert recorded_in(series), f"{series} is declared, and read by a query, but never recorded"


def test_the_api_series_are_recorded_by_some_code() -> None:
    """The subprocess test shows samples; this shows each comes from code, not only from
    being created at 0 (rate_limited is, on purpose, and is recorded by api/ratelimit.py)."""
    for series in sorted(set(referenced()) - WORKER_SERIES):
        assert recorded_in(series), series


# --- the pieces, without services ----------------------------------------------------------------
class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    async def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None
    ) -> None:
        self.sent.append((topic, key, value, list(headers or ())))


async def test_dead_letter_counts_and_names_the_group() -> None:
    producer = FakeProducer()
    labels = {"topic": "meme.votes", "reason": "ValueError"}
    counted = metrics.DLQ_MESSAGES.labels(group="memestream-trending", **labels)
    unknown = metrics.DLQ_MESSAGES.labels(group=UNKNOWN_GROUP, **labels)
    before, before_unknown = counted._value.get(), unknown._value.get()
    common: dict[str, Any] = {"topic": "meme.votes", "partition": 2, "offset": 7, "key": b"k"}
    await dead_letter(
        producer,  # type: ignore[arg-type]
        ValueError("bad"),
        value=b"v",
        headers=[("x", b"1")],
        group="memestream-trending",
        **common,
    )
    await dead_letter(producer, ValueError("bad"), value=b"v", **common)  # type: ignore[arg-type]
    (topic, key, value_, headers), (_, _, _, older) = producer.sent
    assert (topic, key, value_) == ("meme.votes.dlq", b"k", b"v")
    assert dict(headers)["dlq.consumer.group"] == b"memestream-trending"
    assert dict(headers)["x"] == b"1" and dict(headers)["dlq.original.offset"] == b"7"
    assert dict(older)["dlq.consumer.group"] == UNKNOWN_GROUP.encode()
    assert counted._value.get() == before + 1
    assert unknown._value.get() == before_unknown + 1


async def test_waiting_inference_items_are_the_queue_depth() -> None:
    started = WAITING._value.get()
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow(items: Any) -> list[int]:
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)
        return [len(str(i)) for i in items]

    one = MicroBatcher(slow, max_batch=1, max_wait_s=0)
    two = MicroBatcher(slow, max_batch=1, max_wait_s=0)
    calls = [asyncio.create_task(b.submit(i)) for b in (one, two) for i in range(3)]
    await asyncio.sleep(0.1)  # each collector took one item into its running batch
    assert WAITING._value.get() == started + 4, "two batchers' queues add up"
    release.set()
    assert await asyncio.gather(*calls) == [1, 1, 1, 1, 1, 1]
    assert WAITING._value.get() == started
    await one.close()
    await two.close()

    # Closing drops what still waits, and the gauge with it.
    release.clear()
    three = MicroBatcher(slow, max_batch=1, max_wait_s=0)
    pending = [asyncio.create_task(three.submit(i)) for i in range(2)]
    await asyncio.sleep(0.1)
    assert WAITING._value.get() == started + 1
    await three.close()
    assert WAITING._value.get() == started
    release.set()
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert all(isinstance(r, BatcherClosed) for r in results), results
