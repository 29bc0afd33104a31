"""Three KRaft nodes: an acknowledged write survives SIGKILL of a broker or of the controller.

A producer with the platform's config (acks=all, idempotence) sends numbered messages at a
steady rate while one node is SIGKILLed; every message it saw acknowledged must be read back
exactly once. The figures (failed sends, how long sends failed) are printed for the report.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from memestream.stack.ha import HaStack
from memestream.stack.kafka import KafkaBroker
from memestream.stack.kafka_cluster import active_controller
from memestream.stack.process import wait_until
from producers.admin import reconcile_topics
from producers.producer import producer_config
from producers.topics import TopicSpec
from tests.ha.support import started

pytestmark = [pytest.mark.ha, pytest.mark.slow]

NODES = ["kafka-1", "kafka-2", "kafka-3"]
MESSAGES = 2400
RATE_PER_S = 200.0  # 12 s of sending
KILL_AFTER_S = 2.0
PARTITIONS = 3
Position = tuple[int, int]  # (partition, offset)


@dataclass
class Run:
    """What the producer saw: acknowledged numbers, and when the failed ones were sent."""

    sent_at: dict[int, float] = field(default_factory=dict)
    acked: set[int] = field(default_factory=set)
    acked_at: dict[int, float] = field(default_factory=dict)
    failed: list[int] = field(default_factory=list)
    killed_at: float = 0.0

    def error_window_s(self) -> float:
        """From the first to the last send that failed (0 when none did)."""
        if not self.failed:
            return 0.0
        times = [self.sent_at[i] for i in self.failed]
        return max(times) - min(times)

    def longest_wait_s(self) -> float:
        """The longest a send waited for its acknowledgement: the stall a failover caused."""
        return max((at - self.sent_at[n] for n, at in self.acked_at.items()), default=0.0)


@pytest.fixture(scope="module")
def cluster(ha_stack: HaStack) -> Iterator[HaStack]:
    with started(ha_stack, NODES) as stack:
        yield stack


def brokers(stack: HaStack) -> list[KafkaBroker]:
    found = [stack.services[name] for name in NODES]
    assert all(isinstance(b, KafkaBroker) for b in found)
    return [b for b in found if isinstance(b, KafkaBroker)]


def admin(stack: HaStack) -> AdminClient:
    return AdminClient({"bootstrap.servers": stack.settings.kafka_bootstrap_servers})


def new_topic(stack: HaStack) -> str:
    """Created by the platform's own topic code, with the HA stack's replication setting."""
    name = f"ha.test.{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(name, partitions=PARTITIONS, value_schema=None)
    assert reconcile_topics(stack.settings, [spec]).created == [name]
    return name


def wait_fully_replicated(stack: HaStack, topic: str, timeout: float = 120.0) -> None:
    client = admin(stack)

    def in_sync() -> bool:
        meta = client.list_topics(topic, timeout=5).topics[topic]
        parts = meta.partitions.values()
        return len(parts) == PARTITIONS and all(len(p.isrs) == len(NODES) for p in parts)

    wait_until(in_sync, timeout, what=f"{topic}: every replica in sync")


def leaders(stack: HaStack, topic: str) -> set[int]:
    meta = admin(stack).list_topics(topic, timeout=5).topics[topic]
    return {p.leader for p in meta.partitions.values()}


def produce_while_killing(stack: HaStack, topic: str, victim: KafkaBroker) -> Run:
    run = Run()
    producer = Producer(producer_config(stack.settings, "ha-test"))

    def delivered(err: KafkaError | None, msg: object) -> None:
        number = int(msg.value())  # type: ignore[attr-defined]
        if err is None:
            run.acked.add(number)
            run.acked_at[number] = time.monotonic()
        else:
            run.failed.append(number)

    start = time.monotonic()
    for number in range(MESSAGES):
        due = start + number / RATE_PER_S
        while (now := time.monotonic()) < due:
            producer.poll(min(due - now, 0.01))
        if not run.killed_at and now - start >= KILL_AFTER_S:
            proc = victim.process()
            assert proc is not None, f"{victim.name} is not running"
            os.kill(proc.pid, signal.SIGKILL)
            run.killed_at = time.monotonic()
        run.sent_at[number] = time.monotonic()
        for _ in range(1000):  # the local queue is large: this only waits out a full one
            try:
                producer.produce(topic, key=str(number), value=str(number), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(60) == 0, "messages still undelivered after 60 s"
    return run


def read_back(stack: HaStack, topic: str, timeout: float = 60.0) -> dict[int, set[Position]]:
    """Where each number is in the topic's log (partition, offset), from the beginning up to
    the high watermarks: by position, so a fetch the consumer repeats is not a duplicate."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.settings.kafka_bootstrap_servers,
            "group.id": f"ha-read-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        highs = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        seen: defaultdict[int, set[Position]] = defaultdict(set)
        positions = dict.fromkeys(highs, 0)
        deadline = time.monotonic() + timeout
        while any(positions[p] < highs[p] for p in highs) and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=1.0):
                if msg.error() is not None:
                    continue
                seen[int(msg.value())].add((msg.partition(), msg.offset()))
                positions[msg.partition()] = msg.offset() + 1
        assert all(positions[p] >= highs[p] for p in highs), f"read {positions}, end {highs}"
        return seen
    finally:
        consumer.close()


def check_and_report(fault: str, run: Run, seen: dict[int, set[Position]]) -> None:
    lost = sorted(n for n in run.acked if not seen.get(n))
    duplicated = {n: sorted(seen[n]) for n in sorted(run.acked) if len(seen.get(n, ())) > 1}
    print(
        f"\nHA {fault}: acked {len(run.acked)}/{MESSAGES}, failed sends {len(run.failed)}, "
        f"sends failed for {run.error_window_s():.2f} s, longest wait for an ack "
        f"{run.longest_wait_s():.2f} s, lost {len(lost)}, "
        f"duplicated {len(duplicated)}"
    )
    assert not lost, f"{fault}: acknowledged messages lost: {lost[:20]}"
    assert not duplicated, f"{fault}: acknowledged messages twice in the log: {duplicated}"
    last_second = [n for n in range(MESSAGES) if run.sent_at[n] >= run.sent_at[MESSAGES - 1] - 1]
    assert set(last_second) <= run.acked, f"{fault}: the cluster did not take writes again"


def test_topics_get_three_replicas_and_min_isr_two(cluster: HaStack) -> None:
    settings = cluster.settings
    assert len(settings.kafka_bootstrap_servers.split(",")) == 3
    config = producer_config(settings, "ha-test")
    assert config["acks"] == "all" and config["enable.idempotence"] is True
    topic = new_topic(cluster)
    client = admin(cluster)  # kept: a destroyed client fails the futures it returned
    meta = client.list_topics(topic, timeout=10).topics[topic]
    assert {len(p.replicas) for p in meta.partitions.values()} == {3}
    resource = ConfigResource(ResourceType.TOPIC, topic)
    described = client.describe_configs([resource])[resource].result(timeout=10)
    assert described["min.insync.replicas"].value == "2"


def replicated_topic(cluster: HaStack) -> tuple[str, list[KafkaBroker], KafkaBroker]:
    """A new topic, every replica in sync; the nodes, and the quorum's leader among them."""
    topic = new_topic(cluster)
    wait_fully_replicated(cluster, topic)
    nodes = brokers(cluster)
    controller = active_controller(nodes)
    assert controller is not None, "no node records a quorum leader"
    return topic, nodes, controller


def test_broker_sigkill_loses_no_acknowledged_write(cluster: HaStack) -> None:
    topic, nodes, controller = replicated_topic(cluster)
    led = leaders(cluster, topic)
    # A plain broker (not the controller) that leads a partition of the topic.
    victim = next(
        (b for b in nodes if b is not controller and b.node.node_id in led),
        next(b for b in nodes if b is not controller),
    )
    run = produce_while_killing(cluster, topic, victim)
    victim.start()
    check_and_report("kafka_broker_sigkill", run, read_back(cluster, topic))
    wait_fully_replicated(cluster, topic)


def test_controller_sigkill_loses_no_acknowledged_write(cluster: HaStack) -> None:
    topic, nodes, controller = replicated_topic(cluster)
    run = produce_while_killing(cluster, topic, controller)
    after = active_controller(nodes)
    assert after is not None and after is not controller, "no new quorum leader was elected"
    controller.start()
    check_and_report("kafka_controller_sigkill", run, read_back(cluster, topic))
    wait_fully_replicated(cluster, topic)
