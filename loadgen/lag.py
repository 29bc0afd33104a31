"""Consumer lag per group and partition, read from Kafka like KEDA does (producers/offsets.py).

For each (group, topic) pair: the topic's partitions from metadata, the group's committed
offset per partition (negative when it never committed) and each partition's latest offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaException

from producers.offsets import OffsetReader


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: int
    committed: int  # < 0: the group never committed on this partition
    latest: int

    @property
    def lag(self) -> int:
        return max(0, self.latest - max(0, self.committed))


@dataclass(frozen=True, slots=True)
class GroupLag:
    group: str
    topic: str
    partitions: tuple[PartitionLag, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)


class LagReader:
    def __init__(
        self,
        bootstrap_servers: str,
        timeout_s: float = 5.0,
        security: Mapping[str, str] | None = None,
    ) -> None:
        """`security`: librdkafka's security keys (producers.kafka_security), for SASL brokers."""
        self.config = {"bootstrap.servers": bootstrap_servers, **(security or {})}
        self.timeout_s = timeout_s
        self._readers: dict[str, OffsetReader] = {}

    def _offsets(self, group: str) -> OffsetReader:
        if group not in self._readers:
            self._readers[group] = OffsetReader(self.config, group, self.timeout_s)
        return self._readers[group]

    def read(self, group: str, topic: str) -> GroupLag:
        offsets = self._offsets(group)
        keys = [(topic, p) for p in offsets.partitions(topic)]
        if not keys:
            return GroupLag(group, topic)
        committed = offsets.committed(keys)
        latest = offsets.latest(keys)
        return GroupLag(
            group,
            topic,
            tuple(
                PartitionLag(p, committed.get((topic, p), -1), latest.get((topic, p), 0))
                for _, p in sorted(latest)
            ),
        )

    def read_many(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], GroupLag]:
        """Lag per (group, topic); pairs that cannot be read right now are left out."""
        out: dict[tuple[str, str], GroupLag] = {}
        for group, topic in pairs:
            try:
                out[(group, topic)] = self.read(group, topic)
            except KafkaException:
                continue
        return out

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
        self._readers.clear()
