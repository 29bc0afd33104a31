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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from api.feed.cursor import Cursor
from api.feed.direct import DirectWriter, Route, route, write_each
from api.feed.history import History
from api.feed.mailbox import Mailbox
from api.feed.messages import Message, feed_message, heartbeat
from domain.events import FeedEvent

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

    def push(self, frame: Frame) -> bool:
        writer = self.writer
        return writer(frame) if writer is not None else self.mailbox.put(frame)


@dataclass(frozen=True, slots=True)
class Plan:
    """Who gets a channel's broadcasts and how: a socket route or a mailbox."""

    routes: tuple[Route[Client], ...]
    queued: tuple[Client, ...]

    @classmethod
    def of(cls, clients: Iterable[Client]) -> Plan:
        routes, queued = [], []
        for client in clients:
            if client.writer is None:
                queued.append(client)
            else:
                routes.append(route(client.writer, client))
        return cls(tuple(routes), tuple(queued))


class Hub:
    def __init__(self, tag: str, history_size: int, queue_size: int) -> None:
        self.history = History(tag, history_size)
        self.queue_size = queue_size
        self.clients: set[Client] = set()
        self.by_channel: dict[str, set[Client]] = {}
        #: Per channel, its direct clients' routes and its mailbox clients, built on the first
        #: broadcast after the channel's membership changed.
        self._plans: dict[str, Plan] = {}
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
        for channel in client.channels:
            self._plans.pop(channel, None)

    def subscribe(self, client: Client, channels: Iterable[str]) -> None:
        for channel in channels:
            if channel not in client.channels:
                client.channels.add(channel)
                self.by_channel.setdefault(channel, set()).add(client)
                self._plans.pop(channel, None)
                for listener in self.listeners:
                    listener(client, channel, True)

    def unsubscribe(self, client: Client, channels: Iterable[str]) -> None:
        for channel in channels:
            if channel in client.channels:
                self._leave(client, channel)

    def _leave(self, client: Client, channel: str) -> None:
        client.channels.discard(channel)
        self._plans.pop(channel, None)
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
            plan = self._plans.get(channels[0])
            if plan is None:
                plan = self._plans[channels[0]] = Plan.of(self.by_channel.get(channels[0], ()))
        else:
            found: set[Client] = set()
            for channel in channels:
                found.update(self.by_channel.get(channel, ()))
            plan = Plan.of(found)
        self._send(plan, message)
        if message.id is not None:  # feed events, not room chatter
            self.fanout_s.append(time.perf_counter() - started)

    def beat(self) -> None:
        """Heartbeat every client at once; a client that cannot take even that is slow."""
        self._send(Plan.of(self.clients), heartbeat(str(self.cursor)))

    def _send(self, plan: Plan, message: Message) -> None:
        slow = write_each(plan.routes, message.sse_chunk, message.ws_frame)
        for client in plan.queued:
            if not client.mailbox.put(message):
                slow.append(client)
        self.delivered += len(plan.routes) + len(plan.queued) - len(slow)
        for client in slow:
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
            "direct": sum(1 for c in self.clients if c.writer is not None),
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
