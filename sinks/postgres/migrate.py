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
from sinks.postgres.partitions import ensure_partitions_sync

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(?P<version>\d{4})_[\w-]+\.sql$")
_LOCK_ID = 0x6D656D65  # "meme"


def migrations(folder: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    """The folder's migrations in order. Two files with one version number are refused: the
    version table records numbers, so the second file would never run anywhere the first had."""
    found: dict[int, Path] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: migrations are named NNNN_name.sql")
        version = int(match["version"])
        if version in found:
            raise ValueError(f"{path.name} and {found[version].name} share version {version}")
        found[version] = path
    return sorted(found.items())


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
            ensure_partitions_sync(conn, today or datetime.now(UTC).date())
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied
