"""Rebuild a derived store (Redis trending, ClickHouse analytics) from the Kafka topics.

Kafka is the platform's record of what happened; the trending sets and the analytics tables
are computed from it by the `trending` and `analytics` workers. So a rebuild is not a second
implementation of either: it puts the role's consumer group back to the oldest event the
topics still hold, clears the state the role would otherwise trust, and the role's own workers
recompute everything when they start again.

- `trending`: its table (the compacted `<group>-state-changelog` topic: per-meme counts and
  the offsets already applied) and the `trending:*` keys in Redis are deleted, else the
  engine would skip every replayed event as already counted.
- `analytics`: nothing is deleted. ClickHouse's `events` is a ReplacingMergeTree keyed by
  event id and the minute counts are recomputed from it, so replayed events replace
  themselves; rows older than the topics' retention (3 to 30 days, producers/topics.py)
  are kept rather than lost.

Kafka refuses to move the offsets of a group with live members, and a live worker would
write the old state back, so the role's workers must be stopped first (`memestream down`,
or the Deployment scaled to 0); `rebuild` checks and refuses otherwise.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from confluent_kafka.error import KafkaError

from domain.settings import Settings
from producers.admin import admin_client
from producers.roles import ANALYTICS, TRENDING, Role
from sinks.redis.client import create_redis

#: The roles whose stores are derived from Kafka alone (render's output is the platform's own).
REBUILDABLE: dict[str, Role] = {TRENDING.name: TRENDING, ANALYTICS.name: ANALYTICS}
#: The trending worker's table (streams/changelog.py: `<app id>-<name>-changelog`).
TRENDING_TABLE = "state"
TRENDING_KEYS = "trending:*"
ADMIN_TIMEOUT_S = 30.0
IDLE_STATES = frozenset({ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD})


class RebuildError(RuntimeError):
    """The rebuild cannot start (live workers) or Kafka refused a step."""


@dataclass
class Rebuild:
    """What a rebuild did: the events the workers will replay, the state it cleared."""

    role: str
    group: str
    #: topic -> events between the oldest retained offset and the end of the log.
    replay: dict[str, int] = field(default_factory=dict)
    deleted_topics: list[str] = field(default_factory=list)
    deleted_keys: int = 0

    @property
    def events(self) -> int:
        return sum(self.replay.values())


def changelog_topic(settings: Settings) -> str:
    return f"{TRENDING.group_id_for(settings.consumer_group_prefix)}-{TRENDING_TABLE}-changelog"


def _result(future: Future[Any]) -> Any:
    try:
        return future.result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        raise RebuildError(str(exc.args[0])) from exc


def ensure_idle(admin: AdminClient, group: str) -> None:
    """Refuses while the group has members: their commits would undo the rebuild."""
    (future,) = admin.describe_consumer_groups([group]).values()
    try:
        description = future.result(timeout=ADMIN_TIMEOUT_S)
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
            return
        raise RebuildError(str(exc.args[0])) from exc
    if description.state not in IDLE_STATES or description.members:
        hosts = sorted({m.host for m in description.members})
        raise RebuildError(
            f"consumer group {group} has {len(description.members)} live member(s)"
            f" ({', '.join(hosts)}): stop its workers first"
        )


def rewind(
    admin: AdminClient, group: str, topics: tuple[str, ...], since: datetime | None = None
) -> dict[str, int]:
    """Sets the group's offsets to each partition's oldest retained event (or its first
    written at or after `since`); returns the events per topic the workers will read again."""
    metadata = admin.list_topics(timeout=ADMIN_TIMEOUT_S)
    partitions = [
        TopicPartition(topic, p)
        for topic in topics
        if topic in metadata.topics
        for p in sorted(metadata.topics[topic].partitions)
    ]
    if not partitions:
        return {}
    start = (
        OffsetSpec.earliest()
        if since is None
        else OffsetSpec.for_timestamp(int(since.timestamp() * 1000))
    )
    firsts = admin.list_offsets(dict.fromkeys(partitions, start))
    latest = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions})
    ends = {tp: int(_result(f).offset) for tp, f in latest.items()}
    # -1: nothing written since `since`, so the group starts at the end of the partition.
    starts = {tp: int(_result(f).offset) for tp, f in firsts.items()}
    starts = {tp: offset if offset >= 0 else ends[tp] for tp, offset in starts.items()}
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(tp.topic, tp.partition, starts[tp]) for tp in partitions]
    )
    for future in admin.alter_consumer_group_offsets([request]).values():
        _result(future)
    replay: dict[str, int] = dict.fromkeys(dict.fromkeys(tp.topic for tp in partitions), 0)
    for tp in partitions:
        replay[tp.topic] += ends[tp] - starts[tp]
    return replay


def delete_topic(admin: AdminClient, topic: str) -> bool:
    """Deletes `topic` and waits until the brokers no longer list it (deletion is
    asynchronous, and the worker re-creates the topic when it starts)."""
    if topic not in admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics:
        return False
    for future in admin.delete_topics([topic], operation_timeout=ADMIN_TIMEOUT_S).values():
        _result(future)
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    while topic in admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics:
        if time.monotonic() > deadline:
            raise RebuildError(f"{topic} still listed {ADMIN_TIMEOUT_S:.0f}s after its deletion")
        time.sleep(0.2)
    return True


async def delete_keys(settings: Settings, pattern: str) -> int:
    client = create_redis(settings, timeout_s=5.0)
    try:
        deleted = 0
        batch: list[str] = []
        async for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.unlink(*batch)
                batch = []
        if batch:
            deleted += await client.unlink(*batch)
        return deleted
    finally:
        await client.aclose()


def rebuild(settings: Settings, role_name: str, since: datetime | None = None) -> Rebuild:
    """Clears the role's derived state and rewinds its group (see the module's docstring).
    `since` replays only what was written from then on (a partial trending window then)."""
    role = REBUILDABLE.get(role_name)
    if role is None:
        raise RebuildError(f"{role_name!r} is not a derived store: choose {sorted(REBUILDABLE)}")
    admin = admin_client(settings)
    group = role.group_id_for(settings.consumer_group_prefix)
    ensure_idle(admin, group)
    done = Rebuild(role.name, group)
    # Rewind first: should a later step fail, the old table still records which offsets it
    # counted, so the replay skips them (streams/trending/engine.py), where an emptied table
    # with unmoved offsets would silently lose the counts.
    done.replay = rewind(admin, group, role.topics, since)
    if role is TRENDING:
        if delete_topic(admin, changelog_topic(settings)):
            done.deleted_topics.append(changelog_topic(settings))
        done.deleted_keys = asyncio.run(delete_keys(settings, TRENDING_KEYS))
    return done
