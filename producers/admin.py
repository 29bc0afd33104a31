"""Creates and checks the registry's topics on a broker."""

from __future__ import annotations

from confluent_kafka.admin import AdminClient, NewTopic

from domain.settings import Settings
from producers.kafka_security import librdkafka_security
from producers.topics import ALL_TOPICS, TopicSpec


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, **librdkafka_security(settings)}
    )


def ensure_topics(
    settings: Settings, topics: tuple[TopicSpec, ...] = ALL_TOPICS, timeout: float = 30.0
) -> list[str]:
    """Creates the missing topics; returns the names it created.

    The replication factor and min ISR are capped at the broker count, so the same
    registry serves a one-node local broker and a three-node cluster.
    """
    admin = admin_client(settings)
    metadata = admin.list_topics(timeout=timeout)
    brokers = len(metadata.brokers)
    missing = [t for t in topics if t.name not in metadata.topics]
    if not missing:
        return []
    new = []
    for spec in missing:
        config = spec.config()
        config["min.insync.replicas"] = str(min(int(config["min.insync.replicas"]), brokers))
        new.append(
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=min(spec.replication_factor, brokers),
                config=config,
            )
        )
    created = []
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result()
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        else:
            created.append(name)
    return created
