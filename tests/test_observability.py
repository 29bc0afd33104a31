"""Metrics, request ids, JSON logs and traces, wired through the running code on the real stack.

In-process: the API app (TestClient) with an in-memory span exporter on the process's tracer
provider, real Kafka, and the render pipeline called on the consumed message. Subprocesses:
the session's API (uvicorn) and render worker, for the worker's `/metrics` and the request id
that travels through Kafka into the worker's JSON logs.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic
from fastapi.testclient import TestClient
from faust.types import TP
from faust.types import Message as FaustMessage
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from domain.events import MemeRequested, View, Vote
from domain.ids import new_id
from domain.logs import REQUEST_ID_HEADER, JsonFormatter, bound_request_id
from domain.metrics import CONSUMER_LAG
from domain.settings import PROJECT_ROOT, Settings
from domain.tracing import (
    MAX_BATCH_LINKS,
    batch_links,
    client_span,
    consume_batch_span,
    inject_headers,
    setup_tracing,
)
from domain.trending_windows import WINDOWS
from memestream.testing import processes
from memestream.testing.environment import environment
from producers.admin import admin_client
from producers.offsets import OffsetReader
from producers.producer import EventProducer
from producers.topics import MEME_RENDERED, MEME_REQUESTS, MEME_VIEWS, MEME_VOTES
from sinks.clickhouse import get_client
from sinks.postgres.memes import MemeRepository
from sinks.postgres.pool import create_pool
from sinks.redis import create_redis
from sinks.redis.trending import set_key
from sinks.storage import object_store
from streams.analytics import AnalyticsSink
from streams.lag import LagGauge, LagReader
from streams.render import RenderPipeline, RenderPool
from streams.trending.agents import TrendingWorker

GENERATE = {"template_id": "classic", "texts": ["ONE TRACE", "PER GENERATION"]}
#: The trending sets the batch test writes go to a Redis database of their own.
BATCH_REDIS_DB = 10


# --- helpers -----------------------------------------------------------------------------------
def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a Prometheus exposition, None when absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def series(text: str, name: str) -> list[dict[str, str]]:
    return [
        s.labels
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def json_lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            out.append(json.loads(line[start:]))
        except ValueError:
            continue
    return out


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise TimeoutError(what)


# --- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spans(stack_settings: Settings) -> Iterator[InMemorySpanExporter]:
    """Every span this process finishes, on whatever SDK provider the process uses."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = setup_tracing(stack_settings, service_name="memestream-test", exporter="none")
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


@pytest.fixture(scope="module")
def client(stack_settings: Settings, spans: InMemorySpanExporter) -> Iterator[TestClient]:
    settings = stack_settings.model_copy(
        update={"rate_limit_reads_per_minute": 1_000_000, "rate_limit_writes_per_minute": 1_000_000}
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


# --- API: RED metrics and request ids ----------------------------------------------------------
def test_requests_are_counted_under_their_route_template(client: TestClient) -> None:
    meme_id = uuid.uuid4().hex
    labels = {"method": "GET", "route": "/api/meme/{meme_id}", "status": "404"}
    before = sample(client.get("/metrics").text, "memestream_http_requests_total", **labels) or 0
    assert client.get(f"/api/meme/{meme_id}").status_code == 404
    assert client.get("/no/such/route").status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert sample(body, "memestream_http_requests_total", **labels) == before + 1
    assert sample(body, "memestream_http_request_duration_seconds_count", method="GET")
    assert sample(body, "memestream_http_requests_total", route="unmatched", status="404")
    # Raw paths never become label values: one series per route, not per id.
    assert meme_id not in body
    assert "/no/such/route" not in body


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    given = client.get("/health", headers={"X-Request-ID": "obs-test-42"})
    assert given.headers[REQUEST_ID_HEADER] == "obs-test-42"
    made = client.get("/health")
    assert len(made.headers[REQUEST_ID_HEADER]) == 32


# --- one trace: API -> Kafka -> render pipeline -> stores -> Kafka -----------------------------
def _consumer_at_end(settings: Settings, topic: str = MEME_REQUESTS.name) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"test-obs-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    assignment = []
    for partition in metadata.topics[topic].partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        assignment.append(TopicPartition(topic, partition, high))
    consumer.assign(assignment)
    return consumer


def _consume(consumer: Consumer, meme_id: str, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None and message.key() == meme_id.encode():
            return message
    raise TimeoutError(f"{meme_id} not seen")


async def _render(settings: Settings, message) -> None:  # type: ignore[no-untyped-def]
    db = create_pool(settings)
    await db.open(wait=False)
    producer = EventProducer(settings, client_id="test-observability")
    pool = RenderPool(1)
    redis = create_redis(settings)
    try:
        pipeline = RenderPipeline(
            settings, producer, MemeRepository(db), object_store(settings), pool, redis
        )
        outcome = await pipeline.handle(
            message.value(),
            key=message.key(),
            partition=message.partition(),
            offset=message.offset(),
            headers=message.headers() or [],
        )
        assert outcome is not None and outcome.status.value == "rendered", outcome
    finally:
        await asyncio.to_thread(producer.close)
        pool.close()
        await redis.aclose()
        await db.close()


def test_a_generation_is_one_trace(
    client: TestClient, spans: InMemorySpanExporter, stack_settings: Settings
) -> None:
    consumer = _consumer_at_end(stack_settings)
    try:
        spans.clear()
        accepted = client.post(
            "/api/meme/generate", json=GENERATE, headers={"X-Request-ID": "trace-me"}
        )
        assert accepted.status_code == 202, accepted.text
        meme_id = accepted.json()["meme_id"]
        message = _consume(consumer, meme_id)
    finally:
        consumer.close()
    headers = dict(message.headers() or [])
    assert headers[REQUEST_ID_HEADER] == b"trace-me"
    assert "traceparent" in headers

    # The worker's JSON log line, formatted by the handler the app's start-up installed.
    installed = next(
        h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)
    )
    buffer = io.StringIO()
    capture = logging.StreamHandler(buffer)
    capture.setFormatter(installed.formatter)
    for log_filter in installed.filters:
        capture.addFilter(log_filter)
    render_log = logging.getLogger("streams.render")
    render_log.addHandler(capture)
    try:
        asyncio.run(_render(stack_settings, message))
    finally:
        render_log.removeHandler(capture)
    line = next(x for x in map(json.loads, buffer.getvalue().splitlines()) if "meme_id" in x)
    assert line["meme_id"] == meme_id and line["request_id"] == "trace-me"

    finished: list[ReadableSpan] = list(spans.get_finished_spans())
    by_name = {s.name: s for s in finished}
    server = by_name["POST /api/meme/generate"]
    trace_id = server.context.trace_id
    generation = [s for s in finished if s.context.trace_id == trace_id]
    names = {s.name for s in generation}
    assert {
        "POST /api/meme/generate",
        "meme.requests publish",
        "meme.requests process",
        "render",
        "storage put",
        "postgres upsert meme",
        "meme.rendered publish",
        "meme.feed publish",
    } <= names, names
    # The worker side continues the API's produce: consumer span's parent is the producer span.
    produce = by_name["meme.requests publish"]
    process = by_name["meme.requests process"]
    assert produce.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert process.parent is not None and process.parent.span_id == produce.context.span_id
    assert produce.parent is not None and produce.parent.span_id == server.context.span_id
    for name in ("render", "storage put", "postgres upsert meme", "meme.rendered publish"):
        span = next(s for s in generation if s.name == name)
        assert span.parent is not None
    assert by_name["render"].parent.span_id == process.context.span_id  # type: ignore[union-attr]
    assert line["trace_id"] == f"{trace_id:032x}"


def test_send_merges_request_id_and_trace_context_into_caller_headers(
    stack_settings: Settings,
) -> None:
    admin = admin_client(stack_settings)
    topic = f"test-obs-headers-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(
        timeout=30
    )

    async def produce() -> None:
        producer = EventProducer(stack_settings, client_id="test-observability-headers")
        try:
            with bound_request_id("bound-id"), trace.get_tracer("test").start_as_current_span("x"):
                await producer.send(topic, View(meme_id="m1"), [("x-custom", b"1")])
                await producer.send(topic, View(meme_id="m2"), [(REQUEST_ID_HEADER, b"caller")])
            await producer.send(topic, View(meme_id="m3"))
        finally:
            await asyncio.to_thread(producer.close)

    try:
        asyncio.run(produce())
        consumer = Consumer(
            {
                "bootstrap.servers": stack_settings.kafka_bootstrap_servers,
                "group.id": f"test-obs-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.assign([TopicPartition(topic, 0, 0)])
        got: dict[bytes, dict[str, bytes]] = {}
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got[message.key()] = dict(message.headers() or [])
        consumer.close()
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)
    first, second, third = got[b"m1"], got[b"m2"], got[b"m3"]
    assert first["x-custom"] == b"1" and first[REQUEST_ID_HEADER] == b"bound-id"
    assert "traceparent" in first
    assert second[REQUEST_ID_HEADER] == b"caller"  # a caller's own id is kept
    assert REQUEST_ID_HEADER not in third  # nothing bound, nothing invented


# --- batch workers: analytics and trending continue a request's trace by span links ------------
class _MemoryTable:
    """The part of streams.changelog.ChangelogStore that the trending batch path uses, in
    memory: every partition's changelog reads back empty (the test's meme is new)."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.keys: dict[int, set[bytes]] = {}
        self.last_recovery = (0, 0.0)
        self.recovered_records = 0
        self.recovery_s = 0.0

    @property
    def loaded(self) -> set[int]:
        return set(self.keys)

    async def recover(self, partitions: set[int]) -> bool:
        for partition in partitions:
            self.keys.setdefault(partition, set())
        return True

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def items(self, prefix: bytes) -> list[tuple[int, bytes, bytes]]:
        return [
            (partition, key, self.data[key])
            for partition, keys in self.keys.items()
            for key in keys
            if key.startswith(prefix)
        ]

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        keys = self.keys.setdefault(partition, set())
        if value is None:
            self.data.pop(key, None)
            keys.discard(key)
        else:
            self.data[key] = value
            keys.add(key)

    async def flush(self) -> None:
        return None


def _faust_message(message) -> FaustMessage:  # type: ignore[no-untyped-def]
    """A consumed confluent-kafka message as Faust hands it to an agent."""
    topic, partition = message.topic(), message.partition()
    return FaustMessage(
        topic,
        partition,
        message.offset(),
        message.timestamp()[1] / 1000,
        0,
        message.headers() or [],
        message.key(),
        message.value(),
        None,
        tp=TP(topic, partition),
        generation_id=1,
    )


def _links_to(span: ReadableSpan, trace_id: int) -> list[int]:
    """The span ids a span links to in one trace."""
    return [link.context.span_id for link in span.links if link.context.trace_id == trace_id]


async def _analytics_batch(settings: Settings, messages: list[FaustMessage]) -> int:
    """The analytics agent's batch path on consumed messages; returns the rows ClickHouse holds."""
    producer = EventProducer(settings, client_id="test-observability-analytics")
    sink = await asyncio.to_thread(AnalyticsSink, settings, producer, "test-obs-analytics")
    try:
        await sink.handle([SimpleNamespace(message=m, key=m.key, value=m.value) for m in messages])
        meme_id = messages[0].key.decode()  # a new id: safe in the SQL text
        query = f"SELECT count() FROM events WHERE meme_id = '{meme_id}'"
        return int(sink.client.query(query).result_rows[0][0])
    finally:
        await sink.close()
        await asyncio.to_thread(producer.close)


async def _trending_batch(settings: Settings, messages: list[FaustMessage]) -> float | None:
    """The trending agent's batch path on consumed messages; returns the meme's 1h score."""
    app = SimpleNamespace(
        consumer=SimpleNamespace(assignment=lambda: {m.tp for m in messages}),
        consumer_generation_id=1,
        conf=SimpleNamespace(id="test-obs-trending"),
    )
    worker = TrendingWorker(app, settings, _MemoryTable())  # type: ignore[arg-type]
    worker.start()
    assert worker.sets is not None
    keys = [set_key(w.name) for w in WINDOWS]
    # The database is this test's: empty sets, so no better-scored member trims the meme out.
    await worker.sets.redis.delete(*keys)
    try:
        await worker.process(messages)
        return await worker.sets.redis.zscore(keys[0], messages[0].key.decode())
    finally:
        await worker.sets.redis.delete(*keys)
        await worker.sets.redis.aclose()
        await asyncio.to_thread(worker.close)


def test_a_request_trace_reaches_the_analytics_insert_and_the_trending_batch(
    spans: InMemorySpanExporter, stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A vote and a view produced under one request, read back from Kafka, through both batch
    agents: each batch is one CONSUMER span linked to the request's producer spans, with the
    ClickHouse insert and the Redis pipeline as its children."""
    chdb = f"chdb://{tmp_path_factory.getbasetemp() / 'chdb'}"
    admin = get_client(url=chdb)
    admin.command("CREATE DATABASE IF NOT EXISTS observability_test")
    admin.close()
    redis_base = stack_settings.redis_url.rsplit("/", 1)[0]
    settings = stack_settings.model_copy(
        update={
            "clickhouse_url": f"{chdb}?database=observability_test",
            "redis_url": f"{redis_base}/{BATCH_REDIS_DB}",
        }
    )
    meme_id, request_id = new_id(), f"obs-batch-{uuid.uuid4().hex[:8]}"
    consumers = [_consumer_at_end(settings, topic) for topic in (MEME_VOTES.name, MEME_VIEWS.name)]

    async def request() -> int:
        producer = EventProducer(settings, client_id="test-observability-batch")
        try:
            with (
                bound_request_id(request_id),
                trace.get_tracer("test").start_as_current_span(
                    "POST /api/meme/{meme_id}/vote", kind=SpanKind.SERVER
                ) as span,
            ):
                await producer.send(MEME_VOTES.name, Vote(meme_id=meme_id, user_id="u1", value=1))
                await producer.send(MEME_VIEWS.name, View(meme_id=meme_id))
                return span.get_span_context().trace_id
        finally:
            await asyncio.to_thread(producer.close)

    try:
        spans.clear()
        trace_id = asyncio.run(request())
        consumed = [_consume(consumer, meme_id) for consumer in consumers]
    finally:
        for consumer in consumers:
            consumer.close()
    assert all(dict(m.headers())[REQUEST_ID_HEADER] == request_id.encode() for m in consumed)
    messages = [_faust_message(m) for m in consumed]
    assert asyncio.run(_analytics_batch(settings, messages)) == 2
    assert asyncio.run(_trending_batch(settings, messages)) is not None

    finished: list[ReadableSpan] = list(spans.get_finished_spans())
    published = {
        s.context.span_id
        for s in finished
        if s.kind is SpanKind.PRODUCER and s.context.trace_id == trace_id
    }
    assert len(published) == 2  # the vote's and the view's PRODUCER spans
    for name, child in (
        ("analytics process", "clickhouse insert events"),
        ("trending process", "redis trending update"),
    ):
        batch = next(s for s in finished if s.name == name)
        assert batch.kind is SpanKind.CONSUMER
        # A batch mixes requests: a root of its own, linked to each message's producer span.
        assert batch.parent is None and batch.context.trace_id != trace_id
        assert set(_links_to(batch, trace_id)) == published, name
        assert batch.attributes["messaging.batch.message_count"] == 2
        assert batch.attributes["memestream.batch.links_dropped"] == 0
        store = next(s for s in finished if s.name == child)
        assert store.kind is SpanKind.CLIENT
        assert store.parent is not None and store.parent.span_id == batch.context.span_id
        assert store.context.trace_id == batch.context.trace_id
    insert = next(s for s in finished if s.name == "clickhouse insert events")
    assert insert.attributes["db.operation.batch.size"] == 2


def test_batch_links_are_capped_and_the_rest_counted() -> None:
    exporter = InMemorySpanExporter()
    tracer = setup_tracing(span_exporter=exporter, set_global=False).get_tracer("test")
    carriers: list[list[tuple[str, bytes]]] = []
    for i in range(MAX_BATCH_LINKS + 10):
        with tracer.start_as_current_span(f"publish {i}"):
            carriers.append(inject_headers([(REQUEST_ID_HEADER, f"r{i}".encode())]))
    carriers[1] = [(REQUEST_ID_HEADER, b"untraced")]  # skipped, not linked
    with (
        consume_batch_span("test", carriers, count=len(carriers), tracer=tracer) as span,
        client_span("store write", tracer=tracer) as child,
    ):
        assert child is not None
    with client_span("timer write", tracer=tracer) as orphan:
        assert orphan is None  # outside a batch: no trace of its own
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    batch = by_name["test process"]
    producers = [by_name[f"publish {i}"] for i in range(len(carriers)) if i != 1]
    assert [link.context.span_id for link in batch.links] == [
        p.context.span_id for p in producers[:MAX_BATCH_LINKS]
    ]
    # One message past the untraced one was read: 9 remain unread past the cap.
    assert batch.attributes["memestream.batch.links_dropped"] == len(carriers) - MAX_BATCH_LINKS - 1
    assert batch.attributes["messaging.batch.message_count"] == len(carriers)
    assert by_name["store write"].parent.span_id == span.get_span_context().span_id  # type: ignore[union-attr]
    assert "timer write" not in by_name
    # Headers as a mapping (Faust's `event.headers` may be one) are read too.
    links, read = batch_links([dict(carriers[0]), None, {}])
    assert len(links) == 1 and read == 3


# --- worker: request id and trace through Kafka, /metrics, lag --------------------------------
def test_worker_continues_request_id_and_trace_and_serves_metrics(
    render_worker: int, stack_settings: Settings
) -> None:
    request_id = f"obs-{uuid.uuid4().hex[:12]}"
    request = MemeRequested(meme_id=new_id(), template_id="classic", texts=["WORKER", "TRACE"])
    consumer = _consumer_at_end(stack_settings, MEME_RENDERED.name)

    async def produce() -> int:
        producer = EventProducer(stack_settings, client_id="test-observability-worker")
        try:
            with (
                bound_request_id(request_id),
                trace.get_tracer("test").start_as_current_span("client") as span,
            ):
                await producer.send(MEME_REQUESTS.name, request)
                return span.get_span_context().trace_id
        finally:
            await asyncio.to_thread(producer.close)

    try:
        trace_id = asyncio.run(produce())
        rendered = _consume(consumer, request.meme_id, timeout=60)
    finally:
        consumer.close()
    # The worker bound the request id and continued the trace from the request's headers, so
    # its own output carries both.
    headers = dict(rendered.headers() or [])
    assert headers[REQUEST_ID_HEADER] == request_id.encode()
    assert headers["traceparent"].split(b"-")[1] == f"{trace_id:032x}".encode()

    worker = f"http://127.0.0.1:{render_worker}/metrics"

    def lag_reported() -> str | None:
        # The meme's latency is observed just after its events are produced: wait for both.
        body = httpx.get(worker, timeout=5).text
        lagged = series(body, "memestream_consumer_lag")
        observed = sample(body, "memestream_generation_latency_seconds_count") or 0
        return body if observed and any(s["topic"] == MEME_REQUESTS.name for s in lagged) else None

    body = wait_for(lag_reported, 20, "the worker reported no consumer lag or latency")
    assert (sample(body, "memestream_render_duration_seconds_count") or 0) >= 1
    assert (sample(body, "memestream_generation_latency_seconds_count") or 0) >= 1
    # Outcome labels: rendered, failed, or what moderation decided.
    generated = series(body, "memestream_memes_generated_total")
    assert generated and all(set(labels) == {"status"} for labels in generated)
    consumed = series(body, "memestream_events_consumed_total")
    assert any(
        s["topic"] == MEME_REQUESTS.name and s["group"].startswith("test-") for s in consumed
    )
    assert sample(body, "memestream_events_produced_total", topic=MEME_RENDERED.name)


# --- API under uvicorn: JSON access lines with the request id and trace id ---------------------
def test_uvicorn_access_lines_are_json_with_request_and_trace_ids(
    stack_settings: Settings,
) -> None:
    port = processes.free_port()
    env = environment(stack_settings) | {"API_PORT": str(port)}
    args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
    name = "api-observability"
    request_id = f"obs-{uuid.uuid4().hex[:12]}"
    with processes.process(name, args, env) as proc:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(f"{url}/health", proc)
        response = httpx.get(
            f"{url}/api/meme/{new_id()}", headers={"X-Request-ID": request_id}, timeout=10
        )
        assert response.headers[REQUEST_ID_HEADER] == request_id

        def access_line() -> dict | None:
            lines = json_lines(processes.log_path(name))
            return next((x for x in lines if x.get("request_id") == request_id), None)

        line = wait_for(access_line, 10, "no JSON log line with the request id")
    assert line["logger"] == "uvicorn.access" and line["level"] == "INFO"
    assert line["service"] == "memestream-api"
    assert len(line["trace_id"]) == 32 and len(line["span_id"]) == 16


# --- consumer lag from the admin API -----------------------------------------------------------
def test_lag_reader_matches_committed_and_latest_offsets(stack_settings: Settings) -> None:
    admin = admin_client(stack_settings)
    topic = f"test-obs-lag-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(
        timeout=30
    )
    try:
        producer = Producer({"bootstrap.servers": stack_settings.kafka_bootstrap_servers})
        for partition, count in ((0, 5), (1, 2)):
            for _ in range(count):
                producer.produce(topic, value=b"x", partition=partition)
        assert producer.flush(10) == 0
        group = f"test-obs-group-{uuid.uuid4().hex[:8]}"
        consumer = Consumer(
            {"bootstrap.servers": stack_settings.kafka_bootstrap_servers, "group.id": group}
        )
        consumer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
        consumer.close()

        partitions = {(topic, 0), (topic, 1)}
        # Partition 1 never committed: the group would start at the end (latest) or the start.
        offsets = OffsetReader({"bootstrap.servers": stack_settings.kafka_bootstrap_servers}, group)
        assert LagReader(offsets, reset="latest").read(partitions) == {
            (topic, 0): 3,
            (topic, 1): 0,
        }
        gauge = LagGauge(LagReader(offsets, reset="earliest"))
        assert asyncio.run(gauge.refresh(partitions)) == {(topic, 0): 3, (topic, 1): 2}
        assert CONSUMER_LAG.labels(group, topic, "1")._value.get() == 2
        # A partition the worker lost is dropped from the gauge.
        asyncio.run(gauge.refresh({(topic, 0)}))
        assert (group, topic, "1") not in CONSUMER_LAG._metrics
        offsets.close()
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)


# --- Kafka security settings -------------------------------------------------------------------
def test_kafka_security_keys_only_when_configured(stack_settings: Settings) -> None:
    import faust

    from producers.kafka_security import aiokafka_security
    from producers.producer import producer_config
    from streams.kafka_auth import faust_credentials

    plain = producer_config(stack_settings, "x")
    assert not any(k.startswith(("security.", "sasl.")) for k in plain)
    assert faust_credentials(stack_settings) is None
    scram = stack_settings.model_copy(
        update={
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_username": "memestream-render",
            "kafka_sasl_password": "secret",
        }
    )
    config = producer_config(scram, "x")
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl.username"], config["sasl.password"]) == ("memestream-render", "secret")
    assert aiokafka_security(stack_settings) == {}  # the feed relay's consumers use these
    kwargs = aiokafka_security(scram)
    assert (kwargs["security_protocol"], kwargs["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert kwargs["sasl_plain_username"] == "memestream-render" and kwargs["ssl_context"]
    credentials = faust_credentials(scram)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.ssl_context is not None
    assert credentials.mechanism.value == "SCRAM-SHA-512"


# --- memestream migrate: the ClickHouse schema, then the chDB folder is free ------------------
def test_migrate_applies_clickhouse_schema_and_releases_chdb(
    stack_settings: Settings, tmp_path: Path
) -> None:
    url = f"chdb://{tmp_path / 'chdb'}"
    env = {**os.environ, **environment(stack_settings), "CLICKHOUSE_URL": url}
    migrate = subprocess.run(
        [sys.executable, "-m", "memestream", "migrate"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "clickhouse" in migrate.stdout
    # Another process opens the folder: the migrate process released it.
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sinks.clickhouse import get_client; "
            f"c = get_client(url={url!r}); "
            "print(sorted(r[0] for r in c.query('SHOW TABLES').result_rows))",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert "events" in check.stdout and "events_per_minute_mv" in check.stdout
