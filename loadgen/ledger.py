"""What the platform accepted during a replay, and whether it kept all of it.

A 202 or a 200 is a promise: an accepted generation must end as a meme row in a final status,
and an accepted vote must be in PostgreSQL (the truth of votes). The replayer notes every
accepted generation (the meme ids of 202 answers, single or batch) and vote (meme id, trace
user, value) in a `Ledger`; after the replay `check` waits, bounded, for the platform to drain
(until every meme is final, or nothing has changed for `settle_s`, or `wait_s` passed) and then
compares with PostgreSQL and Kafka:

- `lost`: accepted memes with no row or still `pending`, plus accepted votes whose
  (meme, user) row holds none of the values the user sent on that meme (0 means no row). Sent,
  not only answered: the API commits a vote before it answers, so a later vote whose answer
  never came (a 503 from Kafka, a client timeout) may rightly be the one PostgreSQL holds;
- `duplicated_effects`: meme ids with more than one row (the partition key is derived from
  the id, so two rows mean two writers disagreed), memes with more than one distinct
  `MemeRendered` event id (two renders that consumers cannot tell apart as one), and
  `meme.votes` events beyond the votes sent on a meme (a vote produced twice; counted against
  the accepted ones when the sent ones are not known). Rows in `votes` cannot duplicate:
  (meme, user) is its key.
- `rendered_redelivered`: extra copies of a `MemeRendered` event id (a SIGKILLed render worker's
  in-flight requests are redelivered and rendered again: at-least-once delivery). Not an effect:
  the event id derives from the request's, the row is an upsert and analytics dedupes by id.

Trace users vote through key-only accounts named `loadgen-<trace user>` (loadgen/accounts.py),
which is how a vote row is tied back to the trace.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from confluent_kafka import Consumer, TopicPartition

from domain.ids import id_time
from domain.settings import Settings
from loadgen.accounts import USERNAME_PREFIX
from producers.kafka_security import librdkafka_security
from producers.serialization import AvroCodec, SerializationError
from producers.topics import MEME_RENDERED, MEME_VOTES

#: Meme ids per query (one round trip each).
_CHUNK = 5000


@dataclass(slots=True)
class Ledger:
    """Accepted generations and votes of one replay, and when it started."""

    started_at: datetime
    memes: list[str] = field(default_factory=list)
    votes: list[tuple[str, str, int]] = field(default_factory=list)  # (meme, trace user, value)
    #: Every vote sent, answered or not (same shape); empty: only the accepted ones are known.
    sent_votes: list[tuple[str, str, int]] = field(default_factory=list)

    def expected_votes(self) -> dict[tuple[str, str], set[int]]:
        """Per (meme, user) with an accepted vote: the values sent (answered or not); any of
        them may be the last one PostgreSQL committed."""
        out: dict[tuple[str, str], set[int]] = defaultdict(set)
        for meme_id, user, value in self.votes:
            out[meme_id, user].add(value)
        for meme_id, user, value in self.sent_votes:
            if (meme_id, user) in out:
                out[meme_id, user].add(value)
        return out


@dataclass(frozen=True, slots=True)
class MemeRow:
    meme_id: str
    status: str
    created_at: datetime
    rendered_at: datetime | None
    rows: int


@dataclass(slots=True)
class LedgerCheck:
    accepted_memes: int
    accepted_votes: int
    lost_memes: list[str]
    lost_votes: list[tuple[str, str]]
    duplicated_rows: int
    rendered_twice: int
    vote_events_excess: int
    drained_in_s: float
    drained: bool
    statuses: dict[str, int]
    memes: list[MemeRow] = field(default_factory=list)
    #: Extra copies of a MemeRendered event id: redeliveries consumers absorb, not effects.
    rendered_redelivered: int = 0

    @property
    def lost(self) -> int:
        return len(self.lost_memes) + len(self.lost_votes)

    @property
    def duplicated_effects(self) -> int:
        return self.duplicated_rows + self.rendered_twice + self.vote_events_excess

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted_memes": self.accepted_memes,
            "accepted_votes": self.accepted_votes,
            "lost": self.lost,
            "lost_memes": len(self.lost_memes),
            # Of those: still pending when the drain ended (a backlog, when not `drained`)
            # and without any row at all.
            "lost_memes_pending": self.statuses.get("pending", 0),
            "lost_memes_no_row": self.accepted_memes - len(self.memes),
            "lost_votes": len(self.lost_votes),
            "lost_meme_samples": self.lost_memes[:10],
            "lost_vote_samples": [list(v) for v in self.lost_votes[:10]],
            "duplicated_effects": self.duplicated_effects,
            "duplicated_rows": self.duplicated_rows,
            "rendered_twice": self.rendered_twice,
            "rendered_redelivered": self.rendered_redelivered,
            "vote_events_excess": self.vote_events_excess,
            "drained": self.drained,
            "drained_in_s": round(self.drained_in_s, 1),
            "statuses": self.statuses,
        }


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def meme_rows(conn: psycopg.Connection[Any], ids: list[str]) -> dict[str, MemeRow]:
    """The ledger's memes as PostgreSQL holds them (each looked up in its own partition)."""
    out: dict[str, MemeRow] = {}
    for chunk in _chunks(ids):
        # Joined on the id alone (one index probe per partition) so that a second row of the
        # same id under another created_at counts; the figures come from the id's own row.
        rows = conn.execute(
            "SELECT m.id::text, max(m.status) FILTER (WHERE m.created_at = k.created_at),"
            " min(m.created_at) FILTER (WHERE m.created_at = k.created_at),"
            " max(m.rendered_at) FILTER (WHERE m.created_at = k.created_at), count(*)"
            " FROM unnest(%s::uuid[], %s::timestamptz[]) AS k(id, created_at)"
            " JOIN memes m ON m.id = k.id GROUP BY m.id",
            (chunk, [id_time(i) for i in chunk]),
        ).fetchall()
        for meme_id, status, created_at, rendered_at, n in rows:
            if status is None:  # only rows under another created_at: not the meme's own row
                status, created_at = "pending", id_time(meme_id)
            out[meme_id] = MemeRow(meme_id, status, created_at, rendered_at, n)
    return out


def vote_rows(conn: psycopg.Connection[Any], meme_ids: list[str]) -> dict[tuple[str, str], int]:
    """(meme, trace user) -> value of the trace users' votes on these memes."""
    out: dict[tuple[str, str], int] = {}
    for chunk in _chunks(meme_ids):
        rows = conn.execute(
            "SELECT v.meme_id::text, u.username, v.value FROM votes v"
            " JOIN users u ON u.id = v.user_id"
            " WHERE v.meme_id = ANY(%s::uuid[]) AND u.username LIKE %s",
            (chunk, f"{USERNAME_PREFIX}%"),
        ).fetchall()
        for meme_id, username, value in rows:
            out[meme_id, username.removeprefix(USERNAME_PREFIX)] = int(value)
    return out


def count_keys(settings: Settings, topic: str, since: datetime, keys: set[str]) -> Counter[str]:
    """Messages per key (of `keys`) in `topic` from `since` to its end now."""
    return Counter(
        {key: len(values) for key, values in read_values(settings, topic, since, keys).items()}
    )


def event_ids(
    settings: Settings, topic: str, since: datetime, keys: set[str]
) -> dict[str, Counter[str]]:
    """Per key (of `keys`): how many messages carried each event id (an undecodable value
    counts under its own bytes, so it is never mistaken for a copy of another)."""
    codec = AvroCodec.from_settings(settings)
    out: dict[str, Counter[str]] = {}
    for key, values in read_values(settings, topic, since, keys).items():
        ids: Counter[str] = Counter()
        for value in values:
            try:
                ids[codec.decode(value).event_id] += 1
            except SerializationError:
                ids[f"undecodable:{value!r}"] += 1
        out[key] = ids
    return out


def read_values(
    settings: Settings, topic: str, since: datetime, keys: set[str]
) -> dict[str, list[bytes]]:
    """The values of the messages keyed by one of `keys` in `topic`, from `since` to its end now."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"loadgen-ledger-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            **librdkafka_security(settings),
        }
    )
    found: dict[str, list[bytes]] = defaultdict(list)
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ms = int(since.timestamp() * 1000)
        wanted = [TopicPartition(topic, p, ms) for p in meta.partitions]
        starts = consumer.offsets_for_times(wanted, timeout=10)
        live = []
        for tp in starts:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            if tp.offset >= 0 and tp.offset < high:
                live.append((TopicPartition(topic, tp.partition, tp.offset), high))
        if not live:
            return {}
        consumer.assign([tp for tp, _ in live])
        ends = {tp.partition: high for tp, high in live}
        done: set[int] = set()
        deadline = time.monotonic() + 120
        while len(done) < len(ends) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1.0):
                if msg.error() is not None:
                    if msg.error().code() == -191:  # _PARTITION_EOF
                        done.add(msg.partition())
                    continue
                key = (msg.key() or b"").decode()
                if key in keys:
                    found[key].append(msg.value() or b"")
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
    finally:
        consumer.close()
    return dict(found)


def _pending(rows: dict[str, MemeRow], ids: list[str]) -> int:
    return sum(1 for i in ids if i not in rows or rows[i].status == "pending")


def drain(
    settings: Settings, ids: list[str], *, wait_s: float = 120.0, settle_s: float = 15.0
) -> tuple[dict[str, MemeRow], float, bool]:
    """Polls the memes until none is pending, nothing changed for `settle_s`, or `wait_s`."""
    start = time.monotonic()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = meme_rows(conn, ids)
        pending, changed = _pending(rows, ids), time.monotonic()
        while pending and time.monotonic() - start < wait_s:
            if time.monotonic() - changed > settle_s:
                break
            time.sleep(1.0)
            rows = meme_rows(conn, ids)
            now_pending = _pending(rows, ids)
            if now_pending != pending:
                pending, changed = now_pending, time.monotonic()
    return rows, time.monotonic() - start, pending == 0


def check_sync(
    settings: Settings,
    ledger: Ledger,
    *,
    wait_s: float = 120.0,
    settle_s: float = 15.0,
    rendered_topic: str = MEME_RENDERED.name,
    votes_topic: str = MEME_VOTES.name,
) -> LedgerCheck:
    """Waits for the drain, then compares the ledger with PostgreSQL and Kafka (the topics
    are parameters so a test can count on topics of its own)."""
    ids = list(dict.fromkeys(ledger.memes))
    rows, waited, drained = drain(settings, ids, wait_s=wait_s, settle_s=settle_s)
    lost_memes = [i for i in ids if i not in rows or rows[i].status == "pending"]
    expected = ledger.expected_votes()
    voted_memes = sorted({m for m, _ in expected})
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        stored = vote_rows(conn, voted_memes)
    lost_votes = [k for k, values in expected.items() if stored.get(k, 0) not in values]
    since = ledger.started_at
    rendered = event_ids(settings, rendered_topic, since, set(ids)) if ids else {}
    vote_events = (
        count_keys(settings, votes_topic, since, set(voted_memes)) if voted_memes else Counter()
    )
    sent_per_meme = Counter(m for m, _, _ in ledger.sent_votes or ledger.votes)
    return LedgerCheck(
        accepted_memes=len(ids),
        accepted_votes=len(ledger.votes),
        lost_memes=lost_memes,
        lost_votes=lost_votes,
        duplicated_rows=sum(1 for r in rows.values() if r.rows > 1),
        rendered_twice=sum(1 for per_id in rendered.values() if len(per_id) > 1),
        rendered_redelivered=sum(n - 1 for per_id in rendered.values() for n in per_id.values()),
        vote_events_excess=sum(max(0, n - sent_per_meme.get(m, 0)) for m, n in vote_events.items()),
        drained_in_s=waited,
        drained=drained,
        statuses=dict(Counter(r.status for r in rows.values())),
        memes=list(rows.values()),
    )


async def check(settings: Settings, ledger: Ledger, **options: Any) -> LedgerCheck:
    """`check_sync` off the event loop (same keyword options)."""
    return await asyncio.to_thread(check_sync, settings, ledger, **options)
