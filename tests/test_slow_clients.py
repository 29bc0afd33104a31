"""Header and body read timeouts (api/slow_clients.py) on a real API with 1-second deadlines:
silent, trickling and half-sent requests get 408 and lose their connection, while normal
requests, kept-alive connections, SSE streams and WebSockets go on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from domain.settings import Settings
from memestream.testing.processes import memestream_api
from tests.feed_support import sse_events

pytestmark = pytest.mark.services
TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[str]:
    env = {
        "HTTP_HEADER_TIMEOUT_S": str(TIMEOUT_S),
        "HTTP_BODY_TIMEOUT_S": str(TIMEOUT_S),
        "FEED_HEARTBEAT_S": "0.3",
    }
    with memestream_api(stack_settings, "api-slow-clients", **env) as url:
        yield url


async def _open(api: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = api.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def _until_closed(reader: asyncio.StreamReader, within_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes; and when, from now."""
    started = time.monotonic()
    async with asyncio.timeout(within_s):
        data = await reader.read()  # until EOF
    return data, time.monotonic() - started


async def test_a_silent_connection_is_closed(api: str) -> None:
    reader, writer = await _open(api)
    data, took = await _until_closed(reader, TIMEOUT_S + 3)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert TIMEOUT_S * 0.8 <= took <= TIMEOUT_S + 1.5
    writer.close()


async def test_trickled_headers_are_cut_off_while_others_are_served(api: str) -> None:
    reader, writer = await _open(api)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    served = []

    async def trickle() -> None:
        for i in range(40):  # bounded: 40 x 0.1 s, far past the deadline
            writer.write(f"X-Slow-{i}: 1\r\n".encode())
            await asyncio.sleep(0.1)

    task = asyncio.create_task(trickle())
    async with httpx.AsyncClient(base_url=api, timeout=5) as client:
        for _ in range(3):
            served.append((await client.get("/health")).status_code)
    data, _ = await _until_closed(reader, TIMEOUT_S + 3)
    took = time.monotonic() - started
    task.cancel()
    assert served == [200, 200, 200]
    assert data.startswith(b"HTTP/1.1 408 ") and took <= TIMEOUT_S + 1.5
    writer.close()


async def test_a_body_that_stops_coming_is_cut_off(api: str) -> None:
    reader, writer = await _open(api)
    writer.write(
        b"POST /api/meme/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"template_id": '
    )
    data, took = await _until_closed(reader, TIMEOUT_S + 3)
    assert data.startswith(b"HTTP/1.1 408 ") and took <= TIMEOUT_S + 1.5
    writer.close()


async def test_kept_alive_connections_get_a_fresh_deadline_per_request(api: str) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=5) as client:
        first = await client.get("/health")
        await asyncio.sleep(TIMEOUT_S * 1.5)  # idle (keep-alive is 5 s): not a slow header
        second = await client.get("/health")
    assert first.status_code == second.status_code == 200


async def test_feed_streams_outlive_the_deadlines(api: str) -> None:
    beats = 0
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{api}/api/feed/stream?channels=new") as response,
    ):
        assert response.status_code == 200
        started = time.monotonic()
        async for event in sse_events(response):
            beats += event.id is not None and not event.data
            if time.monotonic() - started > TIMEOUT_S * 2.5:
                break
    assert beats >= 3  # heartbeats kept coming past both deadlines
    url = api.replace("http://", "ws://") + "/api/feed/ws"
    async with websockets.connect(url) as ws:
        await asyncio.sleep(TIMEOUT_S * 2.5)
        await ws.send(json.dumps({"type": "ping", "ts": 1, "ref": "p"}))
        async with asyncio.timeout(5):
            while json.loads(await ws.recv())["type"] != "pong":
                pass
