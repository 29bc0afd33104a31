"""Consumer lag per group, topic and partition, as a gauge the worker refreshes every few seconds.

Why Kafka (producers/offsets.py) and not Faust's in-memory offsets: it is the quantity KEDA
scales on (the group's committed offset against the partition's latest offset, read from
Kafka), so the dashboards and the autoscaler agree. Each worker reports only the partitions
assigned to it, so replicas never report the same series twice; partitions it loses are
dropped from the gauge.
A partition the group never committed counts from the offset the group would start at
(`KAFKA_AUTO_OFFSET_RESET`): nothing behind for `latest`, the whole retained log for `earliest`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import faust
from confluent_kafka import KafkaException

from domain.metrics import CONSUMER_LAG, set_consumer_lag
from domain.settings import Settings
from producers.kafka_security import librdkafka_security
from producers.offsets import OffsetReader, Partition

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0


class LagReader:
    """Reads one group's lag on given partitions (blocking: call it from a thread)."""

    def __init__(self, offsets: OffsetReader, *, reset: str = "latest") -> None:
        self.offsets = offsets
        self.group = offsets.group
        self.reset = reset

    def read(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        wanted = sorted(partitions)
        if not wanted:
            return {}
        committed = self.offsets.committed(wanted)
        latest = self.offsets.latest(wanted)
        never = [key for key in wanted if committed.get(key, -1) < 0]
        if never:
            start = (
                self.offsets.earliest(never)
                if self.reset == "earliest"
                else {key: latest[key] for key in never}
            )
            committed.update(start)
        return {key: max(0, high - committed[key]) for key, high in latest.items()}


class LagGauge:
    """Keeps `memestream_consumer_lag` equal to the last reading of the assigned partitions."""

    def __init__(self, reader: LagReader) -> None:
        self.reader = reader
        self.reported: set[Partition] = set()

    async def refresh(self, assigned: Iterable[Partition]) -> dict[Partition, int]:
        lags = await asyncio.to_thread(self.reader.read, set(assigned))
        for topic, partition in self.reported - lags.keys():
            labels = (self.reader.group, topic, str(partition))
            CONSUMER_LAG.labels(*labels).set(0)
            CONSUMER_LAG.remove(*labels)
        for (topic, partition), lag in lags.items():
            set_consumer_lag(self.reader.group, topic, partition, lag)
        self.reported = set(lags)
        return lags


def register(app: faust.App, settings: Settings) -> LagGauge:
    """Adds the refresh timer to a worker's app; its group id is the app id."""
    config = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        **librdkafka_security(settings),
    }
    reader = LagReader(OffsetReader(config, app.conf.id), reset=settings.kafka_auto_offset_reset)
    gauge = LagGauge(reader)

    @app.timer(LAG_INTERVAL_S)
    async def consumer_lag() -> None:
        try:
            # Changelog topics are read, never committed: only the topics the group commits.
            assigned = {
                (tp.topic, tp.partition)
                for tp in app.consumer.assignment()
                if app.topics.acks_enabled_for(tp.topic)
            }
            await gauge.refresh(assigned)
        except (KafkaException, RuntimeError, TimeoutError) as exc:  # a metric never stops a worker
            log.warning("consumer lag not read: %s", exc)

    return gauge
