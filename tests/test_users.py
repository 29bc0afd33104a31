"""The data-layer schema from empty, and the user repository against the real PostgreSQL."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from domain.ids import id_time, new_id
from domain.settings import Settings
from sinks.postgres import migrate
from sinks.postgres.memes import _COLUMNS as MEME_COLUMNS
from sinks.postgres.migrate import migrations
from sinks.postgres.pool import create_pool
from sinks.postgres.templates import _COLUMNS as TEMPLATE_COLUMNS
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


def indexes_used(conn: psycopg.Connection, explained: str) -> set[str]:
    """The indexes a plan scans, each partition's copy named by its parent (memes_owner_idx,
    not memes_2026_11_owner_id_created_at_idx)."""
    names = set(re.findall(r"(?:Scan using|Bitmap Index Scan on) (\S+)", explained))
    parents = dict(
        conn.execute(
            "SELECT c.relname, p.relname FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE c.relkind = 'i' AND c.relname = ANY(%s)",
            (list(names),),
        ).fetchall()
    )
    return {parents.get(n, n) for n in names}


#: Rows in every partition (last month to four months on, past the last into memes_default),
#: analysed: on empty tables the planner takes the tiny partial index of rendered memes for
#: any query that filters on status, which would prove nothing about the others.
POPULATE = """
INSERT INTO memes (id, created_at, template_id, texts, status, owner_id)
SELECT gen_random_uuid(),
       date_trunc('month', now()) - interval '1 month' + (i % 190) * interval '1 day'
           + i * interval '1 second',
       'tpl-' || (i % 20), ARRAY['word' || (i % 500), 'a common caption'],
       CASE WHEN i % 20 = 0 THEN 'pending' WHEN i % 50 = 1 THEN 'flagged' ELSE 'rendered' END,
       'owner-' || (i % 200)
FROM generate_series(1, 20000) AS i;
INSERT INTO users (id, username, password_hash)
SELECT gen_random_uuid(), 'user' || i, 'x' FROM generate_series(1, 5) AS i;
INSERT INTO votes (meme_id, user_id, meme_created_at, value)
SELECT m.id, u.id, m.created_at, 1 FROM (SELECT id, created_at FROM memes LIMIT 2000) m, users u;
ANALYZE;
"""


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
    """Each query the API makes, as its module writes it, scans the index meant for it.

    Templates listed without a category are the one query that needs none: a few dozen rows,
    read in `category, id` order that `templates_category_idx` happens to give as well.
    """
    migrate(empty_schema)
    seed_templates(empty_schema)
    meme = new_id()
    with psycopg.connect(empty_schema.database_url) as conn:
        conn.execute(POPULATE)
        conn.commit()
        vote = conn.execute("SELECT meme_id, user_id FROM votes LIMIT 1").fetchone()
        assert vote is not None
        voted, voter = vote
        caption_search = (
            f"SELECT {MEME_COLUMNS} FROM memes, websearch_to_tsquery('simple', %s) q"
            " WHERE search @@ q AND status = 'rendered' {}"
            " ORDER BY ts_rank(search, q) DESC, created_at DESC LIMIT %s"
        )
        checks: dict[str, tuple[str, tuple, set[str]]] = {  # type: ignore[type-arg]
            "caption search (rendered only)": (
                caption_search.format(""),
                ("word7", 20),
                {"memes_search_idx"},
            ),
            "caption search of one template": (  # either index narrows it down
                caption_search.format("AND template_id = %s"),
                ("word7", "tpl-7", 20),
                {"memes_search_idx", "memes_template_idx"},
            ),
            "export listing (owned_memes)": (
                f"SELECT {MEME_COLUMNS} FROM memes WHERE owner_id = %s AND status = 'rendered'"
                " ORDER BY created_at DESC LIMIT %s",
                ("owner-7", 10_000),
                {"memes_owner_idx"},
            ),
            "recent list (recent_rendered)": (
                f"SELECT {MEME_COLUMNS} FROM memes WHERE status = 'rendered'"
                " ORDER BY created_at DESC LIMIT %s",
                (20,),
                {"memes_live_created_idx"},
            ),
            "trending filter (public_memes)": (
                "SELECT id::text AS id FROM memes WHERE id = ANY(%s) AND status = 'rendered'",
                ([meme],),
                {"memes_pkey"},
            ),
            "templates by category": (
                f"SELECT {TEMPLATE_COLUMNS} FROM templates WHERE category = %s"
                " ORDER BY category, id LIMIT %s OFFSET %s",
                ("reaction", 50, 0),
                {"templates_category_idx"},
            ),
            "template search": (
                "SELECT id FROM templates WHERE search @@ websearch_to_tsquery('english', %s)",
                ("cat",),
                {"templates_search_idx"},
            ),
            "vote tally": (
                "SELECT count(*) FILTER (WHERE value > 0) AS up,"
                " count(*) FILTER (WHERE value < 0) AS down FROM votes WHERE meme_id = %s",
                (voted,),
                {"votes_pkey"},
            ),
            "vote cast (row lock)": (
                "SELECT value FROM votes WHERE meme_id = %s AND user_id = %s FOR UPDATE",
                (voted, voter),
                {"votes_pkey"},
            ),
            "API key by hash": (
                "SELECT id FROM api_keys WHERE key_hash = %s",
                (b"x",),
                {"api_keys_hash_key"},
            ),
            "API keys of a user": (
                "SELECT id FROM api_keys WHERE user_id = %s ORDER BY created_at DESC",
                (str(uuid.uuid4()),),
                {"api_keys_user_idx"},
            ),
            "login by name": (
                "SELECT id FROM users WHERE lower(username) = lower(%s)",
                ("bob",),
                {"users_username_key"},
            ),
            "trending fallback of a day": (
                "SELECT meme_id FROM trending_daily WHERE day = current_date"
                " ORDER BY score DESC LIMIT %s",
                (10,),
                {"trending_daily_rank_idx"},
            ),
        }
        for name, (sql, params, expected) in checks.items():
            explained = plan(conn, sql, params)
            used = indexes_used(conn, explained)
            assert used and used <= expected, (name, used, explained)
            assert "Seq Scan" not in explained, (name, explained)
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
