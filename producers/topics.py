"""The topic registry: every topic's name, partitions and retention in one place.

The local stack, the tests, the Faust agents and the Strimzi `KafkaTopic` manifests all
read this registry, so a topic is renamed or resized here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    value_schema: str | None
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False
    replication_factor: int = 3
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def config(self) -> dict[str, str]:
        """Broker-side topic configuration, the same keys Strimzi's `KafkaTopic` takes."""
        cleanup = "compact,delete" if self.compacted else "delete"
        return {
            "cleanup.policy": cleanup,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": "2",
            **self.extra_config,
        }


MEME_REQUESTS = TopicSpec("meme.requests", partitions=6, value_schema="MemeRequested")
MEME_RENDERED = TopicSpec("meme.rendered", partitions=6, value_schema="MemeRendered")
MEME_VOTES = TopicSpec("meme.votes", partitions=6, value_schema="Vote")
MEME_VIEWS = TopicSpec("meme.views", partitions=6, value_schema="View", retention_ms=3 * DAY_MS)
MEME_DELETED = TopicSpec(
    "meme.deleted",
    partitions=6,
    value_schema="MemeDeleted",
    retention_ms=30 * DAY_MS,
    compacted=True,
)
MEME_FEED = TopicSpec("meme.feed", partitions=3, value_schema="FeedEvent", retention_ms=DAY_MS)

TOPICS: tuple[TopicSpec, ...] = (
    MEME_REQUESTS,
    MEME_RENDERED,
    MEME_VOTES,
    MEME_VIEWS,
    MEME_DELETED,
    MEME_FEED,
)

DLQ_TOPICS: tuple[TopicSpec, ...] = tuple(
    TopicSpec(t.dlq, partitions=1, value_schema=None, retention_ms=30 * DAY_MS) for t in TOPICS
)

ALL_TOPICS: tuple[TopicSpec, ...] = TOPICS + DLQ_TOPICS

BY_NAME: dict[str, TopicSpec] = {t.name: t for t in ALL_TOPICS}


def topic(name: str) -> TopicSpec:
    return BY_NAME[name]
