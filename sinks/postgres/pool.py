"""The async connection pool every PostgreSQL reader and writer shares.

Each connection is checked (one empty round trip) as it leaves the pool: after a PostgreSQL
failover every idle connection points at the dead primary, and without the check each of
them would fail one request before the pool replaced it. A multi-host DATABASE_URL with
`target_session_attrs=read-write` makes the replacement connect to the new primary.
"""

from __future__ import annotations

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from domain.settings import Settings


def create_pool(settings: Settings, *, min_size: int = 1) -> AsyncConnectionPool:
    """An unopened pool; the owner opens it (`await pool.open()`) in its lifespan."""
    return AsyncConnectionPool(
        settings.database_url,
        min_size=min(min_size, settings.database_pool_size),
        max_size=settings.database_pool_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        timeout=5.0,
        check=AsyncConnectionPool.check_connection,
        open=False,
    )
