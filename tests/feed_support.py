"""Helpers of the live-feed tests: a private feed topic, an API process on it, SSE parsing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
from confluent_kafka.admin import NewTopic

from domain.events import FeedEvent, FeedKind
from domain.ids import new_id
from domain.settings import Settings
from memestream.testing import processes
from memestream.testing.environment import environment
from producers.admin import admin_client
from producers.producer import EventProducer


@contextmanager
def private_topic(settings: Settings, partitions: int = 3) -> Iterator[str]:
    name = f"test.feed.{uuid.uuid4().hex[:8]}"
    admin = admin_client(settings)
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
    try:
        yield name
    finally:
        admin.delete_topics([name])


@contextmanager
def feed_api(settings: Settings, name: str, **env: str) -> Iterator[str]:
    port = processes.free_port()
    full = environment(settings) | {"API_PORT": str(port), "NATS_URL": settings.nats_url} | env
    args = ["-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)]
    with processes.process(name, args, full) as proc:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(f"{url}/health", proc)
        yield url


def rendered(user_id: str | None = None) -> FeedEvent:
    return FeedEvent(
        meme_id=new_id(),
        kind=FeedKind.RENDERED,
        template_id="drake",
        status="rendered",
        user_id=user_id,
    )


async def produce(settings: Settings, topic: str, events: list[FeedEvent]) -> None:
    producer = EventProducer(settings, client_id="test-feed")
    try:
        await asyncio.gather(*(producer.send(topic, e) for e in events))
    finally:
        await asyncio.to_thread(producer.close)


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Parses the stream the way EventSource does, id-only heartbeats included."""
    current = SseEvent()
    async for line in response.aiter_lines():
        if line == "":
            yield current
            current = SseEvent()
        elif line.startswith(":"):
            current.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                current.data = f"{current.data}\n{value}" if current.data else value
            elif name in ("event", "id"):
                setattr(current, name, value)


async def collect(
    url: str,
    *,
    until: int,
    wait_s: float = 20.0,
    headers: dict[str, str] | None = None,
    kinds: tuple[str, ...] = ("message", "reload", "close"),
) -> list[SseEvent]:
    """Reads until `until` events of `kinds` arrived (hello and heartbeats are skipped)."""
    got: list[SseEvent] = []
    async with (
        httpx.AsyncClient(timeout=wait_s) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async with asyncio.timeout(wait_s):
            async for event in sse_events(response):
                if event.event in kinds and event.data:  # id-only: a heartbeat
                    got.append(event)
                    if len(got) >= until:
                        break
    return got


async def hello_cursor(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", url) as response:
        async for event in sse_events(response):
            if event.event == "hello":
                assert event.id
                return event.id
    raise AssertionError("no hello")
