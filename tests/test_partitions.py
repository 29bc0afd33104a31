"""Monthly partitions of `memes` kept ahead, and rows stranded in the default partition moved,
against the real PostgreSQL (each test in a schema of its own, dropped afterwards)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from domain.settings import Settings
from sinks.postgres import migrate
from sinks.postgres.partitions import CreatedPartition, ensure_partitions, partition_months
from sinks.postgres.pool import create_pool

#: Far enough ahead that nothing else ever writes this month.
NOW = datetime(2412, 5, 20, 13, 30, tzinfo=UTC)


@pytest.fixture
def schema_settings(stack_settings: Settings) -> Iterator[Settings]:
    """Settings whose connections see a fresh, migrated schema of their own."""
    schema = f"test_parts_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in stack_settings.database_url else "?"
    url = f"{stack_settings.database_url}{separator}options=-csearch_path%3D{schema}"
    settings = stack_settings.model_copy(update={"database_url": url})
    try:
        migrate(settings)
        yield settings
    finally:
        with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
async def pool(schema_settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    pool = create_pool(schema_settings)
    await pool.open()
    yield pool
    await pool.close()


def _insert(conn: psycopg.Connection, created_at: datetime, text: str) -> str:
    meme_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO memes (id, created_at, template_id, texts, status, owner_id, variants)"
        " VALUES (%s, %s, 'drake', %s, 'rendered', 'someone', '[{\"size\": \"full\"}]')",
        (meme_id, created_at, [text, "second line"]),
    )
    return meme_id


def _where(conn: psycopg.Connection, meme_id: str) -> str:
    row = conn.execute("SELECT tableoid::regclass::text FROM memes WHERE id = %s", (meme_id,))
    return row.fetchone()[0]  # type: ignore[index]


def _rows(conn: psycopg.Connection, ids: list[str]) -> list[tuple]:  # type: ignore[type-arg]
    return conn.execute(
        "SELECT id, created_at, template_id, texts, status, owner_id, variants, updated_at,"
        " search::text FROM memes WHERE id = ANY(%s::uuid[]) ORDER BY id",
        (ids,),
    ).fetchall()


def test_partition_months_run_from_last_month_to_ahead_in_utc() -> None:
    assert partition_months(date(2412, 1, 31), ahead=3) == [
        date(2411, 12, 1),
        date(2412, 1, 1),
        date(2412, 2, 1),
        date(2412, 3, 1),
        date(2412, 4, 1),
    ]
    # 00:30 on 1 June in UTC+2 is still May in UTC, the month a meme id of then falls in.
    local = datetime(2412, 6, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert partition_months(local, ahead=0) == [date(2412, 4, 1), date(2412, 5, 1)]


async def test_rows_stranded_in_the_default_partition_move_to_their_month(
    schema_settings: Settings, pool: AsyncConnectionPool
) -> None:
    with psycopg.connect(schema_settings.database_url, autocommit=True) as conn:
        stranded = [
            _insert(conn, datetime(2412, 5, 1, tzinfo=UTC), "stranded first"),
            _insert(conn, datetime(2412, 5, 31, 23, 59, 59, tzinfo=UTC), "stranded last"),
        ]
        later = _insert(conn, datetime(2413, 1, 2, tzinfo=UTC), "beyond the window")
        assert {_where(conn, i) for i in [*stranded, later]} == {"memes_default"}
        before = _rows(conn, [*stranded, later])
        # What went wrong before: the month's partition cannot simply be created any more.
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute(
                "CREATE TABLE memes_2412_05 PARTITION OF memes"
                " FOR VALUES FROM ('2412-05-01 00:00+00') TO ('2412-06-01 00:00+00')"
            )

    created = await ensure_partitions(pool, NOW, ahead=3)

    assert created == [
        CreatedPartition(date(2412, 4, 1), 0),
        CreatedPartition(date(2412, 5, 1), 2),
        CreatedPartition(date(2412, 6, 1), 0),
        CreatedPartition(date(2412, 7, 1), 0),
        CreatedPartition(date(2412, 8, 1), 0),
    ]
    assert await ensure_partitions(pool, NOW, ahead=3) == []  # idempotent
    with psycopg.connect(schema_settings.database_url, autocommit=True) as conn:
        assert [_where(conn, i) for i in stranded] == ["memes_2412_05"] * 2
        assert _where(conn, later) == "memes_default"
        assert _rows(conn, [*stranded, later]) == before  # moved as they were
        # The default partition is attached again, as DEFAULT, with every index of memes.
        default = conn.execute(
            "SELECT partdefid::regclass::text FROM pg_partitioned_table"
            " WHERE partrelid = 'memes'::regclass"
        ).fetchone()
        assert default == ("memes_default",)
        parent_indexes, attached = conn.execute(
            "SELECT (SELECT count(*) FROM pg_index WHERE indrelid = 'memes'::regclass),"
            " (SELECT count(*) FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indexrelid"
            "  WHERE i.indrelid = 'memes_default'::regclass)"
        ).fetchone()  # type: ignore[misc]
        assert attached == parent_indexes > 0
        # Caption search still finds the moved rows; the primary key still holds across them.
        found = conn.execute(
            "SELECT count(*) FROM memes WHERE search @@ websearch_to_tsquery('simple', 'stranded')"
        ).fetchone()
        assert found == (2,)
        duplicate = conn.execute(
            "INSERT INTO memes (id, created_at, template_id, texts, status)"
            " SELECT id, created_at, template_id, texts, status FROM memes WHERE id = %s"
            " ON CONFLICT (id, created_at) DO NOTHING",
            (stranded[0],),
        )
        assert duplicate.rowcount == 0
        fresh = _insert(conn, datetime(2412, 5, 15, tzinfo=UTC), "after the fix")
        assert _where(conn, fresh) == "memes_2412_05"


async def test_concurrent_callers_create_each_partition_once(
    schema_settings: Settings, pool: AsyncConnectionPool
) -> None:
    """Several API replicas starting at once: the table lock serialises them, none fails."""
    other = create_pool(schema_settings)
    await other.open()
    try:
        first, second = await asyncio.gather(
            ensure_partitions(pool, NOW), ensure_partitions(other, NOW)
        )
    finally:
        await other.close()
    assert sorted(p.month for p in first + second) == partition_months(NOW)


def test_the_api_creates_missing_partitions_at_start_up(schema_settings: Settings) -> None:
    """A month dropped after `migrate` is back once the API has started."""
    month = partition_months(datetime.now(UTC))[-1]
    name = f"memes_{month:%Y_%m}"
    with psycopg.connect(schema_settings.database_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {name}")

        def exists() -> bool:
            return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() != (None,)

        assert not exists()
        with TestClient(create_app(schema_settings)):
            deadline = time.monotonic() + 15
            while not exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert exists()
