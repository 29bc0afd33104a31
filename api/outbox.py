"""The transactional outbox of the API: events staged with the write they report, and the relay
that publishes them to Kafka.

Writes whose truth is PostgreSQL (votes, deletes, review decisions) stage their events in the
outbox table in the write's own transaction (`message`, then the repository's `events=`);
the relay publishes rows with the idempotent `acks=all` producer and deletes them in the
claim's transaction once Kafka acknowledged them. Kafka down: rows stay, the relay retries
with backoff and publishes them when it is back; nobody depends on a client retrying.

Where the relay runs: in every API process, as a lifespan task, because the API is what
stages the rows and already holds the pool and the producer; a separate worker role would be
one more deployment whose absence silently stops votes reaching Kafka. The relays of N
replicas share the table through `FOR UPDATE SKIP LOCKED` (sinks/postgres/outbox.py), and all
wake on the table's NOTIFY at commit, so an event is published milliseconds after its write
with no polling load (a poll every OUTBOX_POLL_S catches a missed notification).

Delivery is at-least-once: a relay that dies after Kafka's ack and before its delete
committed leaves the rows to be published again with the same event ids, which every
consumer dedupes (trending keeps each user's latest vote by event time and id, ClickHouse
counts distinct event ids, the delete and review events derive their ids from the meme).
Order: one relay publishes its claim in id order; rows of one meme claimed by two relays at
once may be published out of order, which those consumers tolerate (latest by event time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from psycopg_pool import PoolTimeout

from domain.events import Event
from domain.logs import current_request_id, request_id_headers
from domain.settings import Settings
from producers.producer import EventProducer
from producers.serialization import AvroCodec, SerializationError, WireFormat
from sinks.postgres.outbox import CHANNEL, OutboxMessage, OutboxRow, OutboxStore

log = logging.getLogger(__name__)
#: Self-describing without a registry: staging a vote never waits on the schema registry.
_STAGING = AvroCodec(wire_format=WireFormat.SINGLE_OBJECT)
MAX_BACKOFF_S = 5.0


def message(topic: str, event: Event) -> OutboxMessage:
    """An event as an outbox row of `topic`, with the current request's id for its headers."""
    return OutboxMessage(topic, event.key, _STAGING.encode(event), current_request_id())


class OutboxRelay:
    """Publishes the outbox to Kafka: wakes on NOTIFY, drains in batches, backs off on failure."""

    def __init__(self, settings: Settings, store: OutboxStore, producer: EventProducer) -> None:
        self.settings = settings
        self.store = store
        self.producer = producer
        self.wake = asyncio.Event()
        self.published = 0

    async def relay_once(self) -> tuple[int, int]:
        """Publishes one claimed batch; returns (acknowledged by Kafka, not published).
        Raises psycopg errors (the caller backs off)."""
        async with self.store.claim(self.settings.outbox_batch_size) as claim:
            if not claim.rows:
                return 0, 0
            outcomes = await asyncio.gather(*(self._publish(r) for r in claim.rows))
            paired = list(zip(claim.rows, outcomes, strict=True))
            done = [row.id for row, error in paired if not error]
            errors = [(row.id, error) for row, error in paired if error]
            await claim.done(done)
            if errors:
                await claim.failed([i for i, _ in errors], errors[0][1])
                log.warning(
                    "outbox: %d of %d not published: %s", len(errors), len(outcomes), errors[0][1]
                )
        self.published += len(done)
        return len(done), len(errors)

    async def _publish(self, row: OutboxRow) -> str | None:
        """None once Kafka acknowledged the row, else why not."""
        try:
            event = _STAGING.decode(row.event)
        except SerializationError as exc:  # not ours to drop: it stays, counted, and logged
            log.error("outbox row %d cannot be decoded: %s", row.id, exc)
            return f"undecodable: {exc}"
        try:
            await self.producer.send(
                row.topic, event, headers=request_id_headers([], row.request_id)
            )
        except Exception as exc:  # ProducerUnavailable, a registry refusal: retried later
            return f"{type(exc).__name__}: {exc}"
        return None

    async def drain(self) -> tuple[int, int]:
        """Publishes batches until one is short or has failures; returns (published, failed)."""
        total = 0
        while True:
            published, failed = await self.relay_once()
            total += published
            if failed or published < self.settings.outbox_batch_size:
                return total, failed

    async def run(self) -> None:
        """Drains, then waits for a NOTIFY or the poll interval; backs off while failing."""
        listener = asyncio.create_task(self._listen(), name="outbox-listen")
        delay = 0.5
        try:
            while True:
                self.wake.clear()
                try:
                    _, failed = await self.drain()
                except (psycopg.Error, PoolTimeout) as exc:
                    log.warning("outbox relay: PostgreSQL unavailable (%s)", exc)
                    failed = 1
                if failed:  # Kafka or PostgreSQL away: retry, less often the longer it lasts
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF_S)
                    continue
                delay = 0.5
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.settings.outbox_poll_s)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self) -> None:
        """LISTEN on its own connection (a pool's would go back to the pool); reconnects."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.settings.database_url, autocommit=True
                )
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.wake.set()  # rows may have been staged while we were not listening
                    async for _ in conn.notifies():
                        self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL away: the poll interval covers it
                log.debug("outbox listener reconnecting: %s", exc)
                await asyncio.sleep(1.0)
