"""Full-text search over meme captions (the `memes.search` tsvector, GIN-indexed)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from sinks.postgres.memes import _COLUMNS, MemeRecord


async def search_memes(
    pool: AsyncConnectionPool, query: str, *, limit: int = 20, template_id: str | None = None
) -> list[MemeRecord]:
    """Rendered memes whose captions match, best first then newest.

    Web-search syntax ("quoted phrase", -excluded, or). 'simple' config: captions are any
    language, so words match as written (case-folded), without stemming.
    """
    extra, params = ("AND template_id = %s", [template_id]) if template_id else ("", [])
    async with pool.connection() as conn:
        cursor = await conn.execute(
            f"SELECT {_COLUMNS} FROM memes, websearch_to_tsquery('simple', %s) q"
            f" WHERE search @@ q AND status = 'rendered' {extra}"
            " ORDER BY ts_rank(search, q) DESC, created_at DESC LIMIT %s",
            (query, *params, limit),
        )
        rows = await cursor.fetchall()
    return [MemeRecord.from_row(r) for r in rows]
