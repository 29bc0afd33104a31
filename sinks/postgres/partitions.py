"""Monthly partitions of `memes`, kept ahead of time.

Why: a meme whose month has no partition lands in `memes_default`, where lookups by id scan
every stranded row and from where the month's partition can no longer simply be created.
`memestream migrate` makes the partitions from last month to PARTITION_MONTHS_AHEAD ahead,
but the platform may run for months between migrations, so the API also calls
`ensure_partitions` at start-up and every day (`maintain_partitions`): every replica may,
as the SQL function serialises them on the table lock and is idempotent. Should a month
still be late, `ensure_memes_partition` (migration 0006) moves the rows the default
partition holds for it into the new partition, in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

import psycopg
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from sinks.postgres.errors import POSTGRES_ERRORS

log = logging.getLogger(__name__)
PARTITION_MONTHS_AHEAD = 3
#: How often the API re-checks: three months ahead leaves ~90 missed days of slack.
MAINTENANCE_EVERY_S = 24 * 3600.0
#: After a failure (PostgreSQL down, schema not migrated yet, lock not granted in time).
RETRY_AFTER_S = 60.0
#: Creating a partition waits for every running query on `memes`; rather retry than stall.
LOCK_TIMEOUT = "5s"
#: NULL when the month's partition existed, else how many stranded rows it took over.
_ENSURE = "SELECT ensure_memes_partition(%s)"


@dataclass(frozen=True, slots=True)
class CreatedPartition:
    month: date
    moved_rows: int  # rows that had landed in memes_default and now live in the partition


def partition_months(now: date | datetime, ahead: int = PARTITION_MONTHS_AHEAD) -> list[date]:
    """First days of last month through `ahead` months after `now`'s (UTC) month.

    Last month too: a write for it can still arrive (a render finishing after midnight).
    """
    if isinstance(now, datetime):
        now = (now.astimezone(UTC) if now.tzinfo else now).date()
    first = now.year * 12 + now.month - 1
    return [date(m // 12, m % 12 + 1, 1) for m in range(first - 1, first + ahead + 1)]


def ensure_partitions_sync(
    conn: psycopg.Connection, now: date | datetime, ahead: int = PARTITION_MONTHS_AHEAD
) -> list[CreatedPartition]:
    """`ensure_partitions` on a blocking connection, for `memestream migrate`: an operator's
    command, so it waits for the table lock as long as it takes."""
    created = []
    for month in partition_months(now, ahead):
        with conn.transaction(), conn.cursor(row_factory=tuple_row) as cursor:
            row = cursor.execute(_ENSURE, (month,)).fetchone()
        if row is not None and row[0] is not None:
            created.append(_created(month, row[0]))
    return created


async def ensure_partitions(
    pool: AsyncConnectionPool, now: date | datetime, ahead: int = PARTITION_MONTHS_AHEAD
) -> list[CreatedPartition]:
    """Creates the missing partitions from last month to `ahead` months on; idempotent.

    One transaction per month, so a month that fails leaves the earlier ones made; each gives
    up after LOCK_TIMEOUT rather than queue every reader of `memes` behind its lock.
    """
    created = []
    async with pool.connection() as conn:
        for month in partition_months(now, ahead):
            async with conn.transaction(), conn.cursor(row_factory=tuple_row) as cursor:
                await cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                await cursor.execute(_ENSURE, (month,))
                row = await cursor.fetchone()
            if row is not None and row[0] is not None:
                created.append(_created(month, row[0]))
    return created


def _created(month: date, moved: int) -> CreatedPartition:
    """Logs a partition made now; loudly when rows had been stranded in the default one."""
    if moved:
        log.warning(
            "partition memes_%s created late: moved %d rows out of memes_default",
            month.strftime("%Y_%m"),
            moved,
        )
    else:
        log.info("partition memes_%s created", month.strftime("%Y_%m"))
    return CreatedPartition(month, moved)


async def maintain_partitions(
    pool: AsyncConnectionPool,
    *,
    every_s: float = MAINTENANCE_EVERY_S,
    retry_s: float = RETRY_AFTER_S,
    ahead: int = PARTITION_MONTHS_AHEAD,
) -> None:
    """Runs `ensure_partitions` now and then every `every_s`, until cancelled."""
    while True:
        try:
            await ensure_partitions(pool, datetime.now(UTC), ahead)
        except POSTGRES_ERRORS as exc:
            log.warning("memes partitions not checked, retrying in %.0f s: %s", retry_s, exc)
            await asyncio.sleep(retry_s)
            continue
        await asyncio.sleep(every_s)
