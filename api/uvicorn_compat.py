"""Every use of uvicorn's internals, and the uvicorn versions it was tested against.

The API reaches past ASGI into uvicorn in three places, none of them a public interface:
- the live feed writes clients' sockets directly (api/feed/direct.py): `sse_transport` and
  `ws_transport` find the transport behind the `send` uvicorn hands the app (its HTTP cycle's
  `chunked_encoding` and `transport`, its WebSocket protocol's `transport` and extensions);
- the feed ends its streams on SIGTERM (api/feed/drain.py): `server_exiting` finds uvicorn's
  server through its signal handler and reads `should_exit`;
- slow-client deadlines (api/slow_clients.py) subclass `HttpToolsProtocol` and use its
  `STATUS_LINE` table.
A uvicorn release may move any of them; the first two then quietly fall back (the ASGI path,
no drain on exit) and the third fails at import. `check()` refuses a uvicorn outside `TESTED`
instead, with the version and the range in the error: the app calls it when it is built, and
slow_clients when it is imported (uvicorn imports it before the app). `pyproject.toml` bounds
uvicorn with the same range. Nothing else in `api/` touches uvicorn's private parts.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from domain.tested_versions import UntestedVersion, require

__all__ = [
    "STATUS_LINE",
    "TESTED",
    "HttpToolsProtocol",
    "UntestedVersion",
    "check",
    "server_exiting",
    "sse_transport",
    "ws_transport",
]

#: Distribution -> the versions these accessors were tested on (pyproject.toml's bound matches).
TESTED = {"uvicorn": ">=0.30,<0.56"}


def check() -> dict[str, str]:
    """The installed uvicorn version; raises `UntestedVersion` outside `TESTED`."""
    return require(TESTED, "api.uvicorn_compat")


def _transport_of(owner: Any) -> asyncio.WriteTransport | None:
    transport = getattr(owner, "transport", None)
    needed = ("write", "is_closing", "get_write_buffer_size", "close", "abort")
    return transport if all(hasattr(transport, n) for n in needed) else None


def sse_transport(send: Any) -> asyncio.WriteTransport | None:
    """The socket's transport behind uvicorn's HTTP `send` (a bound method of its request
    cycle), when the response is chunked; None for any other server or framing."""
    cycle = getattr(send, "__self__", None)
    if getattr(cycle, "chunked_encoding", None) is not True:
        return None
    return _transport_of(cycle)


def ws_transport(send: Any) -> asyncio.WriteTransport | None:
    """The socket's transport behind uvicorn's WebSocket `send`, when no extension (such as
    permessage-deflate) changes the frames; None otherwise."""
    protocol = getattr(send, "__self__", None)
    conn = getattr(protocol, "conn", None)  # uvicorn's websockets-sansio implementation
    extensions = getattr(conn if conn is not None else protocol, "extensions", None)
    if extensions is None or len(extensions) > 0:
        return None
    return _transport_of(protocol)


def server_exiting() -> bool:
    """Whether uvicorn's server started exiting: its SIGTERM handler is a bound method of the
    server (found the way sse-starlette finds it), and `should_exit` is set on a signal."""
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return bool(getattr(server, "should_exit", False))
