"""Votes in PostgreSQL: one row per user and meme, changed in place; the daily trending view.

Why PostgreSQL holds votes although Kafka carries them: "one vote per user and meme" is a
uniqueness rule, and only the source of truth can enforce it atomically. The `meme.votes` event
(the user's current value) is staged in the outbox in the same transaction as the row, so a
committed vote always reaches Kafka, whatever Kafka says at that moment (sinks/postgres/outbox.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from domain.ids import id_time
from sinks.postgres.outbox import Staging, nothing, stage


@dataclass(frozen=True, slots=True)
class Tally:
    up: int
    down: int

    @property
    def score(self) -> int:
        return self.up - self.down


@dataclass(frozen=True, slots=True)
class VoteOutcome:
    previous: int
    current: int
    #: The meme's votes as the vote's transaction saw them: counted before the commit, so an
    #: answer never needs a second trip to the pool after the vote is already stored.
    tally: Tally = Tally(up=0, down=0)

    @property
    def changed(self) -> bool:
        return self.previous != self.current


@dataclass(frozen=True, slots=True)
class DailyTrend:
    day: date
    meme_id: str
    score: float
    votes: int


class VoteRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def cast(
        self, meme_id: str, user_id: str, value: int, events: Staging[VoteOutcome] = nothing
    ) -> VoteOutcome:
        """Sets the user's vote (1 or -1), or withdraws it (0); returns before and after.

        `events(outcome)` is staged in the outbox in the vote's transaction, after the row's
        lock, so the events of two votes of one user on one meme follow their commit order."""
        if value not in (-1, 0, 1):
            raise ValueError("a vote is -1, 0 or 1")
        async with self.pool.connection() as conn, conn.transaction():
            cursor = await conn.execute(
                "SELECT value FROM votes WHERE meme_id = %s AND user_id = %s FOR UPDATE",
                (meme_id, user_id),
            )
            row = await cursor.fetchone()
            previous = int(row["value"]) if row else 0
            if value == 0:
                await conn.execute(
                    "DELETE FROM votes WHERE meme_id = %s AND user_id = %s", (meme_id, user_id)
                )
            elif value != previous:
                await conn.execute(
                    "INSERT INTO votes (meme_id, user_id, meme_created_at, value)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (meme_id, user_id)"
                    " DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
                    (meme_id, user_id, id_time(meme_id), value),
                )
            outcome = VoteOutcome(
                previous=previous, current=value, tally=await _tally(conn, meme_id)
            )
            await stage(conn, events(outcome))
        return outcome

    async def tally(self, meme_id: str) -> Tally:
        async with self.pool.connection() as conn:
            return await _tally(conn, meme_id)


async def _tally(conn: AsyncConnection[Any], meme_id: str) -> Tally:
    cursor = await conn.execute(
        "SELECT count(*) FILTER (WHERE value > 0) AS up,"
        " count(*) FILTER (WHERE value < 0) AS down FROM votes WHERE meme_id = %s",
        (meme_id,),
    )
    row = await cursor.fetchone()
    assert row is not None
    return Tally(up=int(row["up"]), down=int(row["down"]))


async def refresh_trending_daily(pool: AsyncConnectionPool) -> None:
    """Recomputes `trending_daily` without blocking its readers."""
    async with pool.connection() as conn:
        await conn.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY trending_daily")


async def trending_daily(pool: AsyncConnectionPool, day: date, limit: int = 50) -> list[DailyTrend]:
    """The day's best-scored memes from the materialized view (the fallback of Redis)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT day, meme_id, score, votes FROM trending_daily WHERE day = %s"
            " ORDER BY score DESC, votes DESC LIMIT %s",
            (day, limit),
        )
        rows = await cursor.fetchall()
    return [DailyTrend(**{**r, "meme_id": str(r["meme_id"])}) for r in rows]
