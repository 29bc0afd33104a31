"""Exact per-minute counts, recomputed from the deduplicated `events` for every minute a batch
touched: what the API's analytics queries read.

Why not only the uniq-state rollups of schema.sql: merging uniq states re-hashes every event id,
so a day-wide series over 10 M events costs a second; plain numbers per minute cost
milliseconds. Why recompute instead of summing in a materialized view: a view fires on every
insert, duplicates included, while `uniqExact(event_id)` over `events` counts a replayed event
once whether or not the merge has happened yet. Each recomputation writes a new version of the
minute's rows (ReplacingMergeTree on `computed_at`; readers use FINAL), so recomputing is
idempotent and concurrent workers converge.

Two tables: `minute_counts` (minute, event type, template) with a render-latency histogram
(log buckets of 5 %, merged by `sumMap` and read back as percentiles within ~2.5 %), and
`meme_minute_counts` (meme, minute) ordered by meme for one meme's engagement.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.client import Client

LATENCY_BASE = 1.05
_BUCKET_EXPR = f"toUInt16(floor(log(render_ms + 1) / log({LATENCY_BASE})))"

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS minute_counts
(
    minute           DateTime('UTC'),
    event_type       LowCardinality(String),
    template_id      LowCardinality(String),
    events           UInt64,
    upvotes          UInt64,
    downvotes        UInt64,
    latency_buckets  Array(UInt16),
    latency_counts   Array(UInt64),
    computed_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, event_type, template_id)
TTL minute + INTERVAL 400 DAY DELETE""",
    """CREATE TABLE IF NOT EXISTS meme_minute_counts
(
    meme_id      String,
    minute       DateTime('UTC'),
    views        UInt64,
    upvotes      UInt64,
    downvotes    UInt64,
    computed_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (meme_id, minute)
TTL minute + INTERVAL 400 DAY DELETE""",
)

_RECOMPUTE_MINUTES = f"""
INSERT INTO minute_counts
SELECT
    toStartOfMinute(ts) AS minute, event_type, template_id,
    uniqExact(event_id), uniqExactIf(event_id, vote > 0), uniqExactIf(event_id, vote < 0),
    (sumMapIf([{_BUCKET_EXPR}], [toUInt64(1)], event_type = 'rendered') AS hist).1, hist.2,
    now64(3)
FROM (SELECT * FROM events FINAL
      WHERE ts >= {{start:DateTime64(3)}} AND ts < {{end:DateTime64(3)}})
GROUP BY minute, event_type, template_id
"""

_RECOMPUTE_MEMES = """
INSERT INTO meme_minute_counts
SELECT
    meme_id, toStartOfMinute(ts) AS minute,
    uniqExactIf(event_id, event_type = 'view'),
    uniqExactIf(event_id, event_type = 'vote' AND vote > 0),
    uniqExactIf(event_id, event_type = 'vote' AND vote < 0),
    now64(3)
FROM events
WHERE event_type IN ('view', 'vote')
  AND ts >= {start:DateTime64(3)} AND ts < {end:DateTime64(3)}
GROUP BY meme_id, minute
"""


def ensure_tables(client: Client) -> None:
    for statement in DDL:
        client.command(statement)


def minute_of(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(second=0, microsecond=0)


def ranges(minutes: Iterable[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous [start, end) ranges covering the given minutes."""
    out: list[tuple[datetime, datetime]] = []
    for minute in sorted(set(minutes)):
        end = minute + timedelta(minutes=1)
        if out and out[-1][1] == minute:
            out[-1] = (out[-1][0], end)
        else:
            out.append((minute, end))
    return out


def recompute(client: Client, minutes: Iterable[datetime]) -> int:
    """Recomputes the counts of these minutes; returns how many ranges were written."""
    spans = ranges(minutes)
    for start, end in spans:
        params = {"start": start, "end": end}
        client.command(_RECOMPUTE_MINUTES, parameters=params)
        client.command(_RECOMPUTE_MEMES, parameters=params)
    return len(spans)


def percentiles(
    buckets: list[int], counts: list[int], levels: tuple[float, ...] = (0.5, 0.95, 0.99)
) -> list[float | None]:
    """Percentiles (ms) of a merged latency histogram: the bucket's geometric middle."""
    total = sum(counts)
    if total == 0:
        return [None for _ in levels]
    pairs = sorted(zip(buckets, counts, strict=True))
    out: list[float | None] = []
    for level in levels:
        rank, seen = level * total, 0
        for bucket, count in pairs:
            seen += count
            if seen >= rank:
                out.append(round(LATENCY_BASE ** (bucket + 0.5) - 1, 1))
                break
    return out


def bucket_of(render_ms: float) -> int:
    """The histogram bucket of a latency, as the SQL computes it (for tests)."""
    return math.floor(math.log(render_ms + 1) / math.log(LATENCY_BASE))
