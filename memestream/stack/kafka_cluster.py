"""Three Kafka nodes in one KRaft cluster on loopback: the replicated stack's Kafka.

Each node is a `KafkaBroker` (memestream/stack/kafka.py: same jars, same cache) that is
both broker and controller, and all three are the quorum's voters. Why combined roles on
one machine: separate controllers would double the JVMs (six on two cores) for no gain in
what the replicated stack shows: losing any one process, broker or active controller, still
leaves a quorum of two voters and two of three replicas of every partition
(replication factor 3, min.insync.replicas 2), so acks=all writes go on.

`active_controller` reads the quorum's own record (`quorum-state`, which every voter writes
when it learns of an election) instead of asking a broker: in KRaft, a broker's metadata
answer names a random broker as "controller", not the quorum leader.
"""

from __future__ import annotations

import json
from pathlib import Path

from domain.settings import Settings
from memestream.stack.kafka import KafkaBroker, KraftNode
from memestream.stack.layout import StackLayout

NODE_COUNT = 3
HA_HEAP = ("-Xms128m", "-Xmx512m")  # three JVMs on a small machine; plenty for tests


def cluster_nodes(first_port: int, count: int = NODE_COUNT) -> list[KraftNode]:
    """Nodes `kafka-1..n` on ports first_port, +2, +4... (each controller on port + 1)."""
    ports = [first_port + 2 * i for i in range(count)]
    voters = tuple((i + 1, port + 1) for i, port in enumerate(ports))
    return [
        KraftNode(f"kafka-{i + 1}", i + 1, port, voters, HA_HEAP) for i, port in enumerate(ports)
    ]


def kafka_cluster(settings: Settings, layout: StackLayout, first_port: int) -> list[KafkaBroker]:
    return [KafkaBroker(settings, layout, node) for node in cluster_nodes(first_port)]


def bootstrap_servers(first_port: int, count: int = NODE_COUNT) -> str:
    """Every node, so a client starts even when one of them is down."""
    return ",".join(f"127.0.0.1:{node.port}" for node in cluster_nodes(first_port, count))


def active_controller(brokers: list[KafkaBroker]) -> KafkaBroker | None:
    """The node the voters last recorded as leader of the metadata quorum (highest epoch)."""
    best: tuple[int, int] | None = None
    for broker in brokers:
        state_file = broker.data_dir / "__cluster_metadata-0" / "quorum-state"
        state = _read_state(state_file)
        if state is None or state[0] < 0:
            continue
        leader, epoch = state
        if best is None or epoch > best[1]:
            best = (leader, epoch)
    if best is None:
        return None
    return next((b for b in brokers if b.node.node_id == best[0]), None)


def _read_state(path: Path) -> tuple[int, int] | None:
    try:
        record = json.loads(path.read_text())
        return int(record["leaderId"]), int(record["leaderEpoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
