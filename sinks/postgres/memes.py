"""Memes in PostgreSQL: written idempotently on `meme_id`, so replays never duplicate."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from domain.events import MemeRendered, MemeRequested
from domain.ids import id_time


@dataclass(frozen=True, slots=True)
class MemeRecord:
    id: str
    created_at: datetime
    template_id: str
    texts: list[str]
    status: str
    owner_id: str | None
    format: str | None
    variants: list[dict[str, Any]]
    render_ms: float | None
    error: str | None
    rendered_at: datetime | None
    updated_at: datetime
    sentiment: str | None = None  # negative, neutral, positive (migration 0004)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> MemeRecord:
        return cls(**{**row, "id": str(row["id"])})


_COLUMNS = (
    "id, created_at, template_id, texts, status, owner_id, format, variants, render_ms, error,"
    " rendered_at, updated_at, sentiment"
)


class MemeRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def add_pending(self, request: MemeRequested) -> None:
        """Records an accepted request; a row the worker already wrote is left alone."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO memes (id, created_at, template_id, texts, status, owner_id, format)"
                " VALUES (%s, %s, %s, %s, 'pending', %s, %s)"
                " ON CONFLICT (id, created_at) DO NOTHING",
                (
                    request.meme_id,
                    id_time(request.meme_id),
                    request.template_id,
                    request.texts,
                    request.user_id,
                    request.format,
                ),
            )

    async def record_render(self, request: MemeRequested, outcome: MemeRendered) -> None:
        """Upserts the render's outcome (with moderation and sentiment); deleted stays deleted,
        and a reviewed meme keeps the reviewer's decision (a replayed render must not undo it)."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO memes (id, created_at, template_id, texts, status, owner_id, format,"
                " variants, render_ms, error, rendered_at, sentiment, sentiment_score,"
                " moderation, moderation_score, moderation_reason)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id, created_at) DO UPDATE SET"
                " status = EXCLUDED.status, variants = EXCLUDED.variants,"
                " render_ms = EXCLUDED.render_ms, error = EXCLUDED.error,"
                " rendered_at = EXCLUDED.rendered_at, sentiment = EXCLUDED.sentiment,"
                " sentiment_score = EXCLUDED.sentiment_score, moderation = EXCLUDED.moderation,"
                " moderation_score = EXCLUDED.moderation_score,"
                " moderation_reason = EXCLUDED.moderation_reason, updated_at = now()"
                " WHERE memes.status <> 'deleted' AND memes.reviewed_at IS NULL",
                (
                    request.meme_id,
                    id_time(request.meme_id),
                    request.template_id,
                    request.texts,
                    outcome.meme_status,
                    request.user_id,
                    request.format,
                    Jsonb([asdict(v) for v in outcome.variants]),
                    outcome.render_ms,
                    outcome.error,
                    outcome.occurred_at,
                    outcome.sentiment,
                    outcome.sentiment_score,
                    outcome.moderation,
                    outcome.moderation_score,
                    outcome.moderation_reason,
                ),
            )

    async def get(self, meme_id: str) -> MemeRecord | None:
        """Looks a meme up in the one partition its id's timestamp points at."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM memes WHERE id = %s AND created_at = %s",
                (meme_id, id_time(meme_id)),
            )
            row = await cursor.fetchone()
        return MemeRecord.from_row(row) if row else None
