"""An in-memory table of bytes, partitioned like its source topics, backed by a compacted
changelog topic that is read back in bulk when partitions are assigned.

Why not a Faust table: Faust restores a table record by record (an event, a conductor hop and
futures each), about 5,000 records/s on a 2-core machine, so every KEDA rescale left the moved
partitions a minute stale. `read_changelog` reads the same compacted topic with one plain
confluent-kafka consumer into dicts, in batches (hundreds of thousands of records/s), and
nothing of Faust is patched: the app simply has no table to recover.

Exactness is the same as a Faust table's, because the log is the same: a record reaches the
changelog before the source offsets that produced it are committed (records are handed to
Faust's producer, which Faust flushes before every commit), so the latest value per key read
to the end of a partition holds at least every committed event; events after the commit are
delivered again and their owner's dedup (per-meme source offsets, per-voter records, see
streams/trending/state.py) skips what the record already holds.

Which partitions are trusted in memory: a partition kept across a rebalance stays (nobody
else wrote to it meanwhile) only when this member saw every consumer generation in between;
any gap (the member fell out of the group) drops everything, and a partition no longer
assigned is dropped at once. A bulk read that a rebalance overtook is discarded and redone.
The owner's side of a move (streams/trending/agents.py): a revocation waits for the batch in
flight and flushes the producer, so the next owner's read finds every record of it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from typing import Any

import faust
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from domain.settings import Settings
from producers.kafka_security import librdkafka_security

#: Messages per `consume` call of the bulk read; a call returns early only when its short
#: timeout passes (a longer one would add itself to every small read).
READ_BATCH = 10_000
#: A partition whose leader is not elected yet (a topic created a moment ago) answers these.
NOT_READY = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._UNKNOWN_TOPIC,
    }
)


def read_changelog(
    config: dict[str, Any], topic: str, partitions: Iterable[int], timeout_s: float = 300.0
) -> tuple[dict[int, dict[bytes, bytes]], int]:
    """The latest value of every key of the partitions (tombstones remove the key), read from
    the beginning to the end each partition has when the read reaches it; and records read."""
    wanted = sorted(set(partitions))
    tables: dict[int, dict[bytes, bytes]] = {p: {} for p in wanted}
    consumer = Consumer(
        {
            **config,
            "group.id": f"{topic}-bulk-read",  # never joins: partitions are assigned by hand
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
            "queued.min.messages": 200_000,
        }
    )
    records = 0
    try:
        deadline = time.monotonic() + timeout_s
        # Every partition ends with an end-of-partition event, an empty one at once: no
        # watermark requests (one round trip each, and a 10 s timeout under load). The topic's
        # metadata first: without its leaders known, the first fetch waits about 0.5 s.
        consumer.list_topics(topic, timeout=10)
        todo = set(wanted)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in wanted])
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: partitions {sorted(todo)} not read in {timeout_s} s")
            for message in consumer.consume(READ_BATCH, 0.02):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        todo.discard(message.partition())
                        continue
                    if error.code() in NOT_READY:
                        continue  # librdkafka asks again; the deadline bounds the wait
                    raise KafkaException(error)
                table = tables[message.partition()]
                value = message.value()
                if value is None:
                    table.pop(message.key(), None)
                else:
                    table[message.key()] = value
                records += 1
    finally:
        consumer.close()
    return tables, records


class ChangelogStore:
    """The records of the assigned partitions in memory, their changes queued for the log."""

    def __init__(self, app: faust.App, settings: Settings, name: str, partitions: int) -> None:
        self.app = app
        self.partitions = partitions
        self.topic_name = f"{app.conf.id}-{name}-changelog"
        self.data: dict[bytes, bytes] = {}
        self.keys: dict[int, set[bytes]] = {}  # loaded partition -> its keys
        self.pending: list[tuple[int, bytes, bytes | None]] = []
        self.generation: int | None = None
        self.recovered_records = 0
        self.recovery_s = 0.0  # the total time of the bulk reads
        self.last_recovery: tuple[int, float] = (0, 0.0)
        self._config = {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            **librdkafka_security(settings),
        }
        self._topic = app.topic(
            self.topic_name,
            partitions=partitions,
            compacting=True,
            deleting=False,
            internal=True,
            key_serializer="raw",
            value_serializer="raw",
        )
        self._declared = False

    @property
    def loaded(self) -> set[int]:
        return set(self.keys)

    async def declare(self) -> None:
        """Creates the compacted topic (the broker does not auto-create topics)."""
        if not self._declared:
            await self._topic.maybe_declare()
            self._declared = True

    # -- assignment -----------------------------------------------------------------------

    def assigned(self, partitions: set[int], generation: int) -> None:
        """A new consumer generation: keep only what nobody else can have written since."""
        if self.generation is not None and generation != self.generation + 1:
            self.drop(set(self.keys))
        self.generation = generation
        self.drop(set(self.keys) - partitions)

    def drop(self, partitions: set[int]) -> None:
        for partition in partitions:
            for key in self.keys.pop(partition, ()):
                self.data.pop(key, None)

    async def recover(self, partitions: set[int]) -> bool:
        """Reads the partitions' changelog into memory; False when a rebalance overtook the
        read (its result is stale then, and dropped)."""
        await self.declare()
        generation = self.generation
        began = time.perf_counter()
        tables, records = await asyncio.to_thread(
            read_changelog, self._config, self.topic_name, partitions
        )
        elapsed = time.perf_counter() - began
        self.recovered_records += records
        self.recovery_s += elapsed
        self.last_recovery = (records, elapsed)
        if self.generation != generation:
            return False
        for partition, table in tables.items():
            self.drop({partition})
            self.data.update(table)
            self.keys[partition] = set(table)
        return True

    # -- records --------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def items(self, prefix: bytes) -> Iterator[tuple[int, bytes, bytes]]:
        """(partition, key, value) of every loaded record whose key starts with `prefix`."""
        data = self.data
        for partition, keys in list(self.keys.items()):
            for key in [k for k in keys if k.startswith(prefix)]:
                value = data.get(key)
                if value is not None:
                    yield partition, key, value

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Sets a record (None deletes it); `flush` writes it to the changelog partition named
        here. Only a loaded partition changes in memory: a write from a batch that a rebalance
        overtook still goes to the log, as Faust's table would send it."""
        keys = self.keys.get(partition)
        if keys is not None:
            if value is None:
                self.data.pop(key, None)
                keys.discard(key)
            else:
                self.data[key] = value
                keys.add(key)
        self.pending.append((partition, key, value))

    async def flush(self) -> None:
        """Hands the queued records to Faust's producer, in order (one partition keeps it);
        Faust flushes that producer before it commits offsets."""
        if not self.pending:
            return
        records, self.pending = self.pending, []
        send = self.app.producer.send
        topic = self.topic_name
        for partition, key, value in records:
            await send(topic, key, value, partition, None, None)

    def __len__(self) -> int:
        return len(self.data)
