"""A worker's telemetry: JSON logs, tracing, `/metrics`, the consumer-lag gauge and liveness.

Why logs in a start-up task: `faust.Worker` configures logging itself when it starts (and may
redirect stdout/stderr into a logger), so ours replaces it afterwards, on the real stderr; the
worker's first start-up lines are still Faust's text. The tracer provider is installed when
the app is made (unless the process has one), so no event is handled before it exists. The
service name is `OTEL_SERVICE_NAME` when set (Kubernetes and compose set one per Deployment),
else `memestream-<role>`.
"""

from __future__ import annotations

import sys
from typing import Any

import faust
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from domain.logs import setup_logging
from domain.settings import Settings
from domain.tracing import setup_tracing, shutdown_tracing
from streams import lag, liveness, metrics_view


def service_name(settings: Settings, component: str) -> str:
    if "otel_service_name" in settings.model_fields_set:
        return settings.otel_service_name
    return f"{settings.otel_service_name}-{component}"


def install(app: faust.App, settings: Settings, component: str) -> None:
    metrics_view.register(app)
    lag.register(app, settings)
    liveness.register(app, settings)
    name = service_name(settings, component)
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        setup_tracing(settings, service_name=name)

    @app.task
    async def start_logging() -> None:
        setup_logging(settings, service=name, stream=sys.__stderr__)

    @app.on_before_shutdown.connect
    def stop_tracing(app: faust.App, **_: Any) -> None:
        shutdown_tracing()
