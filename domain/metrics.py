"""Every Prometheus metric of the platform in one place: dashboards and alerts share one contract.

Why one module: Grafana panels, the alert rules in `deploy/prometheus/` and the KEDA Prometheus
triggers in `deploy/strimzi/` name these metrics; tests check those names against this registry.
Code elsewhere imports the objects below and never creates its own metric.

Multi-process: the API may run several uvicorn workers and the render worker renders in a process
pool, so a metric observed in a child must reach `/metrics`. prometheus-client handles that
when `PROMETHEUS_MULTIPROC_DIR` is set *before* `prometheus_client` is first imported (it picks
its value class at import time): every process then writes mmap files there and
`render_metrics()` merges them. Gauges say how to merge (`livesum`, `livemax`, ...); call
`mark_process_dead(pid)` when a child exits and `reset_multiproc_dir()` once at start-up (the
container entrypoint does it), so stale files of earlier processes never leak into sums.

Label hygiene: `route` is the route template (`/api/meme/{meme_id}`), never the raw path;
`partition` is the partition number as a string. Unbounded values (ids) are never labels.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter as _Tally
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

NAMESPACE = "memestream"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Declared name (counters with `_total`) -> label names; filled by the factories below so tests
# can check that dashboards, alerts and KEDA queries only use labels a metric really has.
LABELS: dict[str, tuple[str, ...]] = {}
_METRICS: list[Counter | Gauge | Histogram] = []
_DECLARED: dict[int, str] = {}

# Buckets, chosen around the targets in DESIGN.md so the interesting quantiles fall inside a
# bucket and not in +Inf: API p95 < 50 ms cached / < 500 ms overall; render and generation
# p95 < 1 s (plan: 3 s); feed delivery p99 < 100 ms; inference p95 < 300 ms.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RENDER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
GENERATION_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
FEED_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)
INFERENCE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
SINK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FRESHNESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0)


# prometheus-client writes its per-process files as soon as a metric is created; make sure the
# folder exists even when no entrypoint prepared it (it is only created, never emptied, here).
if _multiproc := os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()):
    Path(_multiproc).mkdir(parents=True, exist_ok=True)


def _name(name: str) -> str:
    return f"{NAMESPACE}_{name}"


def _register(metric: Any, name: str, labels: tuple[str, ...]) -> None:
    LABELS[name] = labels
    _METRICS.append(metric)
    _DECLARED[id(metric)] = name


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    metric = Counter(_name(name), doc, labels)
    _register(metric, _name(name), labels)
    return metric


def _gauge(name: str, doc: str, labels: tuple[str, ...], mode: str) -> Gauge:
    metric = Gauge(_name(name), doc, labels, multiprocess_mode=mode)
    _register(metric, _name(name), labels)
    return metric


def _histogram(
    name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
) -> Histogram:
    metric = Histogram(_name(name), doc, labels, buckets=buckets)
    _register(metric, _name(name), labels)
    return metric


# --- HTTP (RED per route) ------------------------------------------------------------------
HTTP_REQUESTS = _counter(
    "http_requests_total",
    "HTTP requests by route template and status code.",
    ("method", "route", "status"),
)
HTTP_REQUEST_DURATION = _histogram(
    "http_request_duration_seconds",
    "HTTP request duration by route template.",
    ("method", "route"),
    HTTP_BUCKETS,
)
HTTP_IN_PROGRESS = _gauge(
    "http_requests_in_progress",
    "HTTP requests being served (the route is known only after).",
    ("method",),
    "livesum",
)
SLOW_CLIENTS_CLOSED = _counter(
    "slow_clients_closed_total",
    "Connections closed with 408: headers or body sent too slowly (api/slow_clients.py).",
    ("phase",),
)
RATE_LIMITED = _counter(
    "rate_limited_total",
    "Requests refused with 429, by limit scope (user, ip).",
    ("scope",),
)
# Known label values start at 0, so rate() says 0 rather than "no data" before the first 429.
for _scope in ("user", "ip"):
    RATE_LIMITED.labels(scope=_scope)

# --- Generation and rendering ----------------------------------------------------------------
MEMES_REQUESTED = _counter(
    "memes_requested_total",
    "Generation requests acknowledged by Kafka (endpoint: generate, batch).",
    ("endpoint",),
)
MEMES_GENERATED = _counter(
    "memes_generated_total",
    "Generations finished, by outcome (rendered, failed, rejected).",
    ("status",),
)
RENDER_DURATION = _histogram(
    "render_duration_seconds",
    "Time to render one meme (decode, text, effects, encode).",
    ("format",),
    RENDER_BUCKETS,
)
GENERATION_LATENCY = _histogram(
    "generation_latency_seconds",
    "Request accepted by the API to MemeRendered produced.",
    (),
    GENERATION_BUCKETS,
)
RENDER_INPUT_BYTES = _counter(
    "render_input_bytes_total",
    "Image bytes fed into decode, effects and encode.",
    (),
)

# --- Kafka consumers and producers -----------------------------------------------------------
CONSUMER_LAG = _gauge(
    "consumer_lag",
    "Messages behind the partition's high watermark, per consumer group.",
    ("group", "topic", "partition"),
    "livemax",
)
EVENTS_CONSUMED = _counter(
    "events_consumed_total",
    "Events consumed, by consumer group and topic.",
    ("group", "topic"),
)
EVENT_PROCESSING_DURATION = _histogram(
    "event_processing_seconds",
    "Time an agent spends on one event.",
    ("group", "topic"),
    RENDER_BUCKETS,
)
EVENTS_PRODUCED = _counter(
    "events_produced_total",
    "Events acknowledged by Kafka, by topic.",
    ("topic",),
)
PRODUCE_ERRORS = _counter(
    "produce_errors_total",
    "Events Kafka did not acknowledge, by topic and error.",
    ("topic", "reason"),
)
DLQ_MESSAGES = _counter(
    "dlq_messages_total",
    "Poison messages sent to a dead-letter topic, by source topic, reason and consumer group.",
    ("topic", "reason", "group"),
)
QUEUE_DEPTH = _gauge(
    "queue_depth",
    "Items waiting in an in-process queue (render_pool, inference, inference_requests, feed,"
    " analytics).",
    ("queue",),
    "livesum",
)

# --- Caches ----------------------------------------------------------------------------------
CACHE_HITS = _counter("cache_hits_total", "Cache hits, by cache name.", ("cache",))
CACHE_MISSES = _counter("cache_misses_total", "Cache misses, by cache name.", ("cache",))

# --- Live feed -------------------------------------------------------------------------------
LIVE_CONNECTIONS = _gauge(
    "live_connections",
    "Open live-feed connections, by transport (sse, websocket).",
    ("transport",),
    "livesum",
)
FEED_DELIVERY_LATENCY = _histogram(
    "feed_delivery_seconds",
    "Feed event produced to written to a client connection; transport: sse or websocket (a"
    " connection's task drained it from its mailbox), direct (one sample per broadcast: the hub"
    " wrote every directly written socket in one pass, so this is its last client's latency).",
    ("transport",),
    FEED_BUCKETS,
)
FEED_DISCONNECTS = _counter(
    "feed_disconnects_total",
    "Feed connections closed by the server, by reason.",
    ("reason",),
)

# --- AI inference ----------------------------------------------------------------------------
INFERENCE_DURATION = _histogram(
    "inference_duration_seconds",
    "Time of one inference batch, by task and model size.",
    ("task", "model_size"),
    INFERENCE_BUCKETS,
)
INFERENCE_BATCH_SIZE = _histogram(
    "inference_batch_size",
    "Items per inference batch.",
    ("task",),
    BATCH_SIZE_BUCKETS,
)
INFERENCE_FALLBACKS = _counter(
    "inference_fallbacks_total",
    "Inference answered by a fallback (smaller model, heuristic).",
    ("task", "fallback"),
)
INFERENCE_FAILURES = _counter(
    "inference_failures_total",
    "Inference attempts that failed over to the next in the chain, by reason (timeout, error,"
    " load_error, over_budget, unavailable).",
    ("task", "model_size", "reason"),
)
AI_MODEL_LOAD_DURATION = _histogram(
    "ai_model_load_seconds",
    "Time to load one model into memory.",
    ("model",),
    INFERENCE_BUCKETS,
)
AI_MODELS_LOADED_BYTES = _gauge(
    "ai_models_loaded_bytes",
    "Estimated memory of the loaded models (LRU within the budget).",
    ("model",),
    "livesum",
)
AI_MODEL_EVICTIONS = _counter(
    "ai_model_evictions_total",
    "Models dropped from memory to stay within the budget.",
    ("model",),
)
INFERENCE_REQUESTS = _counter(
    "inference_requests_total",
    "Requests the inference workers took from NATS, by task and outcome (answered, expired:"
    " dropped unrun or unanswered past its deadline, error: unreadable).",
    ("task", "outcome"),
)
INFERENCE_EXPIRED = _counter(
    "inference_expired_total",
    "Requests an inference worker dropped because their deadline passed, by where it found"
    " that: received (before queueing), queued (waiting for a slot), running (in the batcher"
    " or the model; a batch not yet started drops it).",
    ("task", "stage"),
)
INFERENCE_CLIENT = _counter(
    "inference_client_total",
    "The API's inference requests, by task and outcome (reply; deadline, no_worker, unavailable"
    " and error answered with the heuristic).",
    ("task", "outcome"),
)
MODERATION_DECISIONS = _counter(
    "moderation_decisions_total",
    "Moderation outcomes, by what was checked (text, image).",
    ("kind", "decision"),
)

# --- Trending and sinks ----------------------------------------------------------------------
TRENDING_FRESHNESS = _histogram(
    "trending_freshness_seconds",
    "Vote or view accepted by Kafka to the trending set updated; one sample per batch and"
    " window, for the batch's oldest vote or view (an upper bound of its events' freshness).",
    ("window",),
    FRESHNESS_BUCKETS,
)
SINK_WRITE_DURATION = _histogram(
    "sink_write_duration_seconds",
    "Time of one write to a store (batch or single).",
    ("sink", "operation"),
    SINK_BUCKETS,
)
SINK_ERRORS = _counter("sink_errors_total", "Failed writes to a store.", ("sink",))
STORE_UP = _gauge(
    "store_up",
    "1 when the last probe of a store succeeded, else 0.",
    ("store",),
    "livemin",
)


# --- Helpers ---------------------------------------------------------------------------------
def record_cache(cache: str, hit: bool) -> None:
    """One call per lookup, so the hit ratio is hits / (hits + misses) on the dashboard."""
    (CACHE_HITS if hit else CACHE_MISSES).labels(cache=cache).inc()


@contextmanager
def live_connection(transport: str) -> Iterator[None]:
    """Counts a feed connection for as long as the block runs, even when it ends in error."""
    gauge = LIVE_CONNECTIONS.labels(transport=transport)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def observe_feed_delivery(transport: str, occurred_at_ms: float) -> None:
    """One feed event written: `occurred_at_ms` is the event's time (its `occurred_at` field,
    epoch milliseconds, set when it was produced), so the sample spans Kafka, the relay and
    the write. Replayed history is not live delivery and is never passed here."""
    FEED_DELIVERY_LATENCY.labels(transport=transport).observe(
        max(0.0, time.time() - occurred_at_ms / 1000)
    )


def count_consumed(group: str, topics: Iterable[str]) -> None:
    """Counts a batch's events with one increment per topic, not one label lookup per event.

    `group` is the full consumer group id (the Faust app's `conf.id`), the same value the lag
    gauge, KEDA and the DLQ headers use, so `events_consumed` and `consumer_lag` join on it.
    """
    for topic, count in _Tally(topics).items():
        EVENTS_CONSUMED.labels(group=group, topic=topic).inc(count)


def observe_trending_freshness(windows: Iterable[str], accepted: Iterable[float]) -> None:
    """After a batch reached the trending sets: `accepted` are its votes' and views' Kafka
    timestamps (epoch seconds). One sample per window keeps this off the per-event path."""
    oldest = min(accepted, default=None)
    if oldest is None:
        return
    age = max(0.0, time.time() - oldest)
    for window in windows:
        TRENDING_FRESHNESS.labels(window=window).observe(age)


def set_consumer_lag(group: str, topic: str, partition: int, lag: int) -> None:
    """Lag of one assigned partition; KEDA scales on the same quantity read from Kafka."""
    CONSUMER_LAG.labels(group=group, topic=topic, partition=str(partition)).set(max(lag, 0))


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    """Records one finished request (R, E and D of RED in one call)."""
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_REQUEST_DURATION.labels(method=method, route=route).observe(seconds)


def multiproc_dir() -> Path | None:
    """The multi-process folder if this process runs in multi-process mode."""
    raw = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())
    return Path(raw) if raw else None


def reset_multiproc_dir() -> None:
    """Empties the multi-process folder: call once before any metric process starts."""
    folder = multiproc_dir()
    if folder is None:
        return
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)


def mark_process_dead(pid: int) -> None:
    """Drops a dead child's `live*` gauge files so it no longer counts in sums."""
    if multiproc_dir() is not None:
        multiprocess.mark_process_dead(pid)


def registry() -> CollectorRegistry:
    """The registry `/metrics` exposes: merged files when multi-process, else the default."""
    if multiproc_dir() is None:
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)
    return merged


def render_metrics() -> tuple[bytes, str]:
    """Body and content type of `/metrics` (the API's route and the worker's web server)."""
    return generate_latest(registry()), CONTENT_TYPE_LATEST


def exposed_families(text: str | None = None) -> dict[str, str]:
    """Name -> type of every `# TYPE` line of an exposition (default: this process, all metrics).

    Unobserved labelled metrics have no samples but still their `# TYPE` line, so this lists
    the whole catalogue. Counters appear as `x_total` or `x` depending on the exposition version.
    """
    body = text if text is not None else generate_latest(REGISTRY).decode()
    families: dict[str, str] = {}
    for line in body.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            families[name] = kind
    return families


def sample_names(families: dict[str, str] | None = None) -> set[str]:
    """Every series name a query may use (`_total`, `_bucket`, `_count`, ... included)."""
    names: set[str] = set()
    for name, kind in (families if families is not None else exposed_families()).items():
        names.add(name)
        if kind == "counter":
            base = name.removesuffix("_total")
            names.update({f"{base}_total", f"{base}_created"})
        elif kind in ("histogram", "summary"):
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_count", "_sum", "_created"))
    return names


def series_labels() -> dict[str, frozenset[str]]:
    """Series name -> label names a selector may use on it (`le` on histogram buckets)."""
    out: dict[str, frozenset[str]] = {}
    for metric in _METRICS:
        labels = frozenset(LABELS[metric_key(metric)])
        for sample_name in metric_series(metric):
            out[sample_name] = labels | ({"le"} if sample_name.endswith("_bucket") else set())
    return out


def metric_key(metric: Counter | Gauge | Histogram) -> str:
    """The key of a metric in LABELS: the name it was declared with."""
    return _DECLARED[id(metric)]


def metric_series(metric: Counter | Gauge | Histogram) -> tuple[str, ...]:
    """The series names one metric object exposes."""
    name = metric_key(metric)
    if isinstance(metric, Counter):
        return (name,)
    if isinstance(metric, Histogram):
        return (f"{name}_bucket", f"{name}_count", f"{name}_sum")
    return (name,)
