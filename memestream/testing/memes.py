"""Meme rows seeded straight into PostgreSQL, as the render worker would leave them."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from domain.ids import id_time, new_id
from domain.settings import Settings


def insert_meme(
    settings: Settings,
    *,
    owner_id: str | None = None,
    status: str = "rendered",
    texts: list[str] | None = None,
    template_id: str = "drake",
    variants: list[dict[str, Any]] | None = None,
) -> str:
    """A meme row as the render worker would leave it; returns its id."""
    meme_id = new_id()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO memes (id, created_at, template_id, texts, status, owner_id, variants,"
            " render_ms, rendered_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())",
            (
                meme_id,
                id_time(meme_id),
                template_id,
                texts or ["top", "bottom"],
                status,
                owner_id,
                Jsonb(variants or []),
                12.5 if status == "rendered" else None,
            ),
        )
    return meme_id
