"""Worker roles: which topics each consumer group reads, and the roles that read none.

Each role is a separately scalable Deployment (KEDA scales the Kafka roles on the lag of exactly
these topics), so the group id and topics here are the contract with `deploy/strimzi/`. The
`inference` role (streams/inference.py) consumes no topic: it answers the API over NATS
request-reply, so it is in WORKER_ROLES but not in ROLES (no consumer group, no KafkaUser).
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.settings import Settings
from producers.topics import MEME_DELETED, MEME_RENDERED, MEME_REQUESTS, MEME_VIEWS, MEME_VOTES


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    topics: tuple[str, ...]

    @property
    def group_id(self) -> str:
        """The deployed group id (KEDA and the KafkaUser ACLs name it)."""
        return self.group_id_for("memestream")

    def group_id_for(self, prefix: str) -> str:
        return f"{prefix}-{self.name}"


RENDER = Role("render", (MEME_REQUESTS.name,))
TRENDING = Role(
    "trending", (MEME_VOTES.name, MEME_VIEWS.name, MEME_RENDERED.name, MEME_DELETED.name)
)
ANALYTICS = Role(
    "analytics",
    (MEME_REQUESTS.name, MEME_RENDERED.name, MEME_VOTES.name, MEME_VIEWS.name, MEME_DELETED.name),
)

ROLES: dict[str, Role] = {r.name: r for r in (RENDER, TRENDING, ANALYTICS)}

#: AI for API requests over NATS request-reply (streams/inference.py): no topics, no group.
INFERENCE = "inference"
#: Every role a worker process runs, in web-port order: a worker serves `/metrics` on
#: WORKER_WEB_PORT + its index here (the Kafka roles first, so their ports stay as they were).
WORKER_ROLES: tuple[str, ...] = (*ROLES, INFERENCE)


def web_port(settings: Settings, role: str) -> int:
    return settings.worker_web_port + WORKER_ROLES.index(role)
