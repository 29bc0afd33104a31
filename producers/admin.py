"""Creates the registry's topics on a broker and keeps existing ones in line with it.

The registry (producers/topics.py) is the one place a topic is resized or reconfigured, so
`ensure_topics` does not stop at creating what is missing: it grows topics the registry gives
more partitions and sets the configs it declares (retention, cleanup policy, min ISR) where the
broker's differ. Kafka cannot remove partitions, so a registry asking for fewer only warns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from domain.settings import Settings
from producers.kafka_security import librdkafka_security
from producers.topics import ALL_TOPICS, TopicSpec

log = logging.getLogger("memestream.topics")

# Config values that are comma-separated sets, where "delete,compact" == "compact,delete".
LIST_CONFIGS = frozenset({"cleanup.policy"})


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, **librdkafka_security(settings)}
    )


@dataclass
class TopicChanges:
    """What `reconcile_topics` did, and what it would not do."""

    created: list[str] = field(default_factory=list)
    grown: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (before, after)
    reconfigured: dict[str, dict[str, str]] = field(default_factory=dict)  # name: {key: new}
    warnings: list[str] = field(default_factory=list)


def replication_factor(spec: TopicSpec, brokers: int, wanted: int | None = None) -> int:
    """KAFKA_REPLICATION_FACTOR when set (the broker refuses to create a topic with fewer
    live brokers, rather than creating it under-replicated), else the registry's, capped at
    the broker count so the same registry serves a one-node broker and a cluster."""
    if wanted is not None:
        return wanted
    return max(1, min(spec.replication_factor, brokers))


def desired_config(spec: TopicSpec, replicas: int) -> dict[str, str]:
    """The registry's config with min ISR capped at the topic's replicas (a min ISR above
    them would refuse every acks=all write)."""
    config = spec.config()
    config["min.insync.replicas"] = str(min(int(config["min.insync.replicas"]), max(replicas, 1)))
    return config


def _same(key: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if key in LIST_CONFIGS:
        return {v.strip() for v in current.split(",")} == {v.strip() for v in wanted.split(",")}
    return current == wanted


def ensure_topics(
    settings: Settings, topics: tuple[TopicSpec, ...] = ALL_TOPICS, timeout: float = 30.0
) -> list[str]:
    """Creates the missing topics and reconciles the others; returns the names it created."""
    return reconcile_topics(settings, topics, timeout).created


def reconcile_topics(
    settings: Settings, topics: Sequence[TopicSpec] = ALL_TOPICS, timeout: float = 30.0
) -> TopicChanges:
    """Makes the broker's topics match the registry: creates missing ones, adds partitions,
    and sets the configs the registry declares (others, set by hand, are left alone)."""
    admin = admin_client(settings)
    metadata = admin.list_topics(timeout=timeout)
    brokers = len(metadata.brokers)
    replicas = {
        t.name: replication_factor(t, brokers, settings.kafka_replication_factor) for t in topics
    }
    changes = TopicChanges()
    missing = [t for t in topics if t.name not in metadata.topics]
    changes.created = _create(admin, missing, replicas, timeout)
    if len(changes.created) < len(missing):  # someone else created some meanwhile
        metadata = admin.list_topics(timeout=timeout)
    existing: list[TopicSpec] = []
    counts: dict[str, int] = {}
    for spec in topics:
        if spec.name in changes.created:
            continue
        described = metadata.topics.get(spec.name)
        if described is None or described.error is not None or not described.partitions:
            error = described.error if described is not None else "not in metadata yet"
            _warn(changes, f"{spec.name}: not reconciled ({error})")
            continue
        existing.append(spec)
        partitions = described.partitions
        counts[spec.name] = len(partitions)
        have = min((len(p.replicas) for p in partitions.values()), default=0)
        if have < replicas[spec.name]:
            _warn(
                changes,
                f"{spec.name}: {have} replicas, the registry asks for "
                f"{replicas[spec.name]}; reassign partitions to change it",
            )
    if existing:
        _grow(admin, existing, counts, changes, timeout)
        _configure(admin, existing, replicas, changes, timeout)
    return changes


def _warn(changes: TopicChanges, message: str) -> None:
    log.warning(message)
    changes.warnings.append(message)


def _create(
    admin: AdminClient, specs: Sequence[TopicSpec], replicas: dict[str, int], timeout: float
) -> list[str]:
    if not specs:
        return []
    new = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=replicas[spec.name],
            config=desired_config(spec, replicas[spec.name]),
        )
        for spec in specs
    ]
    created = []
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        else:
            created.append(name)
    return created


def _grow(
    admin: AdminClient,
    specs: Sequence[TopicSpec],
    counts: dict[str, int],
    changes: TopicChanges,
    timeout: float,
) -> None:
    """Adds partitions (new messages of a key may then land on another partition than its
    older ones, so this is logged); never removes any, which Kafka cannot do."""
    grow: list[NewPartitions] = []
    for spec in specs:
        current = counts[spec.name]
        if spec.partitions > current:
            grow.append(NewPartitions(spec.name, spec.partitions))
        elif spec.partitions < current:
            _warn(
                changes,
                f"{spec.name}: {current} partitions, the registry asks for {spec.partitions}; "
                "Kafka cannot remove partitions, left as is",
            )
    if not grow:
        return
    for name, future in admin.create_partitions(grow, operation_timeout=timeout).items():
        wanted = next(g.new_total_count for g in grow if g.topic == name)
        try:
            future.result()
        except KafkaException as exc:
            # Another process grew it first: fine if it has at least what we wanted now.
            if exc.args[0].code() != KafkaError.INVALID_PARTITIONS:
                raise
            now = len(admin.list_topics(name, timeout=timeout).topics[name].partitions)
            if now < wanted:
                raise
            continue
        changes.grown[name] = (counts[name], wanted)
        log.warning(
            "%s: partitions %d -> %d; keys hash to new partitions from now on",
            name,
            counts[name],
            wanted,
        )


def _configure(
    admin: AdminClient,
    specs: Sequence[TopicSpec],
    replicas: dict[str, int],
    changes: TopicChanges,
    timeout: float,
) -> None:
    """Sets each declared key that differs, with incremental alter (a plain alter_configs
    would reset every key it does not name to the broker default)."""
    resources = [ConfigResource(ResourceType.TOPIC, spec.name) for spec in specs]
    described = admin.describe_configs(resources, request_timeout=timeout)
    alter: list[ConfigResource] = []
    diffs: dict[str, dict[str, str]] = {}
    for spec, resource in zip(specs, resources, strict=True):
        current = described[resource].result(timeout=timeout)
        diff = {
            key: value
            for key, value in desired_config(spec, replicas[spec.name]).items()
            if not _same(key, current[key].value if key in current else None, value)
        }
        if not diff:
            continue
        diffs[spec.name] = diff
        entries = [
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            for key, value in diff.items()
        ]
        alter.append(ConfigResource(ResourceType.TOPIC, spec.name, incremental_configs=entries))
    if not alter:
        return
    for resource, future in admin.incremental_alter_configs(alter, request_timeout=timeout).items():
        future.result(timeout=timeout)
        changes.reconfigured[resource.name] = diffs[resource.name]
        log.info("%s: config set %s", resource.name, diffs[resource.name])
