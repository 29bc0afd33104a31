"""Topic reconciliation against the real broker, on topics of this test's own.

`ensure_topics` used to create missing topics only, so a registry change (more partitions,
another retention) never reached a broker that already had the topic.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from domain.settings import Settings, get_settings
from producers.admin import (
    admin_client,
    desired_config,
    ensure_topics,
    reconcile_topics,
    replication_factor,
)
from producers.topics import DAY_MS, TopicSpec
from tests.services import services

pytestmark = pytest.mark.services
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def settings() -> Iterator[Settings]:
    with services(get_settings()) as ready:
        yield ready


@pytest.fixture
def admin(settings: Settings) -> AdminClient:
    return admin_client(settings)


@pytest.fixture
def names(admin: AdminClient) -> Iterator[list[str]]:
    """Unique topic names, deleted afterwards."""
    made: list[str] = []
    yield made
    if made:
        for future in admin.delete_topics(made, operation_timeout=30).values():
            with contextlib.suppress(KafkaException):  # never created, or already gone
                future.result()


def _name(names: list[str]) -> str:
    names.append(f"test.reconcile.{uuid.uuid4().hex[:12]}")
    return names[-1]


def _create(admin: AdminClient, name: str, partitions: int, config: dict[str, str]) -> None:
    topic = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config)
    admin.create_topics([topic], operation_timeout=30)[name].result()
    _partitions(admin, name)


def _partitions(admin: AdminClient, name: str) -> int:
    """The topic's partition count, once metadata (which trails the controller) lists it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topic = admin.list_topics(name, timeout=10).topics.get(name)
        if topic is not None and topic.error is None and topic.partitions:
            return len(topic.partitions)
        time.sleep(0.1)
    raise AssertionError(f"{name} never showed in metadata")


def _config(admin: AdminClient, name: str) -> dict[str, str]:
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = admin.describe_configs([resource])[resource].result(timeout=10)
    return {key: entry.value for key, entry in entries.items()}


def test_grows_partitions_and_sets_configs_that_differ(
    settings: Settings, admin: AdminClient, names: list[str]
) -> None:
    name = _name(names)
    _create(
        admin,
        name,
        partitions=2,
        config={"retention.ms": str(HOUR_MS), "cleanup.policy": "delete", "segment.ms": "3600000"},
    )
    spec = TopicSpec(name, partitions=4, value_schema=None, retention_ms=2 * DAY_MS, compacted=True)

    changes = reconcile_topics(settings, (spec,))

    assert changes.created == []
    assert changes.grown == {name: (2, 4)}
    assert changes.reconfigured[name] == {
        "retention.ms": str(2 * DAY_MS),
        "cleanup.policy": "compact,delete",
    }
    assert _partitions(admin, name) == 4
    config = _config(admin, name)
    assert config["retention.ms"] == str(2 * DAY_MS)
    assert set(config["cleanup.policy"].split(",")) == {"compact", "delete"}
    assert config["segment.ms"] == "3600000"  # a key the registry does not declare: untouched
    # min.insync.replicas=2 is capped at the one local broker, which the topic already has.
    assert config["min.insync.replicas"] == "1"

    again = reconcile_topics(settings, (spec,))
    assert (again.created, again.grown, again.reconfigured, again.warnings) == ([], {}, {}, [])


def test_never_removes_partitions_but_warns(
    settings: Settings,
    admin: AdminClient,
    names: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = _name(names)
    spec = TopicSpec(name, partitions=1, value_schema=None)
    _create(admin, name, partitions=3, config=spec.config() | {"min.insync.replicas": "1"})

    with caplog.at_level(logging.WARNING, logger="memestream.topics"):
        changes = reconcile_topics(settings, (spec,))

    assert changes.grown == {} and changes.reconfigured == {}
    assert len(changes.warnings) == 1 and "cannot remove partitions" in changes.warnings[0]
    assert any(name in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert _partitions(admin, name) == 3


def test_creates_missing_topics_with_the_registry_config(
    settings: Settings, admin: AdminClient, names: list[str]
) -> None:
    name = _name(names)
    spec = TopicSpec(name, partitions=2, value_schema=None, retention_ms=3 * DAY_MS)

    assert ensure_topics(settings, (spec,)) == [name]

    assert _partitions(admin, name) == 2
    assert _config(admin, name)["retention.ms"] == str(3 * DAY_MS)
    assert ensure_topics(settings, (spec,)) == []


def test_replication_factor_setting_overrides_the_registry() -> None:
    """KAFKA_REPLICATION_FACTOR wins (the broker refuses a topic it cannot replicate that
    much); unset, the registry's 3 capped at the brokers; min ISR never above replicas."""
    spec = TopicSpec("rf.unit", partitions=1, value_schema=None)
    assert replication_factor(spec, brokers=1) == 1
    assert replication_factor(spec, brokers=5) == 3
    assert replication_factor(spec, brokers=2, wanted=3) == 3
    assert desired_config(spec, 1)["min.insync.replicas"] == "1"
    assert desired_config(spec, 3)["min.insync.replicas"] == "2"
