"""The data-layer schema from empty, and the user repository against the real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from domain.ids import id_time, new_id
from domain.settings import Settings
from sinks.postgres import migrate
from sinks.postgres.migrate import migrations
from sinks.postgres.pool import create_pool
from sinks.postgres.templates import seed_templates
from sinks.postgres.users import UsernameTaken, UserRepository


@pytest.fixture
def empty_schema(stack_settings: Settings) -> Iterator[Settings]:
    """Settings whose connections see a fresh, empty schema (dropped afterwards)."""
    schema = f"test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in stack_settings.database_url else "?"
    url = f"{stack_settings.database_url}{separator}options=-csearch_path%3D{schema}"
    try:
        yield stack_settings.model_copy(update={"database_url": url})
    finally:
        with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def plan(conn: psycopg.Connection, sql: str, params: tuple) -> str:  # type: ignore[type-arg]
    conn.execute("SET enable_seqscan = off")
    rows = conn.execute("EXPLAIN " + sql, params).fetchall()
    return "\n".join(r[0] for r in rows)


def test_migrations_run_up_from_empty_once(empty_schema: Settings) -> None:
    applied = migrate(empty_schema)
    assert applied == [v for v, _ in migrations()] and 2 in applied
    assert migrate(empty_schema) == []
    assert seed_templates(empty_schema) >= 7
    with psycopg.connect(empty_schema.database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }
        assert {"users", "api_keys", "votes", "templates", "memes"} <= tables
        columns = dict(
            conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = 'trending_daily'::regclass AND attnum > 0"
            ).fetchall()
        )
        assert columns == {
            "day": "date",
            "meme_id": "uuid",
            "score": "double precision",
            "votes": "bigint",
        }


def test_queries_use_indexes(empty_schema: Settings) -> None:
    migrate(empty_schema)
    meme = new_id()
    with psycopg.connect(empty_schema.database_url) as conn:
        checks = {
            "_search_idx": (  # memes_search_idx, as each partition's copy
                "SELECT id FROM memes WHERE search @@ websearch_to_tsquery('simple', %s)",
                ("cat",),
            ),
            "templates_search_idx": (
                "SELECT id FROM templates WHERE search @@ websearch_to_tsquery('english', %s)",
                ("cat",),
            ),
            "api_keys_hash_key": ("SELECT id FROM api_keys WHERE key_hash = %s", (b"x",)),
            "users_username_key": (
                "SELECT id FROM users WHERE lower(username) = lower(%s)",
                ("bob",),
            ),
            "votes_pkey": ("SELECT value FROM votes WHERE meme_id = %s", (meme,)),
            "trending_daily_rank_idx": (
                "SELECT meme_id FROM trending_daily WHERE day = current_date"
                " ORDER BY score DESC LIMIT %s",
                (10,),
            ),
        }
        for index, (sql, params) in checks.items():
            explained = plan(conn, sql, params)
            assert index in explained and "Seq Scan" not in explained, explained
        # A meme lookup by id touches only the partition of its month.
        lookup = plan(
            conn, "SELECT id FROM memes WHERE id = %s AND created_at = %s", (meme, id_time(meme))
        )
        assert lookup.count("Scan") == 1


@pytest.fixture
async def users(stack_settings: Settings) -> AsyncIterator[UserRepository]:
    pool: AsyncConnectionPool = create_pool(stack_settings)
    await pool.open()
    try:
        yield UserRepository(pool)
    finally:
        await pool.close()


async def test_create_authenticate_and_roles(users: UserRepository) -> None:
    name = f"Repo_{uuid.uuid4().hex[:8]}"
    user = await users.create(name, "s3cret-password", email="r@example.com")
    assert (user.username, user.role, user.is_admin) == (name, "user", False)
    assert await users.authenticate(name.lower(), "s3cret-password") == user
    assert await users.authenticate(name, "wrong-password") is None
    assert await users.authenticate("no_such_user_x", "whatever") is None
    with pytest.raises(UsernameTaken):
        await users.create(name.upper(), "another-password")
    await users.set_role(user.id, "admin")
    admin = await users.get(user.id)
    assert admin is not None and admin.is_admin


async def test_api_keys_resolve_to_their_owner_until_revoked(users: UserRepository) -> None:
    user = await users.create(f"keys_{uuid.uuid4().hex[:8]}", "s3cret-password")
    secret, key = await users.create_api_key(user.id, "ci")
    owner = await users.by_api_key(secret)
    assert owner is not None and owner.id == user.id
    assert await users.by_api_key(secret + "x") is None
    assert await users.by_api_key("not-a-key") is None
    listed = await users.list_api_keys(user.id)
    assert [k.id for k in listed] == [key.id] and listed[0].last_used_at is not None
    assert await users.revoke_api_key(user.id, key.id)
    assert await users.by_api_key(secret) is None
