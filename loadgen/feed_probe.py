"""A live-feed client held open during a replay: how late events reach a subscriber.

Why a client of our own: the replay's `feed` actions measure only time to headers (a stream's
hold time is not latency), and the API's `memestream_feed_delivery_seconds` stops at the
server's write. This probe subscribes like a browser (SSE on `/api/feed/stream`, the `new`
channel: one event per rendered, failed or deleted meme) and records, per event, its receipt
time minus the event's `occurred_at` (ms since the epoch, stamped by the worker that made it):
worker -> Kafka -> API hub -> socket -> client. Both clocks are this host's.
If the stream drops, the probe reconnects and counts the reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from loadgen.histograms import LatencyHistogram

STREAM_PATH = "/api/feed/stream"


@dataclass(slots=True)
class FeedDelivery:
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    events: int = 0
    connects: int = 0
    errors: list[str] = field(default_factory=list)

    def observe(self, line: bytes, now_ms: float) -> None:
        """One SSE line; `data:` lines of events carry `occurred_at`."""
        if not line.startswith(b"data:"):
            return
        try:
            body = orjson.loads(line[5:])
        except orjson.JSONDecodeError:
            return
        occurred = body.get("occurred_at") if isinstance(body, dict) else None
        if not isinstance(occurred, int | float) or "event_id" not in body:
            return  # a control frame (hello, close)
        self.events += 1
        self.latency.record(max(0.0, now_ms - occurred) / 1000)

    def as_dict(self) -> dict[str, object]:
        return {
            "events": self.events,
            "connects": self.connects,
            "errors": self.errors[:10],
            "latency_s": self.latency.summary() if self.latency.count else None,
        }


async def follow(
    base_url: str,
    stop: asyncio.Event,
    channels: str = "new",
    headers: dict[str, str] | None = None,
    result: FeedDelivery | None = None,
) -> FeedDelivery:
    """Reads the feed until `stop` is set; reconnects (after 1 s) when the stream ends.
    Pass `result` to watch the figures while it runs."""
    result = FeedDelivery() if result is None else result
    url = f"{base_url.rstrip('/')}{STREAM_PATH}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not stop.is_set():
            try:
                await _read(session, url, channels, headers or {}, result, stop)
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}"[:160])
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
    return result


async def _read(
    session: aiohttp.ClientSession,
    url: str,
    channels: str,
    headers: dict[str, str],
    result: FeedDelivery,
    stop: asyncio.Event,
) -> None:
    async with session.get(
        url, params={"channels": channels}, headers={"accept": "text/event-stream", **headers}
    ) as response:
        if response.status != 200:
            result.errors.append(f"HTTP {response.status}")
            return
        result.connects += 1
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                reading = asyncio.ensure_future(response.content.readline())
                done, _ = await asyncio.wait(
                    {reading, stopping}, return_when=asyncio.FIRST_COMPLETED
                )
                if reading not in done:
                    reading.cancel()
                    return
                line = reading.result()
                if not line:
                    return  # the server closed the stream
                result.observe(line, time.time() * 1000)
        finally:
            stopping.cancel()
