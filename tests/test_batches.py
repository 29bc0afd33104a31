"""`FetchedBatches`: batch sizes, flow control and which messages get acknowledged.

The path through a real broker and Faust worker is covered by tests/test_trending_replay.py
(replay, SIGKILL recovery, duplicates); this checks the hand-over's own rules.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.types import TP

from streams.faust_compat.batches import FetchedBatches

VOTES = TP("meme.votes", 0)
VIEWS = TP("meme.views", 1)


@dataclass
class Message:
    tp: TP
    offset: int
    generation_id: int = 1


@dataclass
class Consumer:
    owned: set[TP]
    acked: list[Message] = field(default_factory=list)

    def assignment(self) -> set[TP]:
        return self.owned

    def ack(self, message: Message) -> bool:
        self.acked.append(message)
        return True


@dataclass
class App:
    consumer: Consumer
    consumer_generation_id: int = 1


def messages(tp: TP, n: int, first: int = 0) -> list[Any]:
    return [Message(tp, offset) for offset in range(first, first + n)]


async def test_a_batch_holds_what_was_fetched_since_the_last_one_up_to_the_limit() -> None:
    app = App(Consumer({VOTES, VIEWS}))
    fetched = FetchedBatches(app, limit=5)  # type: ignore[arg-type]
    await fetched.put(messages(VOTES, 3))
    await fetched.put(messages(VIEWS, 4))
    batches = aiter(fetched)
    first = await anext(batches)
    second = await anext(batches)
    assert [(m.tp, m.offset) for m in first] == [
        (VOTES, 0),
        (VOTES, 1),
        (VOTES, 2),
        (VIEWS, 0),
        (VIEWS, 1),
    ]
    assert [(m.tp, m.offset) for m in second] == [(VIEWS, 2), (VIEWS, 3)]
    # The first batch was acknowledged when the agent asked for the second, not before.
    assert [m.offset for m in app.consumer.acked] == [0, 1, 2, 0, 1]


async def test_put_waits_while_the_agent_is_a_limit_behind() -> None:
    app = App(Consumer({VOTES}))
    fetched = FetchedBatches(app, limit=4)  # type: ignore[arg-type]
    await fetched.put(messages(VOTES, 4))
    blocked = asyncio.create_task(fetched.put(messages(VOTES, 2, first=4)))
    await asyncio.sleep(0.01)
    assert not blocked.done(), "the consumer loop must stop fetching for a full agent"
    batches = aiter(fetched)
    assert len(await anext(batches)) == 4
    await asyncio.wait_for(blocked, timeout=1)
    assert [m.offset for m in await anext(batches)] == [4, 5]


@pytest.mark.parametrize(
    ("generation", "owned", "acked"),
    [(1, {VOTES}, [0, 1]), (2, {VOTES}, []), (1, {VIEWS}, [])],
    ids=["current", "fetched-before-a-rebalance", "partition-moved-away"],
)
async def test_only_messages_of_the_current_assignment_are_acknowledged(
    generation: int, owned: set[TP], acked: list[int]
) -> None:
    app = App(Consumer(owned), consumer_generation_id=generation)
    fetched = FetchedBatches(app, limit=10)  # type: ignore[arg-type]
    await fetched.put(messages(VOTES, 2))
    fetched.ack(await anext(aiter(fetched)))
    assert [m.offset for m in app.consumer.acked] == acked
