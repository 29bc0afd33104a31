"""The review queue: memes moderation flagged, and an admin's decision on each.

A meme is reviewed once: `flagged` becomes `rendered` (approved) or `rejected`, and both are
final, so the decision lives on the meme's row (migration 0007) rather than in a history table:
the queue, the meme and the events built from a decision all read that one row. Deciding locks
the row, so two admins deciding at once get one decision and one conflict; deciding again as
before is a no-op that returns the recorded decision, which lets a retry re-send its events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from domain.ids import id_time
from sinks.postgres.outbox import Staging, nothing, stage

Decision = Literal["approved", "rejected"]
STATUS_AFTER: dict[str, str] = {"approved": "rendered", "rejected": "rejected"}

_QUEUE_COLUMNS = (
    "id, created_at, template_id, texts, owner_id, format, variants, rendered_at, moderation,"
    " moderation_score, moderation_reason, sentiment, sentiment_score"
)
_DECIDED_COLUMNS = (
    "id, created_at, template_id, owner_id, status, variants, render_ms, error, moderation_score,"
    " moderation_reason, sentiment, sentiment_score, review_decision, reviewed_by, reviewed_at,"
    " review_note"
)


@dataclass(frozen=True, slots=True)
class FlaggedMeme:
    """A meme awaiting review, with the evidence moderation stored for it."""

    id: str
    created_at: datetime
    template_id: str
    texts: list[str]
    owner_id: str | None
    format: str | None
    variants: list[dict[str, Any]]
    rendered_at: datetime | None
    moderation: str | None
    moderation_score: float | None
    moderation_reason: str | None
    sentiment: str | None
    sentiment_score: float | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FlaggedMeme:
        return cls(**{**row, "id": str(row["id"])})


@dataclass(frozen=True, slots=True)
class Decided:
    """A recorded decision and what its events need; `removed` lists the images the decision
    took off the row (a rejection's, the first time), which the caller deletes from storage."""

    id: str
    created_at: datetime
    template_id: str
    owner_id: str | None
    status: str
    variants: list[dict[str, Any]]
    render_ms: float | None
    error: str | None
    moderation_score: float | None
    moderation_reason: str | None
    sentiment: str | None
    sentiment_score: float | None
    review_decision: str
    reviewed_by: str
    reviewed_at: datetime
    review_note: str | None
    removed: list[dict[str, Any]]


class NotInReview(Exception):
    """The meme is not flagged, and was not decided this way: nothing to approve or reject."""

    def __init__(self, status: str, decision: str | None) -> None:
        super().__init__(status)
        self.status = status
        self.decision = decision


def rejection_error(note: str | None) -> str:
    return f"rejected in review ({note})" if note else "rejected in review"


async def flagged_count(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT count(*) AS n FROM memes WHERE status = 'flagged'")
        row = await cursor.fetchone()
    return int(row["n"]) if row else 0


async def flagged_memes(
    pool: AsyncConnectionPool, *, limit: int, after: str | None = None, newest_first: bool = False
) -> list[FlaggedMeme]:
    """One page of the queue, by (created_at, id); `after` is the last id of the previous page
    (a meme id is a UUIDv7, so its created_at follows from it). Uses `memes_flagged_idx`."""
    direction, compare = ("DESC", "<") if newest_first else ("ASC", ">")
    where, params = "", []
    if after is not None:
        where = f" AND (created_at, id) {compare} (%s, %s)"
        params = [id_time(after), after]
    async with pool.connection() as conn:
        cursor = await conn.execute(
            f"SELECT {_QUEUE_COLUMNS} FROM memes WHERE status = 'flagged'{where}"
            f" ORDER BY created_at {direction}, id {direction} LIMIT %s",
            (*params, limit),
        )
        rows = await cursor.fetchall()
    return [FlaggedMeme.from_row(r) for r in rows]


async def decide(
    pool: AsyncConnectionPool,
    meme_id: str,
    decision: Decision,
    reviewer: str,
    note: str | None = None,
    events: Staging[Decided] = nothing,
) -> Decided | None:
    """Records an admin's decision on a flagged meme; None when there is no such (live) meme.

    Approving makes it `rendered`; rejecting makes it `rejected` with no images (as moderation's
    own rejections have none). Raises NotInReview when the meme is not flagged and was not
    decided this way before. `events(decided)` is staged in the outbox in the decision's
    transaction, a repeated decision's too (its events derive their ids from the meme: a
    consumer sees the same event again and dedupes it).
    """
    created_at = id_time(meme_id)
    async with pool.connection() as conn, conn.transaction():
        cursor = await conn.execute(
            f"SELECT {_DECIDED_COLUMNS} FROM memes WHERE id = %s AND created_at = %s FOR UPDATE",
            (meme_id, created_at),
        )
        row = await cursor.fetchone()
        if row is None or row["status"] == "deleted":
            return None
        removed: list[dict[str, Any]] = []
        if row["status"] == "flagged":
            rejecting = decision == "rejected"
            removed = list(row["variants"]) if rejecting else []
            cursor = await conn.execute(
                "UPDATE memes SET status = %s, reviewed_by = %s, reviewed_at = now(),"
                " review_decision = %s, review_note = %s, updated_at = now(),"
                " variants = CASE WHEN %s THEN %s ELSE variants END,"
                " error = CASE WHEN %s THEN %s ELSE error END"
                f" WHERE id = %s AND created_at = %s RETURNING {_DECIDED_COLUMNS}",
                (
                    STATUS_AFTER[decision],
                    reviewer,
                    decision,
                    note,
                    rejecting,
                    Jsonb([]),
                    rejecting,
                    rejection_error(note),
                    meme_id,
                    created_at,
                ),
            )
            row = await cursor.fetchone()
            assert row is not None
        elif row["review_decision"] != decision or row["status"] != STATUS_AFTER[decision]:
            raise NotInReview(row["status"], row["review_decision"])
        decided = Decided(**{**row, "id": str(row["id"]), "removed": removed})
        await stage(conn, events(decided))
    return decided
