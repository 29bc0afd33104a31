"""Views counted on reads without slowing them: fire-and-forget `View` events to `meme.views`.

`GET /api/meme/{id}` hands the event to a producer of its own (librdkafka's in-memory queue,
bounded by `VIEW_QUEUE_SIZE`) and returns; nothing awaits the broker. Why not the shared
`EventProducer`: it resolves an asyncio future per message so the API can answer 202 honestly,
about six times the CPU of a plain produce, paid on every read. Views keep idempotence and
`acks=all`, batch for up to 50 ms, and their delivery reports are served by a background task.
When the queue is full (Kafka slow or down) a view is dropped and counted in
`memestream_produce_errors_total{topic="meme.views",reason="queue_full"}`: a lost view is
acceptable, a slow read is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from domain.events import View
from domain.metrics import PRODUCE_ERRORS, QUEUE_DEPTH
from domain.settings import Settings
from producers.producer import producer_config
from producers.serialization import AvroCodec
from producers.topics import MEME_VIEWS

log = logging.getLogger(__name__)
POLL_EVERY_S = 0.1


class ViewCounter:
    def __init__(self, settings: Settings, max_queued: int, codec: AvroCodec | None = None) -> None:
        config = producer_config(settings, "memestream-api-views") | {
            "linger.ms": 50,
            "queue.buffering.max.messages": max_queued,
        }
        self.producer = Producer(config)
        self.codec = codec or AvroCodec()
        self._task: asyncio.Task[None] | None = None
        self._depth = QUEUE_DEPTH.labels(queue="views")

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name="view-counter")

    def count(self, meme_id: str, user_id: str | None) -> bool:
        """Queues a view; False if it was dropped (queue full or Kafka refused it)."""
        view = View(meme_id=meme_id, user_id=user_id)
        try:
            self.producer.produce(
                MEME_VIEWS.name, self.codec.encode(view), view.key, on_delivery=self._delivered
            )
        except (BufferError, KafkaException) as exc:
            reason = "queue_full" if isinstance(exc, BufferError) else "unavailable"
            PRODUCE_ERRORS.labels(topic=MEME_VIEWS.name, reason=reason).inc()
            return False
        return True

    @staticmethod
    def _delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            PRODUCE_ERRORS.labels(topic=MEME_VIEWS.name, reason="unavailable").inc()
            log.warning("a view was not produced: %s", error.str())

    async def _poll(self) -> None:
        while True:
            self.producer.poll(0)
            self._depth.set(len(self.producer))
            await asyncio.sleep(POLL_EVERY_S)

    async def close(self, timeout_s: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = await asyncio.to_thread(self.producer.flush, timeout_s)
        if left:
            log.warning("%d views not produced at shutdown", left)
        self._depth.set(0)
