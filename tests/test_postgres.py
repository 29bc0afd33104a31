"""Migrations and the meme repository against the real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from domain.events import ImageVariant, MemeRendered, MemeRequested, RenderStatus
from domain.ids import id_time, new_id
from domain.settings import Settings
from sinks.postgres import migrate
from sinks.postgres.memes import MemeRepository
from sinks.postgres.migrate import migrations
from sinks.postgres.pool import create_pool


@pytest.fixture
async def pool(stack_settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    pool = create_pool(stack_settings)
    await pool.open()
    yield pool
    await pool.close()


def test_migrate_is_idempotent_and_records_versions(stack_settings: Settings) -> None:
    assert migrate(stack_settings) == []
    with psycopg.connect(stack_settings.database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [v for v, _ in migrations()]


@pytest.mark.parametrize(
    ("names", "error"),
    [
        (["0001_a.sql", "0001_b.sql"], "share version 1"),
        (["0001_a.sql", "one_more.sql"], "named NNNN_name.sql"),
    ],
)
def test_migration_files_are_refused_when_two_share_a_version_or_one_has_none(
    tmp_path: Path, names: list[str], error: str
) -> None:
    for name in names:
        (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(ValueError, match=error):
        migrations(tmp_path)


def test_migration_files_are_ordered_by_version(tmp_path: Path) -> None:
    for name in ("0010_later.sql", "0002_sooner.sql"):
        (tmp_path / name).write_text("SELECT 1;")
    assert [v for v, _ in migrations(tmp_path)] == [2, 10]


def test_monthly_partitions_exist_around_now(stack_settings: Settings) -> None:
    migrate(stack_settings, today=date(2031, 12, 15))
    with psycopg.connect(stack_settings.database_url) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT inhrelid::regclass::text FROM pg_inherits"
                " WHERE inhparent = 'memes'::regclass"
            )
        }
    assert {"memes_2031_11", "memes_2031_12", "memes_2032_01", "memes_2032_03"} <= names


def _request() -> MemeRequested:
    return MemeRequested(meme_id=new_id(), template_id="drake", texts=["a", "b"], user_id="u1")


def _rendered(request: MemeRequested) -> MemeRendered:
    variant = ImageVariant(
        size="full",
        key=f"memes/{request.meme_id}/full.jpeg",
        width=600,
        height=600,
        bytes=10,
        media_type="image/jpeg",
    )
    return MemeRendered.for_request(
        request, status=RenderStatus.RENDERED, variants=[variant], render_ms=3.0
    )


async def test_pending_then_rendered_then_replayed(pool: AsyncConnectionPool) -> None:
    memes = MemeRepository(pool)
    request = _request()
    await memes.add_pending(request)
    pending = await memes.get(request.meme_id)
    assert pending is not None and pending.status == "pending"
    assert pending.created_at == id_time(request.meme_id)

    outcome = _rendered(request)
    await memes.record_render(request, outcome)
    await memes.record_render(request, outcome)  # a replay
    await memes.add_pending(request)  # a late duplicate of the request
    record = await memes.get(request.meme_id)
    assert record is not None
    assert record.status == "rendered"
    assert record.variants == [
        {
            "size": "full",
            "key": f"memes/{request.meme_id}/full.jpeg",
            "width": 600,
            "height": 600,
            "bytes": 10,
            "media_type": "image/jpeg",
        }
    ]
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM memes WHERE id = %s", (request.meme_id,)
        )
        assert (await cursor.fetchone())["n"] == 1


async def test_render_without_pending_row_inserts_it(pool: AsyncConnectionPool) -> None:
    memes = MemeRepository(pool)
    request = _request()
    await memes.record_render(request, _rendered(request))
    record = await memes.get(request.meme_id)
    assert record is not None and record.status == "rendered" and record.texts == ["a", "b"]


async def test_deleted_meme_stays_deleted(pool: AsyncConnectionPool) -> None:
    memes = MemeRepository(pool)
    request = _request()
    await memes.add_pending(request)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE memes SET status = 'deleted', deleted_at = %s WHERE id = %s",
            (datetime.now(UTC), request.meme_id),
        )
    await memes.record_render(request, _rendered(request))
    record = await memes.get(request.meme_id)
    assert record is not None and record.status == "deleted"


async def test_unknown_id_is_none_and_non_v7_is_rejected(pool: AsyncConnectionPool) -> None:
    memes = MemeRepository(pool)
    assert await memes.get(new_id()) is None
    with pytest.raises(ValueError):
        await memes.get("6f1c1c1e-8d0e-4c3a-9a3e-2f3b1a1d4e5f")
