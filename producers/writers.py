"""Which Kafka topics each deployed service writes: the one declaration its ACLs come from.

deploy/generate.py turns it into each KafkaUser's Write ACLs (deploy/strimzi/users.yaml), and
tests/test_writers.py scans the code (every `producer.send/produce/send_raw` call site) so the
declaration can neither miss a topic a service produces (Kafka would refuse it in production)
nor grant one nobody writes. `packages` says which code runs in the service: a call site in
a module no service claims fails that test too.

The API writes `meme.rendered` and `meme.feed` for an admin's review decision
(api/routes/review.py), besides generation requests, votes (REST and WebSocket), views and
deletions. Each worker role also dead-letters what it cannot process to `<topic>.dlq` of the
topics it reads (streams/dlq.py), so `dead_letters` grants those. Names are strings (the roles
are in streams/roles.py, which producers/ must not import).
"""

from __future__ import annotations

from dataclasses import dataclass

from producers.topics import (
    MEME_DELETED,
    MEME_FEED,
    MEME_RENDERED,
    MEME_REQUESTS,
    MEME_VIEWS,
    MEME_VOTES,
)


@dataclass(frozen=True, slots=True)
class Writer:
    service: str
    #: Dotted module prefixes whose producer calls run in this service.
    packages: tuple[str, ...]
    topics: tuple[str, ...]
    #: Writes the DLQ of every topic it consumes (the Faust roles, through streams/dlq.py).
    dead_letters: bool = False


WRITERS: dict[str, Writer] = {
    w.service: w
    for w in (
        Writer(
            "api",
            ("api",),
            (
                MEME_REQUESTS.name,
                MEME_VOTES.name,
                MEME_VIEWS.name,
                MEME_DELETED.name,
                MEME_RENDERED.name,
                MEME_FEED.name,
            ),
        ),
        Writer(
            "render",
            ("streams.render", "streams.moderation"),
            (MEME_RENDERED.name, MEME_FEED.name),
            dead_letters=True,
        ),
        Writer("trending", ("streams.trending",), (MEME_FEED.name,), dead_letters=True),
        Writer("analytics", ("streams.analytics",), (), dead_letters=True),
    )
}
#: The shared dead-letter writer (streams/dlq.py): runs in whichever role calls it.
DEAD_LETTER_MODULE = "streams.dlq"


def writer_of(module: str) -> Writer | None:
    """The service a module's code runs in, by the longest matching package prefix."""
    best: tuple[int, Writer] | None = None
    for writer in WRITERS.values():
        for package in writer.packages:
            if (module == package or module.startswith(package + ".")) and (
                best is None or len(package) > best[0]
            ):
                best = (len(package), writer)
    return best[1] if best else None
