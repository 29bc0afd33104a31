"""Ordered SQL migrations with a version table.

Files in `migrations/` named `NNNN_name.sql` run once each, in order, each in its own
transaction; an advisory lock keeps two processes from migrating at the same time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg

from domain.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(?P<version>\d{4})_[\w-]+\.sql$")
_LOCK_ID = 0x6D656D65  # "meme"
PARTITION_MONTHS_AHEAD = 3


def migrations(folder: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: migrations are named NNNN_name.sql")
        found.append((int(match["version"]), path))
    return found


def migrate(settings: Settings, *, today: date | None = None) -> list[int]:
    """Applies pending migrations and the coming months' partitions; returns versions applied."""
    applied: list[int] = []
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, path in migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, path.name),
                    )
                applied.append(version)
            ensure_partitions(conn, today or datetime.now(UTC).date())
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied


def ensure_partitions(conn: psycopg.Connection, today: date) -> None:
    for offset in range(-1, PARTITION_MONTHS_AHEAD + 1):
        month_index = today.year * 12 + today.month - 1 + offset
        month = date(month_index // 12, month_index % 12 + 1, 1)
        conn.execute("SELECT ensure_memes_partition(%s)", (month,))
