"""Per-meme and per-vote state, and how it is stored in the Faust table's changelog.

One table, `state`, keyed by bytes with a kind prefix, holding orjson bytes, backed by one
compacted changelog topic partitioned like the source topics:

- `m|<meme>`: the meme's buckets per window, the last source offset applied from each topic
  (a replay after a crash skips what the record already holds, atomically with the counts), its
  newest event time per topic (the partition's watermark is rebuilt from these), net votes, the
  deleted flag and the held flag (deleted until an admin's review decides: see engine.py).
- `v|<meme>|<user>`: the user's current vote, its event time, id and source offset, and the vote
  it replaced at the start of the batch that set it.
- `s|<topic>|<partition>|<offset>`: the event ids of views of one batch, kept for the grace
  period: a view produced twice (same event id, two offsets) counts once.

Why one table: a batch writes its records to one changelog partition in order (voters, then
memes, then seen ids), so a crash keeps a prefix of them. A meme record on disk implies its
voters are; a voter record without its meme record (the crash fell between) is detected when
the same message is replayed (same event id and offset) and its transition is redone from the
replaced vote it carries. Three tables would be three topics, with no order between them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import orjson

Bucket = list[float]  # [sum of weight * 2**((t - start)/H) relative to the bucket start, raw]


@dataclass(slots=True)
class MemeState:
    partition: int
    buckets: list[dict[int, Bucket]]
    offsets: dict[str, int] = field(default_factory=dict)
    last_t: dict[str, float] = field(default_factory=dict)
    net: int = 0
    deleted: bool = False
    #: Out of the sets while flagged for review; unlike a delete, an approval lifts it.
    held: bool = False

    @classmethod
    def new(cls, partition: int, windows: int) -> MemeState:
        return cls(partition, [{} for _ in range(windows)])

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "p": self.partition,
                "b": [[[s, *v] for s, v in b.items()] for b in self.buckets],
                "o": self.offsets,
                "t": self.last_t,
                "n": self.net,
                "d": self.deleted,
                "h": self.held,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> MemeState:
        raw = orjson.loads(data)
        buckets = [{int(s): [rel, n] for s, rel, n in b} for b in raw["b"]]
        # Records written before reviews existed have no "h": a hold was then permanent.
        return cls(raw["p"], buckets, raw["o"], raw["t"], raw["n"], raw["d"], raw.get("h", False))


@dataclass(slots=True)
class VoterState:
    """A user's current vote on a meme, scored at its own event time. The latest vote (event
    time, then event id) wins whatever the arrival order, so the state after a set of votes does
    not depend on how Kafka interleaved them; a repeated vote refreshes the time it scores at.
    `offset` is the source offset that set it; `before` the (value, time) it replaced at the
    start of that batch, i.e. what the meme record holds if only this record survived a crash."""

    value: int
    t: float
    event_id: str
    offset: int
    before: tuple[int, float] = (0, 0.0)

    def encode(self) -> bytes:
        return orjson.dumps([self.value, self.t, self.event_id, self.offset, *self.before])

    @classmethod
    def decode(cls, data: bytes) -> VoterState:
        value, t, event_id, offset, before_value, before_t = orjson.loads(data)
        return cls(value, t, event_id, offset, (before_value, before_t))

    def newer(self, t: float, event_id: str) -> bool:
        """Whether a vote at (t, event_id) replaces this one (ties broken by event id)."""
        return (t, event_id) > (self.t, self.event_id)


MEME = b"m|"
VOTER = b"v|"
SEEN = b"s|"


def meme_key(meme_id: str) -> bytes:
    return MEME + meme_id.encode()


def voter_key(meme_id: str, user_id: str) -> bytes:
    return VOTER + f"{meme_id}|{user_id}".encode()


def voter_meme(key: bytes) -> str:
    return key[len(VOTER) :].split(b"|", 1)[0].decode()


def seen_key(topic: str, partition: int, first_offset: int) -> bytes:
    return SEEN + f"{topic}|{partition}|{first_offset}".encode()


@dataclass(slots=True)
class SeenBatch:
    key: bytes
    partition: int
    max_t: float
    ids: list[str]

    def encode(self) -> bytes:
        return orjson.dumps([self.partition, self.max_t, self.ids])

    @classmethod
    def decode(cls, key: bytes, data: bytes) -> SeenBatch:
        partition, max_t, ids = orjson.loads(data)
        return cls(key, partition, max_t, ids)


class SeenIds:
    """Event ids seen within the grace period, in batches that expire oldest first."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.batches: deque[SeenBatch] = deque()

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.ids

    def add_batch(self, batch: SeenBatch) -> None:
        self.ids.update(batch.ids)
        self.batches.append(batch)

    def expire(self, before: float) -> list[SeenBatch]:
        """Drops the batches whose newest event is older than `before`; returns them."""
        gone = [b for b in self.batches if b.max_t < before]
        if gone:
            self.batches = deque(b for b in self.batches if b.max_t >= before)
            for batch in gone:  # an id is in one batch only: duplicates never get added
                self.ids.difference_update(batch.ids)
        return gone
