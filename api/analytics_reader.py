"""Where the API reads analytics: the ClickHouse server directly, or the analytics worker.

chDB allows one process per data folder and the analytics worker owns it (see
`streams/analytics.py`), so with a `chdb://` CLICKHOUSE_URL the API asks the worker's web server
(`ANALYTICS_WORKER_URL`, default 127.0.0.1 at the analytics role's web port, producers/roles.py);
with an `http(s)://` URL it runs the same queries (`sinks.clickhouse.queries`) against the server.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from domain.settings import Settings
from producers.roles import ANALYTICS, web_port
from sinks.clickhouse import apply_schema, get_client
from sinks.clickhouse.finalize import ensure_tables
from sinks.clickhouse.queries import run


class AnalyticsUnavailable(RuntimeError):
    """Neither the ClickHouse server nor the analytics worker answered."""


LOCAL = "local"


class AnalyticsReader:
    """`ANALYTICS_WORKER_URL=local` makes the API itself query CLICKHOUSE_URL (a server, or a
    chDB folder no other process uses: single-process setups and tests)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.direct = settings.clickhouse_url.startswith(("http://", "https://")) or (
            settings.analytics_worker_url == LOCAL
        )
        self._client: Any = None
        self._lock = threading.Lock()  # one chDB session: one query at a time
        base = settings.analytics_worker_url or (
            f"http://127.0.0.1:{web_port(settings.worker_web_port, ANALYTICS.name)}"
        )
        self._http = None if self.direct else httpx.AsyncClient(base_url=base, timeout=5.0)

    async def query(self, name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        if self.direct:
            return await asyncio.to_thread(self._query_server, name, args)
        assert self._http is not None
        try:
            response = await self._http.get(f"/analytics/{name}/", params=args)
        except httpx.HTTPError as exc:
            raise AnalyticsUnavailable(f"analytics worker: {exc}") from exc
        if response.status_code == 422:
            raise ValueError(response.json().get("error", "invalid arguments"))
        if response.status_code != 200:
            raise AnalyticsUnavailable(f"analytics worker answered {response.status_code}")
        rows: list[dict[str, Any]] = response.json()["rows"]
        return rows

    def _query_server(self, name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            with self._lock:
                if self._client is None:
                    self._client = get_client(self.settings)
                    if self.settings.clickhouse_url.startswith("chdb://"):
                        apply_schema(self._client)  # a fresh local folder has no tables yet
                        ensure_tables(self._client)
                return run(self._client, name, args)
        except ValueError:
            raise
        except Exception as exc:
            raise AnalyticsUnavailable(f"clickhouse: {exc}") from exc

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._client is not None:
            self._client.close()
