"""Direct writes: a broadcast writes each client's socket in the same pass, no task per client.

Through ASGI every event cost each client a task wake-up, a coroutine chain and uvicorn's
`send`; measured with py-spy that is most of the server's CPU at 10,000 clients and kept the
fan-out far from 100 ms. A feed frame is the same bytes for every client (an HTTP chunk of the
SSE event, or an unmasked WebSocket text frame without extensions), so it is encoded once and
written to each client's transport directly.

The transport comes from the ASGI server's own `send` (uvicorn's is a bound method of its
connection object, and `FeedFastPath` receives it unwrapped), found by `sse_transport` and
`ws_transport` in api/uvicorn_compat.py, the one module that knows uvicorn's internals.
Anything unexpected (another server, h11 without chunking, a WebSocket with permessage-deflate)
gives no transport and that client keeps the ASGI path with its mailbox, so this is an
optimisation, never a requirement.

When nothing is queued in the transport, the frame goes to the socket with one `os.write`:
at 10,000 clients the transport's own write path cost ~0.8 us more per client than the bare
syscall, a tenth of the fan-out (benchmarks/feed.py). A partial or failed write hands the rest
to the transport, which buffers it or notices the broken connection, so order and error
handling stay the transport's. Only plain TCP is written this way (never TLS), and only while
the transport is open, so the descriptor is still this connection's.

Slowness is measured in bytes: a client whose transport holds more than `limit` unsent bytes
(the kernel buffer is already full by then) is closed with `slow-consumer`, after a farewell
frame and a grace period before the connection is aborted.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import TypeVar

import orjson

from api.feed.framing import chunk, ws_frame
from api.feed.messages import Message

SSE = "sse"
WS = "ws"
GRACE_S = 5.0
WS_CLOSE_CODES = {
    "slow-consumer": 4008,
    "server-shutdown": 1012,
    "unauthorized": 1008,  # policy violation: a channel the caller may not follow
    "forbidden": 1008,
}


def _plain_fd(transport: asyncio.WriteTransport) -> int | None:
    """The socket's descriptor when bytes written to it reach the peer as they are."""
    if transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    fileno = getattr(sock, "fileno", None)
    return fileno() if callable(fileno) else None


class DirectWriter:
    __slots__ = ("fd", "kind", "limit", "transport")

    def __init__(self, kind: str, transport: asyncio.WriteTransport, limit: int) -> None:
        self.kind = kind
        self.transport = transport
        self.limit = limit
        self.fd = _plain_fd(transport)

    def __call__(self, frame: Message | str) -> bool:
        """Writes now; False when the client is too far behind (the hub drops it)."""
        if isinstance(frame, Message):
            data = frame.sse_chunk if self.kind == SSE else frame.ws_frame
        else:
            data = ws_frame(frame.encode()) if self.kind == WS else chunk(frame.encode())
        return not write_each((route(self, self),), data, data)

    def close(self, reason: str, cursor: str) -> None:
        """Says why, then closes; a client that does not read in time is aborted."""
        transport = self.transport
        if transport.is_closing():
            return
        if self.kind == SSE:
            body = orjson.dumps({"reason": reason, "cursor": cursor})
            transport.write(chunk(b"event: close\ndata: " + body + b"\n\n") + b"0\r\n\r\n")
        else:
            code = WS_CLOSE_CODES.get(reason, 1000)
            transport.write(ws_frame(code.to_bytes(2, "big") + reason.encode()[:100], 0x8))
        transport.close()
        asyncio.get_running_loop().call_later(GRACE_S, transport.abort)


C = TypeVar("C")

#: One client's way to its socket, flattened for the fan-out loop: (transport, fd or None,
#: whether it is SSE, its byte limit, the client).
Route = tuple[asyncio.WriteTransport, int | None, bool, int, C]


def route(writer: DirectWriter, client: C) -> Route[C]:
    return (writer.transport, writer.fd, writer.kind == SSE, writer.limit, client)


def write_each(routes: Iterable[Route[C]], sse: bytes, ws: bytes) -> list[C]:
    """Writes one frame down every route; returns the clients too far behind.

    One loop over flat tuples with no call per client but the transport's and the syscall:
    with a method call and three objects to visit per client, it cost ~1.5 us more per client
    than the syscall it exists for (10,000 clients: 15 ms of each broadcast).
    """
    slow: list[C] = []
    write = os.write
    for transport, fd, is_sse, limit, client in routes:
        if transport.is_closing():
            continue  # gone: the endpoint's receive sees the disconnect and cleans up
        data = sse if is_sse else ws
        queued = transport.get_write_buffer_size()
        if queued or fd is None:
            if queued > limit:
                slow.append(client)
            else:
                transport.write(data)
            continue
        try:
            sent = write(fd, data)
        except OSError:  # full (EAGAIN) or failing: the transport buffers it or closes
            sent = 0
        if sent < len(data):
            transport.write(data[sent:])
    return slow
