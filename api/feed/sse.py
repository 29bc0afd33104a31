"""The SSE response: the hub writes the socket directly (api/feed/direct.py) and the
connection's task only waits for the disconnect; without a direct transport, the task drains
the client's mailbox instead.

Hand-rolled on raw ASGI rather than sse-starlette or StreamingResponse: those add a task group,
a ping task and a disconnect task per connection, and the budget here is 25 KB per connection
at 20,000 connections. What it keeps of the protocol: `retry:` hint first, every feed event
with `id:`, heartbeats that are id-only events (so `Last-Event-ID` advances even on a quiet
channel, keeping resume inside the history) plus a comment, and named `reload` / `close`
events that say why.

Metrics: the connection counts in `memestream_live_connections{transport="sse"}` (the API's
HPA scales on it) from the response's start to its end, however it ends. A feed event this
task writes from the mailbox is timed in `memestream_feed_delivery_seconds{transport="sse"}`;
events the hub writes directly are timed by the hub, once per broadcast.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from api.feed.direct import SSE, DirectWriter
from api.feed.hub import Client, Frame, Hub
from api.feed.messages import Message
from api.uvicorn_compat import sse_transport
from domain.metrics import (
    FEED_DELIVERY_LATENCY,
    LIVE_CONNECTIONS,
    live_connection,
    observe_feed_delivery,
)

TRANSPORT = "sse"
# Created at import: an idle replica exports 0 connections (the HPA needs the series).
LIVE_CONNECTIONS.labels(transport=TRANSPORT)
FEED_DELIVERY_LATENCY.labels(transport=TRANSPORT)

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
    (
        b"x-content-type-options",
        b"nosniff",
    ),  # the middleware stack (api/security_headers.py) is skipped
]


def control_frame(event: str, body: dict[str, object], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n".encode() if event_id else b""
    return head + f"event: {event}\n".encode() + b"data: " + orjson.dumps(body) + b"\n\n"


def encode(frame: Frame) -> bytes:
    return frame.sse if isinstance(frame, Message) else frame.encode()


def observe_delivered(batch: list[Frame], transport: str) -> None:
    """Times the live feed events of a batch just written. Heartbeats, presence and drafts
    are not feed events, and replayed history is not live: it reaches the client as text (the
    SSE preamble, `WsSession.subscribe`), never as a `Message` in the mailbox."""
    for frame in batch:
        if isinstance(frame, Message) and frame.kind == "event" and frame.id is not None:
            occurred = frame.body.get("occurred_at")
            if isinstance(occurred, int | float):
                observe_feed_delivery(transport, occurred)


class EventStream(Response):
    def __init__(self, hub: Hub, client: Client, preamble: bytes, direct_limit: int = 0) -> None:
        self.hub = hub
        self.client = client
        self.preamble = preamble
        self.direct_limit = direct_limit
        self.status_code = 200
        self.background = None
        self.raw_headers = list(HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with live_connection(TRANSPORT):
            await self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub, client = self.hub, self.client
        mailbox = client.mailbox
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": self.preamble, "more_body": True})
        except BaseException:
            hub.disconnect(client)
            raise
        transport = sse_transport(send) if self.direct_limit else None
        if transport is not None and mailbox.closed is None:
            await self._direct(receive, DirectWriter(SSE, transport, self.direct_limit))
            return
        watcher = asyncio.get_running_loop().create_task(self._watch(receive))
        try:
            while True:
                batch = await mailbox.get_batch()
                if mailbox.closed is not None:
                    if mailbox.closed != "disconnected":
                        body = {"reason": mailbox.closed, "cursor": str(hub.cursor)}
                        chunk = control_frame("close", body)
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    break
                chunk = b"".join(map(encode, batch))
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                observe_delivered(batch, TRANSPORT)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not client.killed:
                raise
            # A stalled slow consumer: our own cancellation, the connection just goes away.
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
        except OSError:
            pass
        finally:
            hub.disconnect(client)
            watcher.cancel()

    async def _direct(self, receive: Receive, writer: DirectWriter) -> None:
        """The hub writes this client's socket; this task only waits for the disconnect."""
        self.hub.go_direct(self.client, writer)
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            self.hub.disconnect(self.client)

    async def _watch(self, receive: Receive) -> None:
        with contextlib.suppress(Exception):
            while (await receive())["type"] != "http.disconnect":
                pass
        self.hub.disconnect(self.client)
