"""Consumer groups' committed offsets and partitions' end offsets, for the lag readers.

Why committed offsets come from a Consumer and not `AdminClient.list_consumer_group_offsets`:
librdkafka (2.16.0, the newest the confluent-kafka wheels bundle) answers a NOT_COORDINATOR
reply to the admin client's OffsetFetch by queueing a coordinator query on the client's consumer
group, which an admin client does not have: a NULL dereference in the `rdk:main` thread kills the
whole process. It happened in the HA failover run every time a consumer group's coordinator broker
died: both render workers, through their lag gauge, segfaulted (kernel log: `rdk:main segfault at
58 ... in librdkafka`). A Consumer with the group's id asks the same question through its own
group handler, where that reply is an ordinary coordinator lookup; it never subscribes, so it
never joins the group it reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

Partition = tuple[str, int]
UNKNOWN = frozenset({KafkaError._UNKNOWN_PARTITION, KafkaError._UNKNOWN_TOPIC})


class OffsetReader:
    """One group's offsets and the partitions' ends, through one Consumer with the group's id
    (the id its KafkaUser may use). Blocking: call it from a thread in async code."""

    def __init__(self, config: Mapping[str, str], group: str, timeout_s: float = 5.0) -> None:
        """`config`: librdkafka's `bootstrap.servers` and security keys."""
        self.group = group
        self.timeout_s = timeout_s
        self.consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False})

    def committed(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """The group's committed offset per partition (negative: it never committed there)."""
        tps = [TopicPartition(topic, partition) for topic, partition in partitions]
        if not tps:
            return {}
        result = self.consumer.committed(tps, timeout=self.timeout_s)
        return {(tp.topic, tp.partition): tp.offset for tp in result}

    def latest(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        return {key: high for key, (_, high) in self._watermarks(partitions).items()}

    def earliest(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        return {key: low for key, (low, _) in self._watermarks(partitions).items()}

    def _watermarks(self, partitions: Iterable[Partition]) -> dict[Partition, tuple[int, int]]:
        """Through the Consumer too: the admin client's ListOffsets kept a stale leader epoch
        after a broker came back and answered FENCED_LEADER_EPOCH for minutes (seen in the
        HA failover run), where a consumer refreshes its metadata and asks the new leader."""
        return {key: self._watermark(*key) for key in partitions}

    def _watermark(self, topic: str, partition: int) -> tuple[int, int]:
        tp = TopicPartition(topic, partition)
        try:
            return self.consumer.get_watermark_offsets(tp, timeout=self.timeout_s, cached=False)
        except KafkaException as exc:
            if exc.args[0].code() not in UNKNOWN:
                raise
        # A consumer that never subscribed keeps only the metadata it was asked for, and a
        # broker's death can drop the topic from it ("Unknown partition" from then on, seen
        # in CI): ask for the topic's metadata again, then once more for the offsets.
        self.consumer.list_topics(topic, timeout=self.timeout_s)
        return self.consumer.get_watermark_offsets(tp, timeout=self.timeout_s, cached=False)

    def partitions(self, topic: str) -> list[int]:
        """The topic's partitions (none when it does not exist yet)."""
        metadata = self.consumer.list_topics(topic, timeout=self.timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        return sorted(metadata.partitions)

    def close(self) -> None:
        self.consumer.close()
