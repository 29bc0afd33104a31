"""OpenTelemetry tracing: one trace per generation, from the API through Kafka into the sinks.

Why: a slow generation is slow somewhere between the HTTP request, the produce, the consumer's
lag, the render and the writes to MinIO, PostgreSQL and ClickHouse; one trace shows where.
The API's span context travels in the Kafka message headers (W3C `traceparent`/`tracestate`,
the process-wide propagator), so the worker's consumer span is a child of the producer span.

Exporter (`OTEL_TRACES_EXPORTER`): `none` still installs the SDK, so ids are made, propagated
and written into the logs, only nothing is exported; `console` prints finished spans; `otlp`
sends them over OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` (needs the `otlp` extra:
`pip install memestream[otlp]`). The helpers take Kafka headers as confluent-kafka gives them,
`list[tuple[str, bytes]]` (a mapping also works for Faust's `event.headers`).

Batch consumers (analytics, trending) handle thousands of messages from as many requests at
once, so no single parent fits: `consume_batch_span` starts one CONSUMER span per batch, a
root of its own, with span links to the producer spans in the messages' headers: the first
`MAX_BATCH_LINKS`, and `memestream.batch.links_dropped` counts the messages past them. A
request's trace id then reaches the batch that wrote it, at a per-batch cost, no span per event.
`client_span` times one store call (the ClickHouse insert, the Redis pipeline) under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Link, Span, SpanKind, Tracer

if TYPE_CHECKING:
    from domain.settings import Settings

KafkaHeaders = list[tuple[str, bytes]]
HeadersIn = Sequence[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None] | None

EXPORTERS = ("none", "console", "otlp")
#: Links per batch span. Extracting a context with the propagator costs 7-30 us (warm to cold),
#: all of it on the trending worker's hot path: with 32, the batch span, its links and the Redis
#: span add ~2 % to a 2,000-message batch (64: ~3.5 %, 128: ~5.5 %; README). A lightly loaded
#: worker's batches are small, so every message of them is linked.
MAX_BATCH_LINKS = 32
#: The header a trace context travels in (W3C), checked before anything is parsed.
TRACEPARENT = "traceparent"

_provider: TracerProvider | None = None


class _KafkaHeaderSetter(Setter[KafkaHeaders]):
    """Writes a propagation field, replacing any older value of the same key."""

    def set(self, carrier: KafkaHeaders, key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k.lower() != key.lower()]
        carrier.append((key, value.encode()))


class _KafkaHeaderGetter(Getter[HeadersIn]):
    """Reads propagation fields from a header list or mapping; keys compare case-insensitively."""

    @staticmethod
    def _items(carrier: HeadersIn) -> Iterable[tuple[str, bytes | str | None]]:
        # Lists of pairs (confluent-kafka, Faust) first and uncopied: batch consumers extract
        # up to MAX_BATCH_LINKS contexts per batch, three lookups each.
        if not carrier:
            return ()
        if isinstance(carrier, list | tuple):
            return carrier
        return carrier.items() if isinstance(carrier, Mapping) else carrier

    def get(self, carrier: HeadersIn, key: str) -> list[str] | None:
        key = key.lower()
        values: list[str] = []
        for k, v in self._items(carrier):
            if v is not None and (k == key or k.lower() == key):
                values.append(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
        return values or None

    def keys(self, carrier: HeadersIn) -> list[str]:
        return [k for k, _ in self._items(carrier)]


SETTER = _KafkaHeaderSetter()
GETTER = _KafkaHeaderGetter()


def make_exporter(kind: str, endpoint: str | None = None) -> SpanExporter | None:
    """The span exporter for a configured kind; `none` exports nothing."""
    if kind == "none":
        return None
    if kind == "console":
        return ConsoleSpanExporter()
    if kind == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:  # the exporter is an optional extra
            raise RuntimeError(
                "OTEL_TRACES_EXPORTER=otlp needs the otlp extra: pip install 'memestream[otlp]'"
            ) from exc
        # The standard variable is the base URL; the HTTP exporter wants the traces path.
        url = f"{endpoint.rstrip('/')}/v1/traces" if endpoint else None
        return OTLPSpanExporter(endpoint=url)
    raise ValueError(f"unknown trace exporter {kind!r}; expected one of {EXPORTERS}")


def setup_tracing(
    settings: Settings | None = None,
    *,
    service_name: str | None = None,
    exporter: str | None = None,
    span_exporter: SpanExporter | None = None,
    set_global: bool = True,
) -> TracerProvider:
    """Creates the process's tracer provider; `span_exporter` overrides the configured one.

    The global provider can be set once per process; tests pass `set_global=False` and use
    the returned provider's tracers.
    """
    global _provider
    if settings is None:
        from domain.settings import get_settings

        settings = get_settings()
    name = service_name or settings.otel_service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    else:
        configured = make_exporter(
            exporter or settings.otel_traces_exporter, settings.otel_exporter_otlp_endpoint
        )
        if configured is not None:
            provider.add_span_processor(BatchSpanProcessor(configured))
    if set_global:
        trace.set_tracer_provider(provider)
        _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flushes and stops the global provider (call on process exit, so no span is lost)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def get_tracer(name: str, provider: TracerProvider | None = None) -> Tracer:
    return (provider or trace.get_tracer_provider()).get_tracer(name)


def inject_headers(
    headers: KafkaHeaders | None = None, ctx: otel_context.Context | None = None
) -> KafkaHeaders:
    """Returns `headers` (a new list if None) with the current trace context added."""
    carrier: KafkaHeaders = headers if headers is not None else []
    propagate.inject(carrier, context=ctx, setter=SETTER)
    return carrier


def extract_context(headers: HeadersIn) -> otel_context.Context:
    """The trace context a producer put in a message's headers (empty context if none)."""
    return propagate.extract(headers, getter=GETTER)


@contextmanager
def produce_span(
    topic: str,
    headers: KafkaHeaders | None = None,
    *,
    tracer: Tracer | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[tuple[Span, KafkaHeaders]]:
    """A PRODUCER span for one message; yields the headers to send, carrying that span."""
    tracer = tracer or get_tracer(__name__)
    attrs = {"messaging.system": "kafka", "messaging.destination.name": topic, **(attributes or {})}
    with tracer.start_as_current_span(
        f"{topic} publish", kind=SpanKind.PRODUCER, attributes=attrs
    ) as span:
        yield span, inject_headers(headers if headers is not None else [])


@contextmanager
def consume_span(
    topic: str,
    headers: HeadersIn,
    *,
    group: str | None = None,
    tracer: Tracer | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A CONSUMER span, child of the producer's span found in the headers, made current."""
    tracer = tracer or get_tracer(__name__)
    attrs: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": "process",
        **(attributes or {}),
    }
    if group:
        attrs["messaging.consumer.group.name"] = group
    with tracer.start_as_current_span(
        f"{topic} process",
        context=extract_context(headers),
        kind=SpanKind.CONSUMER,
        attributes=attrs,
    ) as span:
        yield span


def _has_trace_context(headers: HeadersIn) -> bool:
    """Whether a message carries a `traceparent` (lower-case, as propagators write it): a scan,
    far cheaper than extracting the context."""
    if not headers:
        return False
    if not isinstance(headers, list | tuple) and isinstance(headers, Mapping):
        return TRACEPARENT in headers
    # A plain loop: `any()` over a generator costs 3-5x as much, once per message.
    for key, _ in headers:  # noqa: SIM110
        if key == TRACEPARENT:
            return True
    return False


def batch_links(
    carriers: Iterable[HeadersIn], limit: int = MAX_BATCH_LINKS
) -> tuple[list[Link], int]:
    """Links to the producer spans of a batch's first `limit` traced messages, and how many
    messages were left unread past the cap (`memestream.batch.links_dropped`).

    Extracting a context (the process's propagator, as `extract_context`) is the per-message
    cost of batch tracing; stopping at the cap keeps a batch of thousands at a fixed cost.
    """
    links: list[Link] = []
    read = 0
    for headers in carriers:
        if len(links) >= limit:
            break
        read += 1
        if not _has_trace_context(headers):
            continue
        context = trace.get_current_span(extract_context(headers)).get_span_context()
        if context.is_valid:
            links.append(Link(context))
    return links, read


@contextmanager
def consume_batch_span(
    name: str,
    carriers: Iterable[HeadersIn],
    *,
    count: int,
    group: str | None = None,
    tracer: Tracer | None = None,
    attributes: Mapping[str, Any] | None = None,
    limit: int = MAX_BATCH_LINKS,
) -> Iterator[Span]:
    """One CONSUMER span for a batch of `count` messages, made current, linked to their
    producers' spans: a batch mixes many requests, so it is a root, not any one's child."""
    tracer = tracer or get_tracer(__name__)
    links, read = batch_links(carriers, limit)
    attrs: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.batch.message_count": count,
        "memestream.batch.links_dropped": count - read,
        **(attributes or {}),
    }
    if group:
        attrs["messaging.consumer.group.name"] = group
    with tracer.start_as_current_span(
        f"{name} process",
        context=otel_context.Context(),
        kind=SpanKind.CONSUMER,
        attributes=attrs,
        links=links,
    ) as span:
        yield span


@contextmanager
def client_span(
    name: str, *, tracer: Tracer | None = None, attributes: Mapping[str, Any] | None = None
) -> Iterator[Span | None]:
    """A CLIENT span for one store call, only under a recording span: the same call made by
    a timer (a tick's reconcile, a shutdown flush) would otherwise start a trace of its own."""
    if not trace.get_current_span().is_recording():
        yield None
        return
    tracer = tracer or get_tracer(__name__)
    with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
        yield span
