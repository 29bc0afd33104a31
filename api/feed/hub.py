"""Channels and fan-out inside one API process: every connected client of this replica.

`publish` is synchronous and never awaits, so one event reaches every mailbox in one pass and
a subscribe-then-replay can never race an event. A client whose mailbox is full is closed with
the reason `slow-consumer`; its transport is given `SLOW_CLIENT_GRACE_S` to notice before its
task is cancelled, so a stalled socket never pins memory.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from api.feed.cursor import Cursor
from api.feed.direct import DirectWriter, Route, route, write_each
from api.feed.history import History
from api.feed.mailbox import Mailbox
from api.feed.messages import Message, feed_message, heartbeat
from domain.events import FeedEvent
from domain.metrics import observe_feed_delivery

SLOW_CLIENT_GRACE_S = 5.0
SLOW = "slow-consumer"
_ids = itertools.count(1)
_PROCESS = secrets.token_hex(4)  # connection ids are unique across replicas (presence)

Frame = Message | str


@dataclass(eq=False, slots=True)
class Client:
    """One connection: its channels, its mailbox and (for presence) who it says it is."""

    mailbox: Mailbox[Frame]
    channels: set[str] = field(default_factory=set)
    id: str = field(default_factory=lambda: f"{_PROCESS}-{next(_ids)}")
    task: asyncio.Task[object] | None = None
    killed: bool = False
    #: Set once the connection is writable directly (api/feed/direct.py); the mailbox then
    #: only holds what arrived before that.
    writer: DirectWriter | None = None


@dataclass(eq=False, slots=True)
class Members:
    """Clients ready for a broadcast: a socket route each, or a mailbox.

    Kept up to date as clients come, go and switch to direct writes, so a broadcast allocates
    nothing: rebuilding 10,000 routes at broadcast time set off full garbage collections of
    the 20,000-connection heap in the middle of the fan-out (p99 near a second).
    """

    routes: dict[Client, Route[Client]] = field(default_factory=dict)
    queued: dict[Client, None] = field(default_factory=dict)

    def add(self, client: Client) -> None:
        if client.writer is None:
            self.queued[client] = None
        else:
            self.queued.pop(client, None)
            self.routes[client] = route(client.writer, client)

    def discard(self, client: Client) -> None:
        self.routes.pop(client, None)
        self.queued.pop(client, None)

    def update(self, other: Members) -> None:
        self.routes.update(other.routes)
        self.queued.update(other.queued)

    def __contains__(self, client: object) -> bool:
        return client in self.routes or client in self.queued

    def __len__(self) -> int:
        return len(self.routes) + len(self.queued)

    def __iter__(self) -> Iterator[Client]:
        yield from self.routes
        yield from self.queued


class Hub:
    def __init__(self, tag: str, history_size: int, queue_size: int) -> None:
        self.history = History(tag, history_size)
        self.queue_size = queue_size
        self.clients = Members()
        self.by_channel: dict[str, Members] = {}
        self.delivered = 0
        self.dropped_slow = 0
        self.listeners: list[Callable[[Client, str, bool], None]] = []
        self.closing = False
        #: How long recent broadcasts took to reach every local client, in seconds.
        self.fanout_s: deque[float] = deque(maxlen=1000)

    @property
    def cursor(self) -> Cursor:
        return self.history.cursor

    def connect(self) -> Client:
        client = Client(Mailbox(self.queue_size), task=asyncio.current_task())
        self.clients.add(client)
        if self.closing:
            client.mailbox.close("server-shutdown")
        return client

    def disconnect(self, client: Client, reason: str = "disconnected") -> None:
        client.mailbox.close(reason)
        if client.writer is not None and reason != "disconnected":
            client.writer.close(reason, str(self.cursor))
        if client not in self.clients:
            return
        self.clients.discard(client)
        for channel in list(client.channels):
            self._leave(client, channel)

    def go_direct(self, client: Client, writer: DirectWriter) -> None:
        """Flushes what the mailbox holds, in order, then writes directly from now on."""
        for frame in client.mailbox.take_all():
            writer(frame)
        client.writer = writer
        if client in self.clients:
            self.clients.add(client)
            for channel in client.channels:
                self.by_channel[channel].add(client)

    def subscribe(self, client: Client, channels: Iterable[str]) -> None:
        for channel in channels:
            if channel not in client.channels:
                client.channels.add(channel)
                self.by_channel.setdefault(channel, Members()).add(client)
                for listener in self.listeners:
                    listener(client, channel, True)

    def unsubscribe(self, client: Client, channels: Iterable[str]) -> None:
        for channel in channels:
            if channel in client.channels:
                self._leave(client, channel)

    def _leave(self, client: Client, channel: str) -> None:
        client.channels.discard(channel)
        members = self.by_channel.get(channel)
        if members is not None:
            members.discard(client)
            if not members:
                del self.by_channel[channel]
        for listener in self.listeners:
            listener(client, channel, False)

    def replay(self, client: Client, cursor: Cursor, channels: set[str]) -> list[Message]:
        """Events after `cursor` on `channels`; raises GapTooOld when some are gone."""
        return [m for m in self.history.since(cursor) if channels.intersection(m.channels)]

    def publish_event(self, partition: int, offset: int, event: FeedEvent) -> Message:
        message = feed_message(str(self.history.next_cursor(partition, offset)), event)
        self.history.append(partition, offset, message)
        self.deliver(message)
        return message

    def deliver(self, message: Message) -> None:
        started = time.perf_counter()
        channels = message.channels
        if len(channels) == 1:
            members = self.by_channel.get(channels[0]) or Members()
        else:
            members = Members()
            for channel in channels:
                found = self.by_channel.get(channel)
                if found is not None:
                    members.update(found)
        self._send(members, message)
        if message.id is not None:  # feed events, not room chatter
            self.fanout_s.append(time.perf_counter() - started)
            if members.routes:  # written just now; mailboxes are timed where they are drained
                observe_feed_delivery("direct", message.body["occurred_at"])

    def beat(self) -> None:
        """Heartbeat every client at once; a client that cannot take even that is slow."""
        self._send(self.clients, heartbeat(str(self.cursor)))

    def _send(self, members: Members, message: Message) -> None:
        routes, queued = members.routes, members.queued
        slow = write_each(routes.values(), message.sse_chunk, message.ws_frame)
        for client in queued:
            if not client.mailbox.put(message):
                slow.append(client)
        self.delivered += len(routes) + len(queued) - len(slow)
        for client in slow:  # after the loops: dropping changes the members
            self.drop_slow(client)

    def drop_slow(self, client: Client) -> None:
        self.dropped_slow += 1
        self.disconnect(client, SLOW)
        task = client.task
        if client.writer is None and task is not None and not task.done():
            # A direct writer aborts its own connection after the grace period.
            asyncio.get_running_loop().call_later(SLOW_CLIENT_GRACE_S, _kill, client)

    def status(self) -> dict[str, object]:
        return {
            "connections": len(self.clients),
            "channels": len(self.by_channel),
            "history": len(self.history.entries),
            "cursor": str(self.cursor),
            "delivered": self.delivered,
            "dropped_slow": self.dropped_slow,
            "direct": len(self.clients.routes),
            "fanout_ms": _percentiles(self.fanout_s),
        }


def _percentiles(values: deque[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50": at(0.5), "p99": at(0.99), "max": at(1.0)}


def _kill(client: Client) -> None:
    task = client.task
    if task is not None and not task.done():
        client.killed = True
        task.cancel()
