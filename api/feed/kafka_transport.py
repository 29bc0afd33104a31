"""Each replica reads `meme.feed` itself: every partition assigned, no consumer group.

No group because every replica needs every event; no commits because the position a client
cares about is the event id it holds, not ours. On start each partition is read from
`history_size / partitions` events back, so ids issued before a restart still resolve.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from api.feed.hub import Hub
from api.feed.transport import backfill_start
from domain.events import FeedEvent
from domain.settings import Settings
from producers.admin import admin_client
from producers.kafka_security import aiokafka_security
from producers.serialization import AvroCodec, SerializationError

log = logging.getLogger(__name__)
#: Events published between two turns of the event loop; client queues must hold more.
YIELD_EVERY = 8


class KafkaFeed:
    tag = "k"

    def __init__(self, settings: Settings, codec: AvroCodec) -> None:
        self.settings = settings
        self.codec = codec
        self.topic = settings.feed_topic
        self.consumer: AIOKafkaConsumer | None = None
        self.skipped = 0

    async def run(self, hub: Hub, ready: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id="memestream-feed-relay",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            **aiokafka_security(self.settings),
        )
        self.consumer = consumer
        await consumer.start()
        try:
            partitions = await asyncio.to_thread(self._partitions)
            if not partitions:
                raise RuntimeError(f"topic {self.topic} has no partitions (does it exist?)")
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            lows = await consumer.beginning_offsets(tps)
            highs = await consumer.end_offsets(tps)
            depth = max(1, hub.history.capacity // len(tps))
            pending = {}
            for tp in tps:
                start = backfill_start(hub, tp.partition, lows[tp], highs[tp], depth)
                consumer.seek(tp, start)
                hub.history.start(tp.partition, start)
                if highs[tp] > start:
                    pending[tp.partition] = highs[tp] - 1
            if not pending:
                ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                for tp, records in batches.items():
                    for n, record in enumerate(records, 1):
                        self._publish(hub, tp.partition, record.offset, record.value)
                        if pending.get(tp.partition, -1) <= record.offset:
                            pending.pop(tp.partition, None)
                        if n % YIELD_EVERY == 0:
                            await asyncio.sleep(0)  # let clients drain: a burst is not slowness
                if not pending and not ready.is_set():
                    ready.set()
        finally:
            self.consumer = None
            await consumer.stop()

    def _partitions(self) -> list[int]:
        metadata = admin_client(self.settings).list_topics(self.topic, timeout=5.0)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            return []
        return sorted(topic.partitions)

    def _publish(self, hub: Hub, partition: int, offset: int, value: bytes | None) -> None:
        try:
            event = self.codec.decode_as(value, FeedEvent)
        except SerializationError as exc:
            # The producer's DLQ is the place for poison; the feed only shows what it can read.
            self.skipped += 1
            log.warning("feed event %s/%s unreadable: %s", partition, offset, exc)
            return
        hub.publish_event(partition, offset, event)

    async def close(self) -> None:
        consumer = self.consumer
        if consumer is not None:
            await consumer.stop()

    def status(self) -> dict[str, object]:
        return {"transport": "kafka", "topic": self.topic, "skipped": self.skipped}
