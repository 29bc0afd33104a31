"""Ends live streams when the server is asked to stop.

uvicorn waits for open responses before it runs the lifespan shutdown, and an event stream
never ends on its own, so without this a SIGTERM would hang until the process is killed. The
uvicorn server is found the way sse-starlette finds it (the SIGTERM handler is its bound
method); when it starts exiting, every client is closed with `server-shutdown`, which makes
browsers reconnect (to another replica, or this one once restarted) with their last event id.
"""

from __future__ import annotations

import asyncio
import signal

from api.feed.hub import Hub

POLL_S = 0.2


def server_exiting() -> bool:
    handler = signal.getsignal(signal.SIGTERM)
    server = getattr(handler, "__self__", None)
    return bool(getattr(server, "should_exit", False))


async def drain_on_exit(hub: Hub) -> None:
    while not server_exiting():  # noqa: ASYNC110 - uvicorn offers no event to await
        await asyncio.sleep(POLL_S)
    for client in list(hub.clients):
        hub.disconnect(client, "server-shutdown")
    hub.closing = True
