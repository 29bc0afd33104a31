"""An idempotent, `acks=all` Kafka producer that asyncio code can await.

`send` resolves only when the broker acknowledged the write, which is what lets the
API answer 202 honestly. confluent-kafka's own asyncio producer drops headers and
buffers for a second, so this wraps the plain producer: librdkafka batches, one
thread serves its delivery callbacks, and each callback completes an asyncio future.

Values are framed by the codec from settings (the Confluent wire format with a schema
registry). A schema's registry id is asked for once, in the background when the producer is
made and, if that has not answered yet, in a thread before the first send of that schema; a
send whose id the registry cannot give raises `SchemaRegistryUnavailable`, a
`ProducerUnavailable`: nothing was produced, so the API answers 503, never a false 202.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from domain.events import Event
from domain.logs import request_id_from_headers, request_id_headers
from domain.metrics import EVENTS_PRODUCED
from domain.settings import Settings
from domain.tracing import produce_span
from producers.kafka_security import librdkafka_security
from producers.schema_registry import SchemaUnavailable
from producers.serialization import AvroCodec

Headers = Sequence[tuple[str, bytes]]
log = logging.getLogger("memestream.kafka")


class ProducerUnavailable(RuntimeError):
    """Kafka did not acknowledge in time: the caller must not claim the write happened."""

    service = "kafka"


class SchemaRegistryUnavailable(ProducerUnavailable):
    """The event's schema has no cached registry id and the registry did not give one (down,
    or it refused the schema as incompatible): nothing was produced."""

    service = "schema-registry"


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    partition: int
    offset: int


def producer_config(settings: Settings, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "compression.type": "lz4",
        "message.timeout.ms": settings.kafka_delivery_timeout_ms,
        "queue.buffering.max.messages": 200_000,
        "logger": log,
        **librdkafka_security(settings),
    }


class EventProducer:
    def __init__(
        self, settings: Settings, *, client_id: str = "memestream", codec: AvroCodec | None = None
    ) -> None:
        self.codec = codec or AvroCodec.from_settings(settings)
        self._producer = Producer(producer_config(settings, client_id))
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._poll, name=f"{client_id}-poll", daemon=True)
        self._poller.start()
        threading.Thread(target=self._prefetch, name=f"{client_id}-schemas", daemon=True).start()

    def _prefetch(self) -> None:
        try:
            self.codec.prefetch()
        except SchemaUnavailable as exc:  # asked again on the first send that needs it
            log.warning("schema ids not fetched at start-up: %s", exc)

    async def encode(self, event: Event) -> bytes:
        """The event's bytes; a schema id not cached yet is asked for in a thread, so the
        event loop never waits on the registry. Raises SchemaRegistryUnavailable."""
        try:
            if not self.codec.ready(event.schema_name):
                await asyncio.to_thread(self.codec.header, event.schema_name)
            return self.codec.encode(event)
        except SchemaUnavailable as exc:
            raise SchemaRegistryUnavailable(str(exc)) from exc

    def _poll(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.05)

    async def send(self, topic: str, event: Event, headers: Headers | None = None) -> Delivery:
        """Produces one event inside a PRODUCER span. The caller's headers are kept; the
        current request id is added unless the caller set one, and the trace context
        (`traceparent`) is the PRODUCER span's, so a consumer continues this trace."""
        value = await self.encode(event)
        merged = list(headers or ())
        if request_id_from_headers(merged) is None:
            merged = request_id_headers(merged)
        with produce_span(topic, merged) as (_, carried):
            return await self.send_raw(topic, event.key, value, carried)

    async def send_raw(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None
    ) -> Delivery:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                outcome: Delivery | Exception = ProducerUnavailable(error.str())
            else:
                outcome = Delivery(message.topic(), message.partition(), message.offset())
            loop.call_soon_threadsafe(_settle, future, outcome)

        try:
            self._producer.produce(
                topic, value=value, key=key, headers=list(headers or ()), on_delivery=on_delivery
            )
        except BufferError as exc:
            raise ProducerUnavailable("local produce queue is full") from exc
        except KafkaException as exc:
            raise ProducerUnavailable(str(exc)) from exc
        delivery = await future
        EVENTS_PRODUCED.labels(topic=topic).inc()
        return delivery

    def connect(self, timeout: float = 10.0) -> None:
        """Waits until the broker answered a metadata request, so the first `send` does not
        also pay for the connection (a load generator would count it as the event's latency).
        Raises ProducerUnavailable when Kafka does not answer within `timeout` seconds."""
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise ProducerUnavailable(str(exc)) from exc

    def pending(self) -> int:
        return len(self._producer)

    def close(self, timeout: float = 10.0) -> int:
        """Flush what is queued and stop; returns how many messages were left undelivered."""
        left = self._producer.flush(timeout)
        self._stopping.set()
        self._poller.join(timeout=1.0)
        return left


def _settle(future: asyncio.Future[Delivery], outcome: Delivery | Exception) -> None:
    if future.done():
        return
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
