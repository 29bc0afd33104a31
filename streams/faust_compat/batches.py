"""Fetched batches handed straight to an agent, past Faust's per-message stream.

Faust delivers every message through the conductor, a channel queue, a `Stream` and its
`Event`, and `Consumer._drain_messages` wraps each hand-over in `Service.wait_first`, which
creates four asyncio tasks and an `asyncio.wait`. On this project's 2-core machine that path
caps an agent that does nothing near 4,000 messages/s, while aiokafka fetches over 400,000/s.

An agent that works on batches anyway (trending) asks for `batches(stream)` instead of
iterating its stream: the consumer loop below appends each fetched message of the agent's
topics to a `FetchedBatches` and the agent takes everything gathered since its last batch, so
batches grow with the backlog and stay small when traffic is light. Messages are acknowledged
after the agent finished the batch (the next iteration asks for more), which keeps Faust's
offset commits at-least-once; copies fetched before a rebalance are neither counted by the
agent nor acknowledged (Faust seeks back and delivers them again).

The loop replaces `Consumer._drain_messages` (the rest of it, read offsets, gap tracking and
`commit_every`, is Faust's) when `streams.faust_compat.install` finds an agent that asked for
batches and a faust-streaming version in the tested range (outside it, the worker refuses to
start). Messages of other agents' topics still go through the conductor, but awaited directly
instead of through `wait_first`: it does not cancel the callback, so a message handed over
before a rebalance is delivered either way. Without the loop (an app `install` never saw),
`of` falls back to taking events from the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, cast
from weakref import WeakKeyDictionary

import faust
from faust.transport import consumer as faust_consumer
from faust.types import Message

log = logging.getLogger(__name__)
#: The per-message path yields to the event loop this often.
YIELD_EVERY = 100


class FetchedBatches:
    """The fetched, not yet processed messages of one agent's topics.

    A batch holds at most `limit` messages. `put` waits while `limit` messages are pending:
    the consumer loop stops fetching for every agent when one falls behind, which is Faust's
    flow control too.
    """

    def __init__(self, app: faust.App, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._pending: list[Message] = []
        self._ready = asyncio.Event()
        self._room = asyncio.Event()

    async def put(self, messages: list[Message]) -> None:
        while len(self._pending) >= self.limit:
            self._room.clear()
            await self._room.wait()
        self._pending.extend(messages)
        self._ready.set()

    async def __aiter__(self) -> AsyncIterator[list[Message]]:
        while True:
            await self._ready.wait()
            batch = self._pending[: self.limit]
            del self._pending[: self.limit]
            if not self._pending:
                self._ready.clear()
            self._room.set()
            yield batch
            self.ack(batch)

    async def of(self, stream: faust.StreamT[Any], within: float) -> AsyncIterator[list[Message]]:
        """This agent's batches; without the loop below installed, what
        `stream.take_events(limit, within)` gives."""
        if installed():
            async for batch in self:
                yield batch
        else:
            async for events in stream.take_events(self.limit, within=within):
                yield [event.message for event in events]

    def ack(self, batch: list[Message]) -> None:
        """Acknowledges the messages of the current assignment and consumer generation."""
        consumer = self.app.consumer
        generation = self.app.consumer_generation_id
        owned = consumer.assignment()
        ack = consumer.ack
        for message in batch:
            if message.generation_id == generation and message.tp in owned:
                ack(message)


_routes: WeakKeyDictionary[faust.App, dict[str, FetchedBatches]] = WeakKeyDictionary()


def route(app: faust.App, topic: faust.TopicT, *, limit: int) -> FetchedBatches:
    """Sends the topic's fetched messages to a `FetchedBatches` (before the agent starts, so
    no message of the topic reaches the agent's unread stream)."""
    fetched = FetchedBatches(app, limit)
    routes = _routes.setdefault(app, {})
    for name in topic.topics:
        routes[name] = fetched
    return fetched


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust's loop
    callback = self.callback
    getmany = self.getmany
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = self._read_offset.__getitem__
    set_read_offset = self._read_offset.__setitem__
    acks_enabled_for = self.app.topics.acks_enabled_for
    commit_every = self._commit_every
    routes = _routes.setdefault(self.app, {})
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            ait = cast(AsyncIterator[Any], getmany(timeout=1.0))
            await self.sleep(0)
            if self.should_stop:
                continue
            fetched: dict[FetchedBatches, list[Message]] = {}
            async for tp, message in ait:
                offset = message.offset
                r_offset = get_read_offset(tp)
                if r_offset is not None and offset < r_offset:
                    continue
                gap = offset - (r_offset or 0)
                if gap > 1 and r_offset and acks_enabled_for(message.topic):
                    await self._add_gap(tp, r_offset + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                route = routes.get(tp.topic)
                if route is not None:
                    fetched.setdefault(route, []).append(message)
                    set_read_offset(tp, offset)
                    continue
                since_yield += 1
                if since_yield > YIELD_EVERY:
                    await asyncio.sleep(0)
                    since_yield = 0
                # Delivered even when the flow is suspended, as Faust's `wait_first` does: a
                # message dropped here would let the gap check above mark it acknowledged.
                await callback(message)
                set_read_offset(tp, offset)
            for route, messages in fetched.items():
                await route.put(messages)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            return
        raise


def routed(app: faust.App) -> bool:
    """Whether an agent of `app` asked for its topics' batches (the loop is needed)."""
    return bool(_routes.get(app))


def installed() -> bool:
    return faust_consumer.Consumer._drain_messages is _drain_messages  # type: ignore[comparison-overlap]


def install() -> None:
    """Replaces Faust's consumer loop (process-wide: a worker process runs one app)."""
    faust_consumer.Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]
