"""The analytics queries the API serves, read from the per-minute rollups (not raw events).

Why rollups: a rollup row covers a minute, so a day of traffic is at most 1,440 rows per series
whatever the event volume; the 10-million-event benchmark stays under 100 ms. Every query returns
JSON-ready dicts, so the analytics worker's web route and the API (against a server) answer the
same shape. Parameters are bound by clickhouse-connect, never formatted into the SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.client import Client

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
    return value.isoformat() if isinstance(value, datetime) else value


def _rows(client: Client, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=params)
    names = result.column_names
    return [{n: _iso(v) for n, v in zip(names, row, strict=True)} for row in result.result_rows]


def generation_rate(client: Client, window: Window) -> list[dict[str, Any]]:
    """Requested, rendered and failed memes per bucket."""
    return _rows(
        client,
        f"SELECT {_BUCKET},"
        " uniqMergeIf(events, event_type = 'requested') AS requested,"
        " uniqMergeIf(events, event_type = 'rendered') AS rendered,"
        " uniqMergeIf(events, event_type = 'failed') AS failed"
        f" FROM events_per_minute WHERE {_SINCE}"
        " AND event_type IN ('requested', 'rendered', 'failed')"
        " GROUP BY bucket ORDER BY bucket",
        window.params,
    )


def engagement(
    client: Client, window: Window, meme_id: str | None = None
) -> list[dict[str, Any]]:
    """Views, up- and down-votes per bucket, of every meme or of one."""
    params: dict[str, Any] = window.params
    only = ""
    if meme_id:
        only = " AND meme_id = {meme_id:String}"
        params = {**params, "meme_id": meme_id}
    return _rows(
        client,
        f"SELECT {_BUCKET}, uniqMerge(views) AS views, uniqMerge(upvotes) AS upvotes,"
        " uniqMerge(downvotes) AS downvotes"
        f" FROM engagement_per_minute WHERE {_SINCE}{only}"
        " GROUP BY bucket ORDER BY bucket",
        params,
    )


def top_templates(client: Client, window: Window, limit: int = 10) -> list[dict[str, Any]]:
    """Templates by memes rendered in the window."""
    return _rows(
        client,
        "SELECT template_id, uniqMerge(events) AS memes"
        f" FROM events_per_minute WHERE {_SINCE} AND event_type = 'rendered'"
        " AND template_id != '' GROUP BY template_id ORDER BY memes DESC, template_id"
        " LIMIT {limit:UInt32}",
        {**window.params, "limit": limit},
    )


def render_latency(client: Client, window: Window) -> list[dict[str, Any]]:
    """Render time percentiles (ms) per bucket (t-digest, a few % error)."""
    rows = _rows(
        client,
        f"SELECT {_BUCKET},"
        " quantilesTDigestMerge(0.5, 0.95, 0.99)(render_ms) AS q,"
        " uniqMerge(events) AS renders"
        f" FROM events_per_minute WHERE {_SINCE} AND event_type = 'rendered'"
        " GROUP BY bucket ORDER BY bucket",
        window.params,
    )
    return [
        {"bucket": r["bucket"], "renders": r["renders"], "p50_ms": r["q"][0],
         "p95_ms": r["q"][1], "p99_ms": r["q"][2]}
        for r in rows
    ]


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
