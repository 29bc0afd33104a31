"""Ends live streams when the server is asked to stop.

uvicorn waits for open responses before it runs the lifespan shutdown, and an event stream
never ends on its own, so without this a SIGTERM would hang until the process is killed. When
uvicorn's server starts exiting (`server_exiting`, api/uvicorn_compat.py), every client is
closed with `server-shutdown`, which makes browsers reconnect (to another replica, or this one
once restarted) with their last event id.
"""

from __future__ import annotations

import asyncio

from api.feed.hub import Hub
from api.uvicorn_compat import server_exiting

POLL_S = 0.2


async def drain_on_exit(hub: Hub) -> None:
    while not server_exiting():  # noqa: ASYNC110 - uvicorn offers no event to await
        await asyncio.sleep(POLL_S)
    for client in list(hub.clients):
        hub.disconnect(client, "server-shutdown")
    hub.closing = True
