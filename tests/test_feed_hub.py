"""The hub's fan-out and history without the network: slow clients, eviction floors, cursors."""

from __future__ import annotations

import asyncio

import pytest

from api.feed.cursor import BadCursor, Cursor
from api.feed.history import GapTooOld
from api.feed.hub import SLOW, Hub
from domain.events import FeedEvent, FeedKind
from domain.ids import new_id


def event(kind: FeedKind = FeedKind.RENDERED) -> FeedEvent:
    return FeedEvent(meme_id=new_id(), kind=kind)


async def test_a_slow_client_is_dropped_with_a_reason_and_never_stalls_others() -> None:
    hub = Hub("k", history_size=100, queue_size=4)
    hub.history.start(0, 0)
    slow, fast = hub.connect(), hub.connect()
    hub.subscribe(slow, ["new"])
    hub.subscribe(fast, ["new"])
    received = 0
    for offset in range(10):
        hub.publish_event(0, offset, event())
        received += len(await fast.mailbox.get_batch(1.0))  # fast drains, slow never does
    assert received == 10
    assert slow.mailbox.closed == SLOW and slow not in hub.clients
    assert "new" in hub.by_channel and slow not in hub.by_channel["new"]
    assert hub.dropped_slow == 1
    assert await slow.mailbox.get_batch(0.01) == []


async def test_history_resumes_within_and_refuses_beyond_its_bound() -> None:
    hub = Hub("k", history_size=3, queue_size=10)
    hub.history.start(0, 10)
    hub.history.start(1, 0)
    start = hub.cursor
    assert str(start) == "k:9.-1"
    messages = [hub.publish_event(p, o, event()) for p, o in [(0, 10), (1, 0), (0, 11)]]
    client = hub.connect()
    assert hub.replay(client, start, {"new"}) == messages
    assert hub.replay(client, Cursor.parse(messages[1].id or ""), {"new"}) == [messages[2]]
    hub.publish_event(1, 1, event())  # evicts (0, 10): a cursor before it has a gap
    with pytest.raises(GapTooOld):
        hub.replay(client, start, {"new"})
    assert len(hub.replay(client, Cursor.parse(messages[0].id or ""), {"new"})) == 3
    with pytest.raises(GapTooOld):  # from the future: another topic or a recreated one
        hub.replay(client, Cursor("k", (99, 99)), {"new"})
    with pytest.raises(GapTooOld):
        hub.replay(client, Cursor("n", (1,)), {"new"})
    with pytest.raises(BadCursor):
        Cursor.parse("garbage")


async def test_channels_route_events() -> None:
    hub = Hub("k", history_size=10, queue_size=10)
    votes, trending, meme = hub.connect(), hub.connect(), hub.connect()
    hub.subscribe(votes, ["votes"])
    hub.subscribe(trending, ["trending"])
    target = event(FeedKind.VOTES)
    hub.subscribe(meme, [f"meme:{target.meme_id}", "votes"])
    hub.publish_event(0, 0, target)
    hub.publish_event(0, 1, event(FeedKind.TRENDING))
    assert len(await votes.mailbox.get_batch(0.1)) == 1
    assert len(await trending.mailbox.get_batch(0.1)) == 1
    assert len(await meme.mailbox.get_batch(0.1)) == 1  # once, though on two channels
    await asyncio.sleep(0)
