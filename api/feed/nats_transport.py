"""Kafka -> NATS JetStream -> every replica.

Bridge: the replicas share one Kafka consumer group, so each partition is bridged by exactly
one replica; a record is published with `Nats-Msg-Id` = its Kafka coordinates (JetStream drops
the duplicate an at-least-once redelivery makes) and the offset is committed after the publish
is acknowledged. Followers: every replica follows the stream with an ordered consumer starting
`history_size` messages back, so the stream is the replay log and its sequence the event id.
Request/reply: every replica answers `<subject>.status` with its status, and
`cluster_status` gathers all answers (how many clients each replica holds, its cursor).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

import nats
import orjson
from aiokafka import AIOKafkaConsumer
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig
from nats.js.errors import NotFoundError

from api.feed.hub import Hub
from api.feed.kafka_transport import YIELD_EVERY
from api.feed.transport import backfill_start
from domain.events import FeedEvent
from domain.settings import Settings
from producers.kafka_security import aiokafka_security
from producers.serialization import AvroCodec, SerializationError

log = logging.getLogger(__name__)
STREAM_MAX_MSGS = 200_000
STREAM_MAX_AGE_S = 24 * 3600.0
DEDUPE_WINDOW_S = 120.0


class NatsFeed:
    tag = "n"

    def __init__(self, settings: Settings, codec: AvroCodec) -> None:
        self.settings = settings
        self.codec = codec
        self.subject = settings.feed_nats_subject
        self.stream = settings.feed_nats_stream
        self.replica = f"{socket.gethostname()}-{os.getpid()}"
        self.nc: NatsClient | None = None
        self.bridged = 0
        self.skipped = 0
        self._hub: Hub | None = None

    async def run(self, hub: Hub, ready: asyncio.Event) -> None:
        self._hub = hub
        nc = await nats.connect(
            self.settings.nats_url, name=f"memestream-feed-{self.replica}", connect_timeout=3
        )
        self.nc = nc
        try:
            js = nc.jetstream()
            await self._ensure_stream(js)
            await nc.subscribe(f"{self.subject}.status", cb=self._answer_status)
            await self._follow(js, hub, ready)
            await self._bridge(js)
        finally:
            self.nc = None
            await nc.close()

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[f"{self.subject}.events"],
                    max_msgs=STREAM_MAX_MSGS,
                    max_age=STREAM_MAX_AGE_S,
                    duplicate_window=DEDUPE_WINDOW_S,
                )
            )

    async def _follow(self, js: JetStreamContext, hub: Hub, ready: asyncio.Event) -> None:
        state = (await js.stream_info(self.stream)).state
        last, first = state.last_seq, max(1, state.first_seq)
        start = backfill_start(hub, 0, first, last + 1, hub.history.capacity)
        hub.history.start(0, start)
        if last < start:
            ready.set()

        async def on_message(msg: Msg) -> None:
            assert msg.metadata.sequence is not None
            seq = msg.metadata.sequence.stream
            try:
                event = self.codec.decode_as(msg.data, FeedEvent)
            except SerializationError as exc:
                self.skipped += 1
                log.warning("feed stream message %s unreadable: %s", seq, exc)
            else:
                hub.publish_event(0, seq, event)
            if seq >= last:
                ready.set()
            if seq % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let clients drain: a burst is not slowness

        await js.subscribe(
            f"{self.subject}.events",
            stream=self.stream,
            cb=on_message,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
            ),
        )

    async def _bridge(self, js: JetStreamContext) -> None:
        consumer = AIOKafkaConsumer(
            self.settings.feed_topic,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=f"memestream-feed-bridge-{self.replica}",
            group_id=f"{self.settings.consumer_group_prefix}-feed-bridge",
            enable_auto_commit=False,
            auto_offset_reset=self.settings.kafka_auto_offset_reset,
            **aiokafka_security(self.settings),
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                publishes = [
                    js.publish(
                        f"{self.subject}.events",
                        record.value or b"",
                        headers={"Nats-Msg-Id": f"{tp.topic}/{tp.partition}/{record.offset}"},
                    )
                    for tp, records in batches.items()
                    for record in records
                ]
                if publishes:
                    await asyncio.gather(*publishes)
                    await consumer.commit()
                    self.bridged += len(publishes)
        finally:
            await consumer.stop()

    async def _answer_status(self, msg: Msg) -> None:
        if msg.reply:
            await msg.respond(orjson.dumps(self.local_status()))

    def local_status(self) -> dict[str, Any]:
        hub = self._hub.status() if self._hub is not None else {}
        return {"replica": self.replica, **hub, **self.status()}

    async def cluster_status(self, wait_s: float = 0.3) -> list[dict[str, Any]]:
        """Scatter-gather over request/reply: one answer per live replica."""
        nc = self.nc
        if nc is None:
            return []
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        answers: list[dict[str, Any]] = []
        try:
            await nc.publish(f"{self.subject}.status", b"", reply=inbox)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait_s
            while (left := deadline - loop.time()) > 0:
                try:
                    msg = await sub.next_msg(timeout=left)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                answers.append(orjson.loads(msg.data))
        finally:
            await sub.unsubscribe()
        return sorted(answers, key=lambda a: str(a.get("replica")))

    async def close(self) -> None:
        nc = self.nc
        if nc is not None:
            await nc.close()

    def status(self) -> dict[str, object]:
        return {
            "transport": "nats",
            "stream": self.stream,
            "bridged": self.bridged,
            "skipped": self.skipped,
        }
