"""Meme writes beyond the render path: bulk pending rows (COPY), soft deletes, owner listings.

Why COPY for batches: `POST /api/meme/batch` writes up to 100 rows per request, and COPY into a
staging table then one `INSERT ... ON CONFLICT DO NOTHING` keeps it one round trip and idempotent
(a row the worker already wrote is left alone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from psycopg_pool import AsyncConnectionPool

from domain.events import MemeRequested
from domain.ids import id_time
from sinks.postgres.memes import _COLUMNS, MemeRecord
from sinks.postgres.outbox import Staging, nothing, stage


async def add_pending_many(pool: AsyncConnectionPool, requests: Sequence[MemeRequested]) -> None:
    if not requests:
        return
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "CREATE TEMP TABLE pending_memes (id uuid, created_at timestamptz,"
            " template_id text, texts text[], owner_id text, format text) ON COMMIT DROP"
        )
        async with conn.cursor().copy(
            "COPY pending_memes (id, created_at, template_id, texts, owner_id, format) FROM STDIN"
        ) as copy:
            for r in requests:
                await copy.write_row(
                    (r.meme_id, id_time(r.meme_id), r.template_id, r.texts, r.user_id, r.format)
                )
        await conn.execute(
            "INSERT INTO memes (id, created_at, template_id, texts, status, owner_id, format)"
            " SELECT id, created_at, template_id, texts, 'pending', owner_id, format"
            " FROM pending_memes ON CONFLICT (id, created_at) DO NOTHING"
        )


async def soft_delete(
    pool: AsyncConnectionPool, meme_id: str, events: Staging[MemeRecord] = nothing
) -> MemeRecord | None:
    """Marks the meme deleted (idempotent); returns the row as it was, or None if unknown.
    `events(row)` is staged in the outbox in the delete's transaction (the tombstone)."""
    created_at = id_time(meme_id)
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            f"SELECT {_COLUMNS} FROM memes WHERE id = %s AND created_at = %s FOR UPDATE",
            (meme_id, created_at),
        )
        row = await cursor.fetchone()
        if row is None:
            return None
        await conn.execute(
            "UPDATE memes SET status = 'deleted', deleted_at = coalesce(deleted_at, now()),"
            " updated_at = now() WHERE id = %s AND created_at = %s",
            (meme_id, created_at),
        )
        record = MemeRecord.from_row(row)
        await stage(conn, events(record))
    return record


async def owned_memes(
    pool: AsyncConnectionPool, owner_id: str, *, limit: int = 10_000, batch: int = 500
) -> AsyncIterator[MemeRecord]:
    """A user's rendered memes, newest first (at most `limit`), via a server-side cursor."""
    async with pool.connection() as conn, conn.transaction():
        cursor = conn.cursor(name="owned_memes")
        await cursor.execute(
            f"SELECT {_COLUMNS} FROM memes WHERE owner_id = %s AND status = 'rendered'"
            " ORDER BY created_at DESC LIMIT %s",
            (owner_id, limit),
        )
        while rows := await cursor.fetchmany(batch):
            for row in rows:
                yield MemeRecord.from_row(row)


async def recent_rendered(
    pool: AsyncConnectionPool, limit: int, before: str | None = None
) -> list[MemeRecord]:
    """The newest rendered memes (cache warming, the recent list's rebuild), or, with `before`
    (a meme id), the ones created just before it: the feed's older pages. Ordered by
    (created_at, id), a key no insert can reorder, so pages neither repeat nor skip a meme;
    `created_at` is the id's own timestamp, so the id alone is the cursor."""
    query = f"SELECT {_COLUMNS} FROM memes WHERE status = 'rendered'"
    params: tuple[object, ...] = (limit,)
    if before is not None:
        query += " AND (created_at, id) < (%s, %s)"
        params = (id_time(before), before, limit)
    async with pool.connection() as conn:
        cursor = await conn.execute(query + " ORDER BY created_at DESC, id DESC LIMIT %s", params)
        rows = await cursor.fetchall()
    return [MemeRecord.from_row(r) for r in rows]
