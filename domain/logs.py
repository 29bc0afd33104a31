"""Structured JSON logs with a request id that follows a request from the API into the workers.

Why: one generation crosses the API, Kafka, a worker and several stores; grepping one id across
all their logs (and jumping to its trace) is how an operator follows it. The id lives in a
contextvar, so it is right under asyncio and threads alike; the API binds it per request, the
producer copies it into the Kafka headers (`x-request-id`), and a worker binds it again from the
headers before handling the event. Each line is one JSON object on stderr with `ts`, `level`,
`logger`, `msg`, `service`, `request_id`, `trace_id`/`span_id` when a span is active, and any
`extra={...}` fields; `LOG_FORMAT=text` gives a readable line for a terminal instead.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from domain.settings import Settings

REQUEST_ID_HEADER = "x-request-id"

request_id_var: ContextVar[str | None] = ContextVar("memestream_request_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "request_id", "trace_id", "span_id", "service", "taskName"}

HeaderList = Sequence[tuple[str, bytes | None]]


def new_request_id() -> str:
    """A fresh id for a request that arrived without one."""
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id_var.get()


@contextmanager
def bound_request_id(request_id: str | None) -> Iterator[str | None]:
    """Binds the id for the block (a request, or one consumed event), then restores the old one."""
    token = request_id_var.set(request_id)
    try:
        yield request_id
    finally:
        request_id_var.reset(token)


def request_id_headers(
    headers: list[tuple[str, bytes]] | None = None, request_id: str | None = None
) -> list[tuple[str, bytes]]:
    """Kafka headers with the current request id added (replacing an older one)."""
    out = [(k, v) for k, v in (headers or []) if k.lower() != REQUEST_ID_HEADER]
    rid = request_id or request_id_var.get()
    if rid:
        out.append((REQUEST_ID_HEADER, rid.encode()))
    return out


def request_id_from_headers(headers: HeaderList | Mapping[str, bytes | None] | None) -> str | None:
    """The request id a producer put in the headers of a Kafka message, if any."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key.lower() == REQUEST_ID_HEADER and value:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return None


def _trace_ids() -> tuple[str | None, str | None]:
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
        return None, None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


class ContextFilter(logging.Filter):
    """Copies the request id, trace ids and service name onto every record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.trace_id, record.span_id = _trace_ids()
        record.service = self.service
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields are kept, values that JSON lacks become text."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "service": getattr(record, "service", None),
        }
        for key in ("request_id", "trace_id", "span_id"):
            value = getattr(record, key, None)
            if value:
                doc[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"


def setup_logging(
    settings: Settings | None = None,
    *,
    service: str | None = None,
    level: str | None = None,
    fmt: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Installs one handler on the root logger (idempotent: earlier handlers are replaced)."""
    if settings is None:
        from domain.settings import get_settings

        settings = get_settings()
    level_name = (level or settings.log_level).upper()
    fmt = fmt or settings.log_format
    service = service or settings.otel_service_name
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter(service))
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_name)
    # Client libraries are chatty at INFO; their warnings still come through.
    for noisy in ("kafka", "aiokafka", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    return handler
