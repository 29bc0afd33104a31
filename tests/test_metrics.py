"""Observability contract: metrics (names, buckets, multi-process), JSON logs, trace propagation.

Why here: dashboards, alerts and KEDA triggers depend on these names; a generation's trace and
request id must survive the hop through Kafka headers.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from domain import metrics

ROOT = Path(__file__).resolve().parent.parent


# --- metrics -----------------------------------------------------------------------------------
def test_every_metric_is_namespaced_and_exposed() -> None:
    families = metrics.exposed_families()
    names = metrics.sample_names(families)
    for series in metrics.series_labels():
        assert series.startswith("memestream_"), series
        assert series in names, f"{series} missing from the /metrics exposition"


@pytest.mark.parametrize(
    "series",
    [
        "memestream_http_requests_total",
        "memestream_http_request_duration_seconds_bucket",
        "memestream_render_duration_seconds_bucket",
        "memestream_generation_latency_seconds_bucket",
        "memestream_consumer_lag",
        "memestream_queue_depth",
        "memestream_cache_hits_total",
        "memestream_cache_misses_total",
        "memestream_live_connections",
        "memestream_inference_duration_seconds_bucket",
        "memestream_dlq_messages_total",
    ],
)
def test_required_metrics_exist(series: str) -> None:
    assert series in metrics.series_labels()


def test_consumer_lag_is_per_group_topic_partition() -> None:
    assert set(metrics.LABELS["memestream_consumer_lag"]) == {"group", "topic", "partition"}
    assert set(metrics.LABELS["memestream_http_requests_total"]) == {"method", "route", "status"}


def _buckets(histogram: object) -> tuple[float, ...]:
    return tuple(histogram._upper_bounds)  # type: ignore[attr-defined]


def test_buckets_bracket_the_targets() -> None:
    """The target of each latency must fall strictly inside the bucket range, on a boundary."""
    targets = [
        (metrics.HTTP_REQUEST_DURATION, (0.05, 0.5)),
        (metrics.RENDER_DURATION, (1.0, 3.0)),
        (metrics.GENERATION_LATENCY, (1.0, 3.0)),
        (metrics.FEED_DELIVERY_LATENCY, (0.1,)),
        (metrics.INFERENCE_DURATION, (0.3,)),
    ]
    for histogram, values in targets:
        bounds = _buckets(histogram)
        assert list(bounds) == sorted(bounds)
        for value in values:
            assert value in bounds, (histogram, value)
            assert bounds[0] < value < bounds[-2], (histogram, value)  # [-1] is +Inf


def test_render_metrics_after_observations() -> None:
    metrics.observe_http("GET", "/api/meme/{meme_id}", 200, 0.003)
    metrics.record_cache("meme", hit=True)
    metrics.record_cache("meme", hit=False)
    metrics.set_consumer_lag("memestream-render", "meme.requests", 0, 42)
    with metrics.live_connection("sse"):
        body, content_type = metrics.render_metrics()
    text = body.decode()
    assert content_type.startswith("text/plain")
    route = 'route="/api/meme/{meme_id}"'
    assert f'memestream_http_requests_total{{method="GET",{route},status="200"}}' in text
    lag = 'group="memestream-render",partition="0",topic="meme.requests"'
    assert f"memestream_consumer_lag{{{lag}}} 42.0" in text
    assert 'memestream_live_connections{transport="sse"} 1.0' in text


MULTIPROC_CHILD = textwrap.dedent(
    """
    import os, sys
    from domain import metrics
    metrics.MEMES_REQUESTED.labels(endpoint="generate").inc()
    metrics.RENDER_DURATION.labels(format="png").observe(0.2)
    metrics.LIVE_CONNECTIONS.labels(transport="websocket").inc()
    print(os.getpid())
    """
)

MULTIPROC_RENDER = textwrap.dedent(
    """
    import sys
    from domain import metrics
    for pid in sys.argv[1:]:
        metrics.mark_process_dead(int(pid))
    sys.stdout.write(metrics.render_metrics()[0].decode())
    """
)


def _run(code: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_multiprocess_mode_sums_across_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    pids = [_run(MULTIPROC_CHILD, env).strip() for _ in range(2)]
    merged = _run(MULTIPROC_RENDER, env)
    assert 'memestream_memes_requested_total{endpoint="generate"} 2.0' in merged
    assert 'memestream_render_duration_seconds_count{format="png"} 2.0' in merged
    # Both children exited: once marked dead, their live gauge no longer counts.
    after = _run(MULTIPROC_RENDER, env, *pids)
    assert 'memestream_live_connections{transport="websocket"}' not in after
    assert 'memestream_memes_requested_total{endpoint="generate"} 2.0' in after


# --- logs --------------------------------------------------------------------------------------
def test_json_logs_carry_request_and_trace_ids() -> None:
    from domain import logs, tracing
    from domain.settings import Settings

    stream = io.StringIO()
    handler = logs.setup_logging(Settings(), service="test-svc", level="DEBUG", stream=stream)
    provider = tracing.setup_tracing(Settings(), set_global=False)
    try:
        tracer = provider.get_tracer("test")
        with logs.bound_request_id("rid-1"), tracer.start_as_current_span("s") as span:
            logging.getLogger("memestream.test").info("rendered %s", "m1", extra={"meme_id": "m1"})
            trace_id = f"{span.get_span_context().trace_id:032x}"
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("memestream.test").exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "rendered m1"
    assert first["level"] == "INFO"
    assert first["service"] == "test-svc"
    assert first["request_id"] == "rid-1"
    assert first["trace_id"] == trace_id
    assert first["meme_id"] == "m1"
    assert "request_id" not in second
    assert "ValueError: boom" in second["exc"]


def test_request_id_round_trips_through_kafka_headers() -> None:
    from domain import logs

    with logs.bound_request_id("abc"):
        headers = logs.request_id_headers([("other", b"1"), ("x-request-id", b"old")])
    assert headers == [("other", b"1"), ("x-request-id", b"abc")]
    assert logs.request_id_from_headers(headers) == "abc"
    assert logs.request_id_from_headers({"X-Request-Id": b"def"}) == "def"
    assert logs.request_id_from_headers(None) is None
    assert logs.current_request_id() is None


# --- tracing -----------------------------------------------------------------------------------
def test_generation_spans_form_one_trace() -> None:
    """API request -> produce -> (Kafka headers) -> worker consume -> render -> sink writes."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    from domain import tracing
    from domain.settings import Settings

    exporter = InMemorySpanExporter()
    api = tracing.setup_tracing(
        Settings(), service_name="api", span_exporter=exporter, set_global=False
    )
    worker = tracing.setup_tracing(
        Settings(), service_name="worker", span_exporter=exporter, set_global=False
    )
    api_tracer, worker_tracer = api.get_tracer("api"), worker.get_tracer("worker")

    with (
        api_tracer.start_as_current_span("POST /api/meme/generate", kind=SpanKind.SERVER),
        tracing.produce_span("meme.requests", [("x-request-id", b"r1")], tracer=api_tracer) as (
            _,
            headers,
        ),
    ):
        pass
    # Only bytes cross the broker: the worker sees nothing but the headers.
    wire = [(k, bytes(v)) for k, v in headers]
    assert ("x-request-id", b"r1") in wire
    with tracing.consume_span(
        "meme.requests", wire, group="memestream-render", tracer=worker_tracer
    ):
        with worker_tracer.start_as_current_span("render"):
            pass
        for sink in ("minio put", "postgres upsert", "clickhouse insert"):
            with worker_tracer.start_as_current_span(sink):
                pass

    spans = exporter.get_finished_spans()
    assert len(spans) == 7
    assert len({s.context.trace_id for s in spans}) == 1, "spans belong to different traces"
    by_name = {s.name: s for s in spans}
    consumer = by_name["meme.requests process"]
    producer = by_name["meme.requests publish"]
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert consumer.kind is SpanKind.CONSUMER
    assert by_name["render"].parent.span_id == consumer.context.span_id
    assert {s.resource.attributes["service.name"] for s in spans} == {"api", "worker"}


def test_extract_without_headers_starts_a_new_trace() -> None:
    from opentelemetry import trace

    from domain import tracing

    ctx = tracing.extract_context(None)
    assert not trace.get_current_span(ctx).get_span_context().is_valid
    assert tracing.inject_headers() == []  # no active span: nothing to propagate


def test_exporter_choice() -> None:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from domain import tracing

    assert tracing.make_exporter("none") is None
    assert isinstance(tracing.make_exporter("console"), ConsoleSpanExporter)
    with pytest.raises(ValueError):
        tracing.make_exporter("zipkin")
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="otlp extra"):
            tracing.make_exporter("otlp", "http://collector:4318")
    else:
        exporter = tracing.make_exporter("otlp", "http://collector:4318/")
        assert exporter is not None
        assert exporter._endpoint == "http://collector:4318/v1/traces"  # type: ignore[attr-defined]
        exporter.shutdown()
