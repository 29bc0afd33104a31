"""Header and body read timeouts: uvicorn's HTTP protocol, with deadlines for slow clients.

uvicorn times out an idle kept-alive connection (`--timeout-keep-alive`) but nothing else: a
client that opens a connection and sends nothing, or trickles its headers or its body a byte
at a time, holds a socket, a protocol object and (for a body) a running request forever, and a
few thousand of them are a denial of service. uvicorn has no option for it, and an ASGI
middleware cannot help with headers (the app sees a request only once its headers are in), so
this subclasses uvicorn's httptools protocol, the one `--http auto` picks
(memestream/stack/apps.py passes this class by its import path; h11 is not covered). The
protocol comes from api/uvicorn_compat.py, which refuses an untested uvicorn at import.

Deadlines, per connection:
- headers: HTTP_HEADER_TIMEOUT_S from the connection's start, or from the first byte of the
  next request on a kept-alive connection (the idle time before it is uvicorn's keep-alive);
- body: HTTP_BODY_TIMEOUT_S from the end of the headers, plus one second per
  HTTP_BODY_MIN_RATE bytes received, so a large upload on a slow but honest link finishes
  while a trickle does not. Time while uvicorn paused reading (the app is not consuming the
  body) does not count against the client.
Past a deadline the client gets `408 Request Timeout` (unless a response already started) and
the connection is closed; the request's app, if running, sees `http.disconnect`. Once a
request is complete nothing is timed here, so SSE streams and WebSockets (upgraded before any
body) live as long as they like.

Cheap on the hot path: a deadline is a float on the connection; one timer per connection is
re-armed only when it fires early, so a fast request allocates no timer of its own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from api import uvicorn_compat
from api.uvicorn_compat import STATUS_LINE, HttpToolsProtocol
from domain.metrics import SLOW_CLIENTS_CLOSED
from domain.settings import get_settings

uvicorn_compat.check()  # uvicorn imports this class before the app: refuse here too

log = logging.getLogger(__name__)
HEADERS = "headers"
BODY = "body"
RESPONSE_408 = STATUS_LINE[408] + (
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\n"
    b"connection: close\r\n\r\n"
    b"request timeout\n"
)


class SlowClientTimeouts(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body read deadlines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout = settings.http_header_timeout_s
        self.body_timeout = settings.http_body_timeout_s
        self.body_rate = float(settings.http_body_min_rate)
        self.deadline: float | None = None
        self.phase = HEADERS
        self.timer: asyncio.TimerHandle | None = None

    def _expect(self, phase: str, seconds: float) -> None:
        self.phase = phase
        self.deadline = self.loop.time() + seconds
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self._check)

    def _check(self) -> None:
        self.timer = None
        deadline = self.deadline
        if deadline is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.flow is not None and self.flow.read_paused:
            deadline = self.deadline = now + self.body_timeout  # our slowness, not theirs
        if now < deadline:
            self.timer = self.loop.call_at(deadline, self._check)
            return
        self.deadline = None
        SLOW_CLIENTS_CLOSED.labels(phase=self.phase).inc()
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(RESPONSE_408)
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect(HEADERS, self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.deadline is None:  # a kept-alive connection's next request
            self._expect(HEADERS, self.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._expect(BODY, self.body_timeout)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self.deadline is not None:
            self.deadline += len(body) / self.body_rate

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.deadline = None

    def handle_websocket_upgrade(self) -> None:
        self.deadline = None  # the WebSocket protocol owns the connection from here
        super().handle_websocket_upgrade()
