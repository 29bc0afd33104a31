"""Trending from PostgreSQL's `trending_daily` view: the last resort when Redis is down or empty.

The view holds net votes per meme and day (refreshed periodically), so a window maps to whole
days (`Window.days` of domain/trending_windows.py before today: 1h and 24h read today and
yesterday, 7d the last eight days); the ranking is net votes, ties by meme id (descending, as a
Redis ZREVRANGE orders them, so a rewarmed set pages alike).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.trending_windows import WINDOWS


def first_day(window: str, today: date | None = None) -> date:
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=WINDOWS.get(window).days)


async def top_memes(
    pool: AsyncConnectionPool, window: str, offset: int, limit: int
) -> list[tuple[str, float]]:
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            "SELECT meme_id::text AS meme_id, sum(score) AS score, sum(votes) AS votes"
            " FROM trending_daily WHERE day >= %s GROUP BY meme_id"
            " ORDER BY score DESC, meme_id DESC OFFSET %s LIMIT %s",
            (first_day(window), offset, limit),
        )
        rows = await cursor.fetchall()
    return [(r["meme_id"], float(r["score"])) for r in rows]


async def public_memes(pool: AsyncConnectionPool, meme_ids: Sequence[str]) -> set[str]:
    """Which of these memes may trend: rendered, not deleted, not held back by moderation.

    ClickHouse's ranking counts engagement only; this filters it like the view above is.
    """
    wanted = []
    for meme_id in meme_ids:
        try:
            wanted.append(uuid.UUID(meme_id))
        except ValueError:
            continue
    if not wanted:
        return set()
    async with pool.connection() as conn:
        cursor = conn.cursor(row_factory=dict_row)
        await cursor.execute(
            "SELECT id::text AS id FROM memes WHERE id = ANY(%s) AND status = 'rendered'",
            (wanted,),
        )
        rows = await cursor.fetchall()
    return {row["id"] for row in rows}
