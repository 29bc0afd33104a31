"""Views counted on reads without slowing them: fire-and-forget `View` events to `meme.views`.

`GET /api/meme/{id}` hands the event to a producer of its own (librdkafka's in-memory queue,
bounded by `VIEW_QUEUE_SIZE`) and returns; nothing awaits the broker. Why not the shared
`EventProducer`: it resolves an asyncio future per message so the API can answer 202 honestly,
about six times the CPU of a plain produce, paid on every read. Views keep idempotence and
`acks=all`, batch for up to 50 ms, and only failed deliveries are reported (to a background
task): a callback per delivered view would cost the event loop a Python call per read.
`ViewEncoder` writes the event's Avro bytes directly, about a third of the generic codec's
time. When the queue is full (Kafka slow or down) a view is dropped and counted in
`memestream_produce_errors_total{topic="meme.views",reason="queue_full"}`: a lost view is
acceptable, a slow read is not. The framing (the registry's schema id, or the single-object
fingerprint) is the codec's, read once it is cached: until the producer's start-up fetch of
the ids has answered, views are dropped and counted with `reason="schema_unavailable"` (a read
never waits on the schema registry).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from domain.events import View
from domain.ids import new_id
from domain.metrics import PRODUCE_ERRORS, QUEUE_DEPTH
from domain.settings import Settings
from producers.producer import producer_config
from producers.schema_registry import SchemaUnavailable
from producers.serialization import AvroCodec
from producers.topics import MEME_VIEWS

log = logging.getLogger(__name__)
POLL_EVERY_S = 0.1


def _long(value: int) -> bytes:
    """Avro `long`: zig-zag, then a base-128 varint."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(value: str) -> bytes:
    data = value.encode()
    return _long(len(data)) + data


class ViewEncoder:
    """`View` events' Avro bodies, written directly: one per read of a meme.

    The generic codec (dataclass, then dict, then fastavro) was the largest part of counting a
    view. The layout follows `View.v1` (event_id, occurred_at in ms, meme_id, nullable
    user_id); `check` compares it with the codec's bytes, and `ViewCounter` falls back to the
    codec when a newer View schema makes them differ.
    """

    _NULL = _long(0)  # union branch 0: null
    _SOME = _long(1)  # union branch 1: string

    def encode(self, header: bytes, meme_id: str, user_id: str | None) -> bytes:
        body = self.body(meme_id, user_id, new_id(), time.time_ns() // 1_000_000)
        return header + body

    def body(self, meme_id: str, user_id: str | None, event_id: str, at_ms: int) -> bytes:
        user = self._NULL if user_id is None else self._SOME + _string(user_id)
        return b"".join((_string(event_id), _long(at_ms), _string(meme_id), user))

    def check(self, codec: AvroCodec) -> bool:
        """True when this encoder writes exactly the codec's body, for both user forms."""
        at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        at_ms = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
        for user_id in (None, new_id()):
            view = View(meme_id=new_id(), user_id=user_id, event_id=new_id(), occurred_at=at)
            mine = self.body(view.meme_id, user_id, view.event_id, at_ms)
            if mine != codec.body(view):
                return False
        return True


class ViewCounter:
    def __init__(self, settings: Settings, max_queued: int, codec: AvroCodec | None = None) -> None:
        config = producer_config(settings, "memestream-api-views") | {
            "linger.ms": 50,
            "queue.buffering.max.messages": max_queued,
            "delivery.report.only.error": True,
            "on_delivery": self._delivered,
        }
        self.producer = Producer(config)
        if codec is None:  # on its own (tests, benchmarks): fetch the schema ids now
            codec = AvroCodec.from_settings(settings)
            with contextlib.suppress(SchemaUnavailable):
                codec.prefetch()
        self.codec = codec
        fast = ViewEncoder()
        self._encode: Callable[[bytes, str, str | None], bytes] = (
            fast.encode if fast.check(self.codec) else self._encode_generic
        )
        self._header: bytes | None = None
        self._task: asyncio.Task[None] | None = None
        self._depth = QUEUE_DEPTH.labels(queue="views")

    def start(self) -> None:
        self._task = asyncio.create_task(self._poll(), name="view-counter")

    def count(self, meme_id: str, user_id: str | None) -> bool:
        """Queues a view; False if it was dropped (queue full, Kafka refused it, or the
        schema's registry id is not cached yet)."""
        header = self._header
        if header is None:
            if not self.codec.ready(View.schema_name):
                PRODUCE_ERRORS.labels(topic=MEME_VIEWS.name, reason="schema_unavailable").inc()
                return False
            header = self._header = self.codec.header(View.schema_name)
        try:
            value = self._encode(header, meme_id, user_id)
            self.producer.produce(MEME_VIEWS.name, value, meme_id.encode())
        except (BufferError, KafkaException) as exc:
            reason = "queue_full" if isinstance(exc, BufferError) else "unavailable"
            PRODUCE_ERRORS.labels(topic=MEME_VIEWS.name, reason=reason).inc()
            return False
        return True

    def _encode_generic(self, header: bytes, meme_id: str, user_id: str | None) -> bytes:
        return header + self.codec.body(View(meme_id=meme_id, user_id=user_id))

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
