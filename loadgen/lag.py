"""Consumer lag per group and partition, read from the Kafka admin API like KEDA does.

For each (group, topic) pair: the topic's partitions from metadata, the group's committed
offset per partition (negative when it never committed) and each partition's latest offset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec


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
        self.admin = AdminClient({"bootstrap.servers": bootstrap_servers, **(security or {})})
        self.timeout_s = timeout_s

    def read(self, group: str, topic: str) -> GroupLag:
        metadata = self.admin.list_topics(topic, timeout=self.timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return GroupLag(group, topic)
        tps = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        request = [ConsumerGroupTopicPartitions(group, tps)]
        committed_result = self.admin.list_consumer_group_offsets(request)[group].result(
            timeout=self.timeout_s
        )
        committed = {tp.partition: tp.offset for tp in committed_result.topic_partitions}
        futures = self.admin.list_offsets(
            {tp: OffsetSpec.latest() for tp in tps}, request_timeout=self.timeout_s
        )
        latest = {tp.partition: f.result().offset for tp, f in futures.items()}
        return GroupLag(
            group,
            topic,
            tuple(PartitionLag(p, committed.get(p, -1), latest.get(p, 0)) for p in sorted(latest)),
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
