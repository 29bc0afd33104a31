"""SSE feed against real Kafka: live delivery, Last-Event-ID resume, gap-too-old reload,
resume across an API restart, channel filtering and heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from domain.settings import Settings
from tests.data_helpers import register
from tests.feed_support import (
    collect,
    feed_api,
    hello_cursor,
    private_topic,
    produce,
    rendered,
    sse_events,
)

pytestmark = pytest.mark.services
HISTORY = 20


@pytest.fixture(scope="module")
def topic(stack_settings: Settings) -> Iterator[str]:
    with private_topic(stack_settings) as name:
        yield name


@pytest.fixture(scope="module")
def api(stack_settings: Settings, topic: str) -> Iterator[str]:
    env = {"FEED_TOPIC": topic, "FEED_HISTORY_SIZE": str(HISTORY), "FEED_HEARTBEAT_S": "0.5"}
    with feed_api(stack_settings, "api-feed-sse", **env) as url:
        yield url


@pytest.fixture(scope="module")
def alice(api: str) -> dict[str, Any]:
    """A user: following `user:<id>` needs that user's credential (api/feed/access.py)."""
    with httpx.Client(base_url=api, timeout=10) as client:
        return register(client, "alice")  # type: ignore[arg-type]


async def test_live_events_carry_ids_and_follow_channels(
    api: str, topic: str, stack_settings: Settings, alice: dict[str, Any]
) -> None:
    mine = rendered(user_id=alice["id"])
    reader = asyncio.create_task(
        collect(
            f"{api}/api/feed/stream?channels=user:{alice['id']}",
            until=1,
            headers=alice["headers"],
        )
    )
    new_reader = asyncio.create_task(collect(f"{api}/api/feed/stream?channels=new", until=2))
    await asyncio.sleep(0.5)
    await produce(stack_settings, topic, [rendered(user_id="bob")])
    await produce(stack_settings, topic, [mine])
    (only,) = await reader
    assert orjson.loads(only.data)["meme_id"] == mine.meme_id  # bob's meme filtered out
    assert only.id and only.id.startswith("k:")
    both = await new_reader
    assert [orjson.loads(e.data)["user_id"] for e in both] == ["bob", alice["id"]]


async def test_resume_delivers_exactly_the_missed_events(
    api: str, topic: str, stack_settings: Settings
) -> None:
    cursor = await hello_cursor(f"{api}/api/feed/stream")
    missed = [rendered() for _ in range(5)]
    for event in missed:  # one at a time: their order is the order we expect
        await produce(stack_settings, topic, [event])
    await asyncio.sleep(0.5)
    got = await collect(f"{api}/api/feed/stream", until=5, headers={"Last-Event-ID": cursor})
    assert [orjson.loads(e.data)["meme_id"] for e in got] == [e.meme_id for e in missed]
    # Resuming from the last of them yields nothing old: the next event is a new one.
    later = rendered()
    task = asyncio.create_task(
        collect(f"{api}/api/feed/stream", until=1, headers={"Last-Event-ID": got[-1].id or ""})
    )
    await asyncio.sleep(0.5)
    await produce(stack_settings, topic, [later])
    assert orjson.loads((await task)[0].data)["meme_id"] == later.meme_id


async def test_gap_too_old_tells_the_client_to_reload(
    api: str, topic: str, stack_settings: Settings
) -> None:
    cursor = await hello_cursor(f"{api}/api/feed/stream")
    await produce(stack_settings, topic, [rendered() for _ in range(HISTORY + 10)])
    await asyncio.sleep(1.0)
    first = (await collect(f"{api}/api/feed/stream", until=1, headers={"Last-Event-ID": cursor}))[0]
    assert first.event == "reload"
    assert orjson.loads(first.data)["reason"] == "gap-too-old"
    assert first.id and first.id != cursor  # a fresh resume point, never a silent skip
    bogus = await collect(f"{api}/api/feed/stream?last_event_id=x:1", until=1)
    assert bogus[0].event == "reload"


async def test_heartbeats_advance_the_resume_point(api: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        async with client.stream("GET", f"{api}/api/feed/stream?channels=trending") as response:
            text = ""
            async for event in sse_events(response):
                if "heartbeat" in event.comments:
                    assert event.id and event.id.startswith("k:")
                    break
                text += event.data
        first = await client.get(f"{api}/api/feed/status")
    assert first.json()["local"]["ready"] is True


async def test_bad_channels_are_a_problem(api: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{api}/api/feed/stream?channels=everything")
    assert response.status_code == 422
    assert response.json()["type"].endswith("/bad-channels")


async def test_resume_survives_an_api_restart(stack_settings: Settings) -> None:
    with private_topic(stack_settings) as topic:
        env = {"FEED_TOPIC": topic, "FEED_HISTORY_SIZE": "100"}
        with feed_api(stack_settings, "api-feed-restart-1", **env) as url:
            cursor = await hello_cursor(f"{url}/api/feed/stream")
            await produce(stack_settings, topic, [rendered()])
            seen = await collect(
                f"{url}/api/feed/stream", until=1, headers={"Last-Event-ID": cursor}
            )
            cursor = seen[0].id or ""
        # Down: these happen while no API runs.
        missed = [rendered() for _ in range(3)]
        for event in missed:
            await produce(stack_settings, topic, [event])
        with feed_api(stack_settings, "api-feed-restart-2", **env) as url:
            got = await collect(
                f"{url}/api/feed/stream", until=3, headers={"Last-Event-ID": cursor}
            )
    # All of them, once each; Kafka orders events per meme (partition), not across memes.
    assert sorted(orjson.loads(e.data)["meme_id"] for e in got) == sorted(e.meme_id for e in missed)


def _count_events(port: int, until: int) -> int:
    """A fast raw reader in its own thread: counts events until `until` or the stream ends."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"GET /api/feed/stream?channels=new HTTP/1.1\r\nHost: t\r\n\r\n")
        seen, tail = 0, b""
        while seen < until and (data := sock.recv(1 << 20)):
            data = tail + data
            seen += data.count(b'"event_id"')
            tail = data[-9:]  # shorter than the needle: nothing is counted twice
    return seen


def _drain(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    tail = b""
    with contextlib.suppress(OSError), sock:
        while chunk := sock.recv(1 << 20):
            tail = (tail + chunk)[-4096:]
    return tail


async def test_a_stalled_client_is_dropped_with_a_reason_and_others_get_everything(
    stack_settings: Settings,
) -> None:
    burst = 6000
    with private_topic(stack_settings) as topic:
        env = {"FEED_TOPIC": topic, "FEED_CLIENT_QUEUE": "1024", "FEED_HISTORY_SIZE": "100"}
        with feed_api(stack_settings, "api-feed-slow", **env) as url:
            port = int(url.rsplit(":", 1)[1])
            stalled = socket.socket()
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.connect(("127.0.0.1", port))
            stalled.sendall(b"GET /api/feed/stream?channels=new HTTP/1.1\r\nHost: t\r\n\r\n")
            stalled.recv(256)  # the headers; then it stops reading
            reader = asyncio.create_task(asyncio.to_thread(_count_events, port, burst))
            await asyncio.sleep(0.5)
            drained = None
            async with httpx.AsyncClient() as client:
                for _ in range(burst // 500):  # ~13 MB in all, at a pace a reader can follow
                    await produce(stack_settings, topic, [rendered(user_id="x" * 2000)] * 500)
                    local = (await client.get(f"{url}/api/feed/status")).json()["local"]
                    if drained is None and local["dropped_slow"]:
                        # Dropped: read now, within the grace period, to hear the reason.
                        drained = asyncio.create_task(asyncio.to_thread(_drain, stalled))
                    await asyncio.sleep(0.1)
            assert await reader == burst  # never stalled by its stalled neighbour
            assert local["dropped_slow"] == 1 and drained is not None
            tail = await drained
            assert b"event: close" in tail and b"slow-consumer" in tail
