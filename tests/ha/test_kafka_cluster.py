"""Three KRaft nodes: an acknowledged write survives SIGKILL of a broker or of the controller.

A producer with the platform's config (acks=all, idempotence) sends numbered messages at a
steady rate while one node is SIGKILLed; every message it saw acknowledged must be read back
exactly once. The figures (failed sends, how long sends failed) are printed for the report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from domain.settings import PROJECT_ROOT
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


#: A worker's lag gauge in a process of its own, reading for `seconds` (streams/lag.py):
#: prints the time of each read that worked and each error, and must outlive the kill.
PROBE_S, HOLD_S = 45.0, 10.0
LAG_PROBE = """
import sys, time
from producers.offsets import OffsetReader
from streams.lag import LagReader
bootstrap, group, topic, seconds = sys.argv[1:4] + [float(sys.argv[4])]
reader = LagReader(OffsetReader({"bootstrap.servers": bootstrap}, group, timeout_s=2.0))
start = time.monotonic()
while (now := time.monotonic() - start) < seconds:
    try:
        reader.read({(topic, p) for p in range(int(sys.argv[5]))})
        print(f"ok {now:.2f}", flush=True)
    except Exception as exc:
        print(f"error {now:.2f} {type(exc).__name__}: {exc}", flush=True)
    time.sleep(0.1)
"""


def coordinator_of(stack: HaStack, group: str) -> int:
    """The node leading the group's `__consumer_offsets` partition, as Kafka picks it: Java's
    String.hashCode of the id, its sign bit cleared, modulo that topic's partitions."""
    meta = admin(stack).list_topics("__consumer_offsets", timeout=10).topics["__consumer_offsets"]
    code = 0
    for char in group:
        code = (31 * code + ord(char)) & 0xFFFFFFFF
    return meta.partitions[(code & 0x7FFFFFFF) % len(meta.partitions)].leader


def test_lag_reads_outlive_the_death_of_the_group_coordinator(cluster: HaStack) -> None:
    """librdkafka's admin OffsetFetch segfaulted on NOT_COORDINATOR (producers/offsets.py):
    the workers died with their group's coordinator. The reader must live on, and read again."""
    topic, nodes, _ = replicated_topic(cluster)
    bootstrap = cluster.settings.kafka_bootstrap_servers
    group = f"ha-lag-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})

    def committed() -> bool:  # a new group's coordinator answers NOT_COORDINATOR at first
        offsets = [TopicPartition(topic, p, 0) for p in range(PARTITIONS)]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException:
            return False
        return True

    wait_until(committed, 60, what=f"{group}: first commit")
    consumer.close()
    coordinator = next(b for b in nodes if b.node.node_id == coordinator_of(cluster, group))
    probe = subprocess.Popen(
        [sys.executable, "-c", LAG_PROBE, bootstrap, group, topic, str(PROBE_S), str(PARTITIONS)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(4.0)
        proc = coordinator.process()
        assert proc is not None, f"{coordinator.name} is not running"
        os.kill(proc.pid, signal.SIGKILL)
        # Back after a while, as Kubernetes would restart it: the coordinator moves back to
        # it, and the broker that held the group meanwhile answers NOT_COORDINATOR (in the
        # failover run, the moment the workers crashed).
        time.sleep(HOLD_S)
        coordinator.start()
        output, _ = probe.communicate(timeout=120)
    finally:
        if probe.poll() is None:
            probe.kill()
        coordinator.start()
    assert probe.returncode == 0, f"the lag reader died ({probe.returncode}):\n{output[-3000:]}"
    reads = [float(line.split()[1]) for line in output.splitlines() if line.startswith("ok ")]
    assert any(t < 4.0 for t in reads), output[-3000:]
    assert any(t > PROBE_S - 5 for t in reads), f"no read after the failover:\n{output[-3000:]}"
    wait_fully_replicated(cluster, topic)
