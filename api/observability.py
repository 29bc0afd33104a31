"""The API's telemetry: RED metrics and request ids per request, server spans, `GET /metrics`.

RED metrics and the request id (`X-Request-ID` in, echoed out, bound into the logs' contextvar)
are `api.http_metrics.HttpMetricsMiddleware`, a pure ASGI middleware (one call per request)
installed last so it is outermost and sees the 413s, 429s and 500s other layers produce.

`ServerSpanMiddleware` opens one SERVER span per request, named by the route template and
continuing a client's `traceparent`; `EventProducer.send` carries its context into the Kafka
headers, which is where a generation's trace continues into the render worker. FastAPI's own
OpenTelemetry support would do the same, but it switches itself on whenever a tracer provider
exists and cost ~60 us more per request than this middleware in every run of
`benchmarks/observability.py` (2 shared cores, figures vary with load), so `TELEMETRY`
(passed to `FastAPI`) turns it off; scrape and liveness endpoints get no span.

Start-up (`start`, from the lifespan): JSON logs on the root logger, uvicorn's loggers
included, and a tracer provider unless the process already has one (a test's, or one made
by an earlier app in the same process); the provider is flushed, not shut down, at the end.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Response
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http_metrics import HttpMetricsMiddleware
from domain.logs import setup_logging
from domain.metrics import render_metrics
from domain.settings import Settings
from domain.tracing import extract_context, get_tracer, setup_tracing

METRICS_PATH = "/metrics"
UNTRACED = frozenset({METRICS_PATH, "/health", "/ready"})
TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

tracer = get_tracer(__name__)


class ServerSpanMiddleware:
    """One SERVER span per HTTP request, continuing the caller's trace if it sent one."""

    def __init__(self, app: ASGIApp, skip: frozenset[str] = UNTRACED) -> None:
        self.app = app
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        carrier = [(k.decode("latin-1"), v) for k, v in scope["headers"]]
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with tracer.start_as_current_span(
            method,
            context=extract_context(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as span:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))


def metrics_endpoint() -> Response:
    """Prometheus exposition (merged across processes when PROMETHEUS_MULTIPROC_DIR is set)."""
    body, content_type = render_metrics()
    return Response(content=body, headers={"Content-Type": content_type})


def install(app: FastAPI) -> None:
    """Adds `/metrics` and the middlewares; call it after every other `add_middleware`."""
    app.add_api_route(METRICS_PATH, metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(ServerSpanMiddleware)
    app.add_middleware(HttpMetricsMiddleware)


def service_name(settings: Settings, component: str) -> str:
    """`OTEL_SERVICE_NAME` when set (one per Deployment), else `memestream-<component>`."""
    if "otel_service_name" in settings.model_fields_set:
        return settings.otel_service_name
    return f"{settings.otel_service_name}-{component}"


def start(settings: Settings) -> None:
    """JSON logs and tracing for this process; safe to call once per app started."""
    name = service_name(settings, "api")
    access = logging.getLogger("uvicorn.access")
    # uvicorn leaves this logger without handlers under --no-access-log, and its protocols
    # write access lines whenever it `hasHandlers()`: propagating it then would turn them on.
    access_on = bool(access.handlers)
    setup_logging(settings, service=name)
    for logger_name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(logger_name)
        logger.handlers.clear()
        logger.propagate = logger is not access or access_on
    # uvicorn sets INFO on its loggers; LOG_LEVEL=WARNING must quiet the access lines too.
    access.setLevel(max(logging.INFO, logging.getLogger().level))
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        setup_tracing(settings, service_name=name)


def flush() -> None:
    """Exports the spans still buffered (the provider stays up for a later app in-process)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(timeout_millis=5000)
