"""The analytics queries the API serves, read from the exact per-minute counts.

Why `sinks.clickhouse.finalize`'s tables and not the raw events: a minute is one row per event
type and template whatever the event volume, so a day-wide series over 10 million events stays
far under 100 ms; the counts are exact and replay-safe (recomputed from `events` by event id).
Every query returns JSON-ready dicts, so the analytics worker's web route and the API (against
a server) answer the same shape. Parameters are bound by clickhouse-connect, never formatted
into the SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.finalize import percentiles

MAX_WINDOW_MINUTES = 60 * 24 * 31


@dataclass(frozen=True, slots=True)
class Window:
    """The last `minutes` minutes, in buckets of `step_minutes`."""

    minutes: int = 60
    step_minutes: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.minutes <= MAX_WINDOW_MINUTES:
            raise ValueError(f"minutes must be 1..{MAX_WINDOW_MINUTES}")
        if not 1 <= self.step_minutes <= self.minutes:
            raise ValueError("step_minutes must be 1..minutes")

    @property
    def params(self) -> dict[str, int]:
        return {"minutes": self.minutes, "step": self.step_minutes}


_BUCKET = "toStartOfInterval(minute, toIntervalMinute({step:UInt32})) AS bucket"
_SINCE = "minute >= toStartOfMinute(now() - toIntervalMinute({minutes:UInt32}))"


def _iso(value: Any) -> Any:
    """ISO 8601 with its offset: clickhouse-connect returns `DateTime('UTC')` values naive,
    and a naive time is local time to a browser's `Date.parse`."""
    if not isinstance(value, datetime):
        return value
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _rows(client: Client, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=params)
    names = result.column_names
    return [{n: _iso(v) for n, v in zip(names, row, strict=True)} for row in result.result_rows]


def generation_rate(client: Client, window: Window) -> list[dict[str, Any]]:
    """Requested, rendered and failed memes per bucket."""
    return _rows(
        client,
        f"SELECT {_BUCKET},"
        " sumIf(events, event_type = 'requested') AS requested,"
        " sumIf(events, event_type = 'rendered') AS rendered,"
        " sumIf(events, event_type = 'failed') AS failed"
        f" FROM minute_counts FINAL WHERE {_SINCE}"
        " AND event_type IN ('requested', 'rendered', 'failed')"
        " GROUP BY bucket ORDER BY bucket",
        window.params,
    )


def engagement(client: Client, window: Window, meme_id: str | None = None) -> list[dict[str, Any]]:
    """Views, up- and down-votes per bucket, of every meme or of one."""
    if meme_id:
        return _rows(
            client,
            f"SELECT {_BUCKET}, sum(views) AS views, sum(upvotes) AS upvotes,"
            " sum(downvotes) AS downvotes"
            f" FROM meme_minute_counts FINAL WHERE meme_id = {{meme_id:String}} AND {_SINCE}"
            " GROUP BY bucket ORDER BY bucket",
            {**window.params, "meme_id": meme_id},
        )
    return _rows(
        client,
        f"SELECT {_BUCKET}, sumIf(events, event_type = 'view') AS views,"
        " sum(upvotes) AS upvotes, sum(downvotes) AS downvotes"
        f" FROM minute_counts FINAL WHERE {_SINCE} AND event_type IN ('view', 'vote')"
        " GROUP BY bucket ORDER BY bucket",
        window.params,
    )


def top_templates(client: Client, window: Window, limit: int = 10) -> list[dict[str, Any]]:
    """Templates by memes rendered in the window."""
    return _rows(
        client,
        "SELECT template_id, sum(events) AS memes"
        f" FROM minute_counts FINAL WHERE {_SINCE} AND event_type = 'rendered'"
        " AND template_id != '' GROUP BY template_id ORDER BY memes DESC, template_id"
        " LIMIT {limit:UInt32}",
        {**window.params, "limit": limit},
    )


def render_latency(client: Client, window: Window) -> list[dict[str, Any]]:
    """Render time percentiles (ms) per bucket, from 5 %-wide histogram buckets."""
    rows = _rows(
        client,
        f"SELECT {_BUCKET}, sum(events) AS renders,"
        " sumMap(latency_buckets, latency_counts) AS histogram"
        f" FROM minute_counts FINAL WHERE {_SINCE} AND event_type = 'rendered'"
        " GROUP BY bucket ORDER BY bucket",
        window.params,
    )
    out = []
    for r in rows:
        keys, counts = r["histogram"]
        p50, p95, p99 = percentiles(list(keys), list(counts))
        out.append(
            {
                "bucket": r["bucket"],
                "renders": r["renders"],
                "p50_ms": p50,
                "p95_ms": p95,
                "p99_ms": p99,
            }
        )
    return out


def top_memes(client: Client, window: Window, limit: int = 100) -> list[dict[str, Any]]:
    """Memes by net votes plus a tenth of their views in the window (trending's fallback)."""
    return _rows(
        client,
        "SELECT meme_id, uniqMerge(upvotes) AS up, uniqMerge(downvotes) AS down,"
        " uniqMerge(views) AS views, toFloat64(up) - toFloat64(down) + views / 10 AS score"
        f" FROM engagement_per_minute WHERE {_SINCE}"
        " GROUP BY meme_id ORDER BY score DESC, meme_id DESC LIMIT {limit:UInt32}",
        {**window.params, "limit": limit},
    )


QUERIES: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "generation-rate": generation_rate,
    "engagement": engagement,
    "top-templates": top_templates,
    "render-latency": render_latency,
    "top-memes": top_memes,
}


def run(client: Client, name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Runs a query by name with `minutes`, `step_minutes` and its own arguments."""
    query = QUERIES[name]
    window = Window(int(args.get("minutes", 60)), int(args.get("step_minutes", 1)))
    extra: dict[str, Any] = {}
    if name == "engagement" and args.get("meme_id"):
        extra["meme_id"] = str(args["meme_id"])
    if name == "top-templates":
        extra["limit"] = max(1, min(int(args.get("limit", 10)), 100))
    if name == "top-memes":
        extra["limit"] = max(1, min(int(args.get("limit", 100)), 1000))
    return query(client, window, **extra)
