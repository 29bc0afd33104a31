"""The feed probe against a real API on a private feed topic: events and how late they came."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from domain.settings import Settings
from loadgen.feed_probe import FeedDelivery, follow
from tests.feed_support import feed_api, private_topic, produce, rendered

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def api(stack_settings: Settings) -> Iterator[tuple[str, str]]:
    with (
        private_topic(stack_settings) as topic,
        feed_api(stack_settings, "api-feed-probe", FEED_TOPIC=topic) as url,
    ):
        yield url, topic


async def _eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


async def test_the_probe_times_each_event_from_occurrence_to_receipt(
    api: tuple[str, str], stack_settings: Settings
) -> None:
    url, topic = api
    stop, seen = asyncio.Event(), FeedDelivery()
    probe = asyncio.create_task(follow(url, stop, result=seen))
    await _eventually(lambda: seen.connects > 0)  # subscribed before the events exist
    await produce(stack_settings, topic, [rendered() for _ in range(3)])
    await _eventually(lambda: seen.events >= 3)
    stop.set()
    result = await asyncio.wait_for(probe, timeout=5)
    assert result is seen
    assert result.connects == 1 and not result.errors
    assert result.events == 3 and result.latency.count == 3
    assert 0 < result.latency.max() < 10, "produced, consumed and delivered within seconds"
    assert result.as_dict()["latency_s"]["p99"] == result.latency.percentile(99)


def test_control_frames_and_comments_are_not_events() -> None:
    probe = FeedDelivery()
    probe.observe(b"event: hello\n", 1_000)
    probe.observe(b'data: {"channels": ["new"], "cursor": "k:1"}\n', 1_000)
    probe.observe(b": heartbeat\n", 1_000)
    probe.observe(b"data: not json\n", 1_000)
    assert probe.events == 0
    probe.observe(b'data: {"event_id": "e", "occurred_at": 400}\n', 1_000)
    assert probe.events == 1 and probe.latency.percentile(99) == pytest.approx(0.6, rel=0.01)
