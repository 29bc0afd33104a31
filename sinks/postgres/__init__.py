"""PostgreSQL, the source of truth: migrations, the connection pool and repositories."""

from sinks.postgres.migrate import migrate

__all__ = ["migrate"]
