"""Every service's Kafka contract, declared once: the topics its consumer group reads, the topics
its code writes, and which code runs in it.

Each worker role is a separately scalable Deployment with its own consumer group
(`<CONSUMER_GROUP_PREFIX>-<role>`) and KafkaUser. Everything that needs these facts reads them
here, never a copy:

- streams/app.py and streams/__main__.py: one Faust app per role in ROLES, reading `topics`;
- the worker's web port is WORKER_WEB_PORT + the role's index in WORKER_ROLES (`web_port`): the
  worker serves `/metrics` there, and the API finds the analytics worker by it
  (api/analytics_reader.py);
- deploy/generate.py: each KafkaUser's ACLs (Read on `topics`, Write on `outputs`) and each
  KEDA ScaledObject (a lag trigger per topic of `topics`, for `group_id`);
- tests/test_roles.py scans every producer call site in the code against `writes`, so the
  declaration can neither miss a topic a service produces (Kafka would refuse it in production)
  nor grant one nobody writes; `packages` says which code runs in the service, and a call site
  in a module no service claims fails that test too.

It lives in producers/ because both sides need it: the API (which must not import streams/)
and the workers. The `inference` role (streams/inference.py) consumes no topic: it answers the
API over NATS request-reply, so it is in WORKER_ROLES but not in ROLES (no consumer group, no
KafkaUser). The API is a service too (API below): it writes generation requests, votes, views
and deletions, plus `meme.rendered` and `meme.feed` for an admin's review decision
(api/routes/review.py), and every replica reads `meme.feed` to relay it. Each worker role also
dead-letters what it cannot process to `<topic>.dlq` of the topics it reads (streams/dlq.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from producers.topics import (
    BY_NAME,
    MEME_DELETED,
    MEME_FEED,
    MEME_RENDERED,
    MEME_REQUESTS,
    MEME_VIEWS,
    MEME_VOTES,
)


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    #: What its consumer group reads (KEDA scales the role on the lag of exactly these).
    topics: tuple[str, ...]
    #: What its code produces, besides dead letters: a decision, so it has no default.
    writes: tuple[str, ...]
    #: Dotted module prefixes whose producer calls run in this service.
    packages: tuple[str, ...]
    #: Writes the DLQ of every topic it consumes (the Faust roles, through streams/dlq.py).
    dead_letters: bool = False

    @property
    def group_id(self) -> str:
        """The deployed group id (KEDA and the KafkaUser ACLs name it)."""
        return self.group_id_for("memestream")

    def group_id_for(self, prefix: str) -> str:
        return f"{prefix}-{self.name}"

    @property
    def outputs(self) -> tuple[str, ...]:
        """Every topic it may write: `writes`, then the DLQs of what it reads."""
        dlqs = tuple(BY_NAME[t].dlq for t in self.topics) if self.dead_letters else ()
        return tuple(dict.fromkeys((*self.writes, *dlqs)))


RENDER = Role(
    "render",
    (MEME_REQUESTS.name,),
    (MEME_RENDERED.name, MEME_FEED.name),
    ("streams.render", "streams.moderation"),
    dead_letters=True,
)
TRENDING = Role(
    "trending",
    (MEME_VOTES.name, MEME_VIEWS.name, MEME_RENDERED.name, MEME_DELETED.name),
    (MEME_FEED.name,),
    ("streams.trending",),
    dead_letters=True,
)
ANALYTICS = Role(
    "analytics",
    (MEME_REQUESTS.name, MEME_RENDERED.name, MEME_VOTES.name, MEME_VIEWS.name, MEME_DELETED.name),
    (),
    ("streams.analytics",),
    dead_letters=True,
)

ROLES: dict[str, Role] = {r.name: r for r in (RENDER, TRENDING, ANALYTICS)}

#: AI for API requests over NATS request-reply (streams/inference.py): no topics, no group.
INFERENCE = "inference"
#: Every role a worker process runs, in web-port order: a worker serves `/metrics` on
#: WORKER_WEB_PORT + its index here (the Kafka roles first, so their ports stay as they were).
WORKER_ROLES: tuple[str, ...] = (*ROLES, INFERENCE)


def web_port(base_port: int, role: str) -> int:
    """The web port of `role`'s worker, given WORKER_WEB_PORT."""
    return base_port + WORKER_ROLES.index(role)


#: The API: each replica relays the whole feed, so each has its own group under `group_id`.
API = Role(
    "api",
    (MEME_FEED.name,),
    (
        MEME_REQUESTS.name,
        MEME_VOTES.name,
        MEME_VIEWS.name,
        MEME_DELETED.name,
        MEME_RENDERED.name,
        MEME_FEED.name,
    ),
    ("api",),
)

#: Every service that produces, by name.
WRITERS: dict[str, Role] = {r.name: r for r in (API, *ROLES.values())}
#: The shared dead-letter writer (streams/dlq.py): runs in whichever role calls it.
DEAD_LETTER_MODULE = "streams.dlq"


def writer_of(module: str) -> Role | None:
    """The service a module's code runs in, by the longest matching package prefix."""
    best: tuple[int, Role] | None = None
    for writer in WRITERS.values():
        for package in writer.packages:
            if (module == package or module.startswith(package + ".")) and (
                best is None or len(package) > best[0]
            ):
                best = (len(package), writer)
    return best[1] if best else None
