"""Reachability probes of the stores, behind `memestream_store_up` (alert MemestreamStoreDown).

Why apart from the stores' clients: the clients retry and wait out outages on purpose (a render
holds its partition until PostgreSQL is back), while a probe must say "down" within a bound
and never raise. Each probe is one cheap round trip that needs the store itself to answer
(`SELECT 1`, `PING`, a metadata request, a bucket check, ClickHouse's `/ping`, NATS' `INFO`),
so a store that accepts connections but does not serve counts as down too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
from confluent_kafka.admin import AdminClient
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from domain.metrics import STORE_UP
from sinks.storage.base import ObjectStore

log = logging.getLogger(__name__)
TIMEOUT_S = 2.0

Probe = Callable[[], Awaitable[object]]


async def store_up(store: str, probe: Probe, timeout_s: float = TIMEOUT_S) -> str:
    """Runs one probe and sets the gauge: "ok", or "down: <error class>" as `/ready` shows it."""
    try:
        await asyncio.wait_for(probe(), timeout_s)
    except Exception as exc:  # whatever failed, the store did not answer in time
        log.debug("store %s is down: %r", store, exc)
        STORE_UP.labels(store=store).set(0)
        return f"down: {type(exc).__name__}"
    STORE_UP.labels(store=store).set(1)
    return "ok"


def postgres(pool: AsyncConnectionPool, timeout_s: float = TIMEOUT_S) -> Probe:
    async def probe() -> None:
        async with pool.connection(timeout=timeout_s) as conn:
            await conn.execute("SELECT 1")

    return probe


def redis(client: Redis) -> Probe:
    async def probe() -> None:
        await client.ping()

    return probe


def kafka(admin: AdminClient, timeout_s: float = TIMEOUT_S) -> Probe:
    """A metadata request: answered by a broker, not by the client's cached view. `poll`
    serves the client's queued log lines (a configured `logger` gets them only then)."""

    def metadata() -> None:
        try:
            admin.list_topics(timeout=timeout_s)
        finally:
            admin.poll(0)

    async def probe() -> None:
        await asyncio.to_thread(metadata)

    return probe


def storage(store: ObjectStore) -> Probe:
    """The bucket check `/ready` always made (it creates the bucket only if it is missing)."""

    async def probe() -> None:
        await asyncio.to_thread(store.ensure_bucket)

    return probe


def clickhouse(url: str, timeout_s: float = TIMEOUT_S) -> Probe:
    """ClickHouse server's `/ping` over HTTP (a `chdb://` folder has no server to probe)."""
    parts = urlsplit(url)
    ping = f"{parts.scheme}://{parts.hostname}:{parts.port or 8123}/ping"

    async def probe() -> None:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            (await client.get(ping)).raise_for_status()

    return probe


def nats(url: str) -> Probe:
    """A NATS server greets every connection with an `INFO` line before anything is sent."""
    first = url.split(",")[0]
    parts = urlsplit(first if "://" in first else f"nats://{first}")

    async def probe() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 4222)
        try:
            line = await reader.readline()
            if not line.startswith(b"INFO"):
                raise ConnectionError(f"not a NATS greeting: {line[:40]!r}")
        finally:
            writer.close()

    return probe
