"""Worker roles: which topics each consumer group reads.

Each role is a separately scalable Deployment (KEDA scales it on the lag of exactly
these topics), so the group id and topics here are the contract with `deploy/strimzi/`.
"""

from __future__ import annotations

from dataclasses import dataclass

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
