"""A clickhouse-connect client for `CLICKHOUSE_URL`: chDB in-process or a ClickHouse server.

Why one factory: the same analytics code runs on chDB on one machine (`chdb://PATH`, the engine
inside this process) and on a ClickHouse server at scale (`http(s)://user:pass@host:8123/db`);
only the URL differs. URL forms:

- `chdb://.stack/data/chdb`: a data folder; a relative path is taken from the project root
  (`Settings.resolved`), not the working directory. chDB allows one data folder per process:
  every client of a process must use the same path.
- `chdb:///abs/path`, `chdb://memory` (or `chdb://:memory:`): absolute folder, or in memory.
- `?database=NAME` on a chdb URL picks the database (default `default`).
- `http://...`, `https://...`: handed to clickhouse-connect as a DSN (user, password, database
  in the URL).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

if TYPE_CHECKING:
    from domain.settings import Settings

MEMORY = (":memory:", "memory", "")


def chdb_location(url: str, settings: Settings | None = None) -> tuple[str | None, str | None]:
    """(data folder or None for in-memory, database or None) of a `chdb://` URL."""
    if not url.startswith("chdb://"):
        raise ValueError(f"not a chdb URL: {url!r}")
    rest, _, query = url[len("chdb://") :].partition("?")
    database = parse_qs(query).get("database", [None])[0]
    if rest in MEMORY:
        return None, database
    path = Path(rest)
    if not path.is_absolute():
        if settings is None:
            from domain.settings import get_settings

            settings = get_settings()
        path = settings.resolved(path)
    return str(path), database


def get_client(
    settings: Settings | None = None, *, url: str | None = None, **kwargs: Any
) -> Client:
    """A client for the configured ClickHouse; the caller closes it (`client.close()`)."""
    if url is None:
        if settings is None:
            from domain.settings import get_settings

            settings = get_settings()
        url = settings.clickhouse_url
    scheme = urlsplit(url).scheme
    if scheme == "chdb":
        path, database = chdb_location(url, settings)
        if path is not None:
            Path(path).mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(
            interface="chdb", path=path, database=database, **kwargs
        )
    if scheme in ("http", "https"):
        # No HTTP session: a session refuses concurrent queries, and the API runs several.
        kwargs.setdefault("autogenerate_session_id", False)
        return clickhouse_connect.get_client(dsn=url, **kwargs)
    raise ValueError(f"CLICKHOUSE_URL must be chdb://, http:// or https://, not {url!r}")
