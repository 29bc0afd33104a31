"""The topic registry, and the topics it creates on the real broker."""

from __future__ import annotations

from confluent_kafka.admin import ConfigResource, ResourceType

from domain.settings import Settings
from producers.admin import admin_client, ensure_topics
from producers.serialization import SchemaRegistry
from producers.topics import ALL_TOPICS, DLQ_TOPICS, TOPICS, topic


def test_design_topics_are_registered() -> None:
    names = {t.name for t in TOPICS}
    assert names == {
        "meme.requests",
        "meme.rendered",
        "meme.votes",
        "meme.views",
        "meme.deleted",
        "meme.feed",
    }


def test_every_topic_has_a_dlq_and_a_known_schema() -> None:
    schemas = SchemaRegistry.from_folder().latest
    assert {t.dlq for t in TOPICS} == {d.name for d in DLQ_TOPICS}
    for spec in TOPICS:
        assert spec.value_schema in schemas
        assert spec.partitions >= 1


def test_deleted_topic_is_compacted_so_tombstones_work() -> None:
    assert topic("meme.deleted").config()["cleanup.policy"] == "compact,delete"
    assert topic("meme.requests").config()["cleanup.policy"] == "delete"


def test_topics_exist_on_the_broker_with_registry_config(stack_settings: Settings) -> None:
    assert ensure_topics(stack_settings) == []  # the fixture created them: idempotent
    admin = admin_client(stack_settings)
    metadata = admin.list_topics(timeout=10)
    for spec in ALL_TOPICS:
        assert len(metadata.topics[spec.name].partitions) == spec.partitions
    resources = [ConfigResource(ResourceType.TOPIC, "meme.deleted")]
    config = admin.describe_configs(resources)[resources[0]].result(timeout=10)
    assert config["cleanup.policy"].value == "compact,delete"
    assert config["retention.ms"].value == topic("meme.deleted").config()["retention.ms"]
