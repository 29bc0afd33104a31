"""The async connection pool every PostgreSQL reader and writer shares."""

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
        open=False,
    )
