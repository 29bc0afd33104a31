"""The changelog-backed store on the real Kafka: what one store writes, another reads back in bulk
(overwrites and deletes included), and which partitions it trusts across consumer generations."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import faust
import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from domain.settings import Settings
from streams import changelog
from streams.app import faust_broker_url
from streams.changelog import ChangelogStore, read_changelog

pytestmark = pytest.mark.services

PARTITIONS = 6


@pytest.fixture
async def app(stack_settings: Settings) -> AsyncIterator[faust.App]:
    group = f"test-changelog-{uuid.uuid4().hex[:8]}"
    app = faust.App(group, broker=faust_broker_url(stack_settings.kafka_bootstrap_servers))
    await app.maybe_start_producer()
    try:
        yield app
    finally:
        await app.producer.stop()
        admin = AdminClient({"bootstrap.servers": stack_settings.kafka_bootstrap_servers})
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(group)]
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.exception()


async def written(app: faust.App, settings: Settings) -> tuple[ChangelogStore, dict[bytes, bytes]]:
    """A store that took 3,000 writes (a third overwrites, a tenth deletes), flushed."""
    store = ChangelogStore(app, settings, "state", PARTITIONS)
    store.assigned(set(range(PARTITIONS)), generation=1)
    assert await store.recover(set(range(PARTITIONS)))
    rng = random.Random(7)
    expected: dict[bytes, bytes] = {}
    for i in range(3000):
        key = f"k{rng.randrange(2000)}".encode()
        partition = int(key[1:]) % PARTITIONS
        value = None if rng.random() < 0.1 else f"v{i}".encode()
        store.put(partition, key, value)
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    await store.flush()
    await app.producer.flush()
    return store, expected


async def test_a_store_reads_back_what_another_wrote(
    app: faust.App, stack_settings: Settings
) -> None:
    store, expected = await written(app, stack_settings)
    assert store.data == expected

    fresh = ChangelogStore(app, stack_settings, "state", PARTITIONS)
    fresh.assigned({1, 4}, generation=1)
    assert await fresh.recover({1, 4})
    assert fresh.loaded == {1, 4}
    assert fresh.data == {k: v for k, v in expected.items() if int(k[1:]) % PARTITIONS in {1, 4}}
    assert fresh.recovered_records >= len(fresh.data)
    assert sorted(k for p, k, _ in fresh.items(b"k") if p == 4) == sorted(
        k for k in expected if int(k[1:]) % PARTITIONS == 4
    )


async def test_the_changelog_is_compacted_and_read_to_its_end(
    app: faust.App, stack_settings: Settings
) -> None:
    store, expected = await written(app, stack_settings)
    admin = AdminClient({"bootstrap.servers": stack_settings.kafka_bootstrap_servers})
    resource = ConfigResource(ResourceType.TOPIC, store.topic_name)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert "compact" in config["cleanup.policy"].value
    tables, records = read_changelog(
        {"bootstrap.servers": stack_settings.kafka_bootstrap_servers},
        store.topic_name,
        range(PARTITIONS),
    )
    assert records == 3000
    assert {k: v for table in tables.values() for k, v in table.items()} == expected


async def test_partitions_kept_only_while_no_generation_was_missed(
    app: faust.App, stack_settings: Settings
) -> None:
    store, expected = await written(app, stack_settings)
    store.assigned({0, 1, 2}, generation=2)  # the next generation: the kept three stay
    assert store.loaded == {0, 1, 2}
    assert set(store.data) == {k for k in expected if int(k[1:]) % PARTITIONS in {0, 1, 2}}
    store.put(3, b"k3", b"not ours")  # a partition not loaded: to the log, not to memory
    assert b"k3" not in store.data
    store.pending.clear()
    store.assigned({0, 1, 2}, generation=4)  # generation 3 went by unseen: nothing is trusted
    assert store.loaded == set()
    assert store.data == {}


async def test_a_read_overtaken_by_a_rebalance_is_dropped(
    app: faust.App, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await written(app, stack_settings)
    fresh = ChangelogStore(app, stack_settings, "state", PARTITIONS)
    fresh.assigned({0, 1}, generation=5)

    def read_then_rebalance(*args: object, **kwargs: object) -> object:
        result = read_changelog(*args, **kwargs)  # type: ignore[arg-type]
        fresh.generation = 6  # the consumer joined a new generation meanwhile
        return result

    monkeypatch.setattr(changelog, "read_changelog", read_then_rebalance)
    assert not await fresh.recover({0, 1})
    assert fresh.loaded == set() and fresh.data == {}
