"""The outbox table (migration 0008): events staged in the transaction of the write they report.

Why: a write that commits in PostgreSQL and then produces to Kafka loses the event when Kafka
refuses it after the commit, unless the client retries. Staging the event in the same
transaction makes it exist exactly when the write does; a relay (api/outbox.py) publishes it
whenever Kafka takes it. This module only stores bytes: the caller encodes the event.

Claiming uses `FOR UPDATE SKIP LOCKED`, so the relays of N API replicas share the rows without
coordination: a row locked by one relay is skipped by the others, and a relay that dies
mid-batch releases its locks with its connection (the rows are claimed again).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

#: The channel the table's trigger notifies on commit (LISTEN outbox).
CHANNEL = "outbox"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One event to publish: its topic, key and encoded value, and the request that caused it."""

    topic: str
    key: bytes | None
    event: bytes
    request_id: str | None = None


#: What a repository's write stages, given what the write found (the vote's outcome, the row):
#: called inside the write's transaction, so the events commit or roll back with it.
Staging = Callable[[T], Sequence[OutboxMessage]]


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    topic: str
    key: bytes | None
    event: bytes
    request_id: str | None
    attempts: int


def nothing(_: object) -> Sequence[OutboxMessage]:
    """The default Staging: the write reports no event."""
    return ()


async def stage(conn: AsyncConnection[Any], messages: Sequence[OutboxMessage]) -> None:
    """Inserts the messages on the caller's connection, inside the caller's transaction."""
    if not messages:
        return
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO outbox (topic, key, event, request_id) VALUES (%s, %s, %s, %s)",
            [(m.topic, m.key, m.event, m.request_id) for m in messages],
        )


class Claim:
    """Rows locked by one relay; `done` and `failed` record outcomes in the claim's transaction."""

    def __init__(self, conn: AsyncConnection[Any], rows: list[OutboxRow]) -> None:
        self.conn = conn
        self.rows = rows

    async def done(self, ids: Sequence[int]) -> None:
        if ids:
            await self.conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", (list(ids),))

    async def failed(self, ids: Sequence[int], error: str) -> None:
        if ids:
            await self.conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = %s WHERE id = ANY(%s)",
                (error[:500], list(ids)),
            )


class OutboxStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    @asynccontextmanager
    async def claim(self, limit: int) -> AsyncIterator[Claim]:
        """The oldest unlocked rows, locked until the block ends (its outcomes commit then)."""
        async with self.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "SELECT id, topic, key, event, request_id, attempts FROM outbox"
                " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (limit,),
            )
            rows = [OutboxRow(**row) for row in await cursor.fetchall()]
            yield Claim(conn, rows)

    async def pending(self) -> int:
        """Rows not yet published (locked ones included)."""
        async with self.pool.connection() as conn:
            cursor = await conn.execute("SELECT count(*) AS n FROM outbox")
            row = await cursor.fetchone()
        return int(row["n"]) if row else 0
