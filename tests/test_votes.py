"""Votes: one per user and meme, changeable; PostgreSQL first, then `meme.votes`; the daily view."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool

from api.app import create_app
from domain.events import Vote
from domain.ids import new_id
from domain.settings import Settings
from memestream.testing.memes import insert_meme
from producers.topics import MEME_VOTES
from sinks.postgres.pool import create_pool
from sinks.postgres.trending import public_memes
from sinks.postgres.votes import (
    VoteOutcome,
    VoteRepository,
    refresh_trending_daily,
    trending_daily,
)
from tests.data_helpers import events_for, kafka_tail, register


@pytest.fixture(scope="module")
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings)) as client:
        yield client


def vote(client: TestClient, meme_id: str, value: int, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post(f"/api/meme/{meme_id}/vote", json={"value": value}, headers=headers)


def test_one_vote_per_user_changeable_and_withdrawable(
    client: TestClient, stack_settings: Settings
) -> None:
    alice, bob = register(client, "alice"), register(client, "bob")
    client.cookies.clear()
    meme_id = insert_meme(stack_settings)
    first = vote(client, meme_id, 1, alice["headers"])
    assert first.status_code == 200, first.text
    assert first.json() == {
        "meme_id": meme_id,
        "value": 1,
        "previous": 0,
        "up": 1,
        "down": 0,
        "score": 1,
    }
    again = vote(client, meme_id, 1, alice["headers"]).json()
    assert (again["up"], again["previous"]) == (1, 1)  # the same user counts once
    assert vote(client, meme_id, 1, bob["headers"]).json()["up"] == 2
    changed = vote(client, meme_id, -1, alice["headers"]).json()
    assert (changed["up"], changed["down"], changed["score"]) == (1, 1, 0)
    withdrawn = vote(client, meme_id, 0, alice["headers"]).json()
    assert (withdrawn["up"], withdrawn["down"], withdrawn["previous"]) == (1, 0, -1)


def test_a_vote_reaches_kafka_with_the_current_value(
    client: TestClient, stack_settings: Settings
) -> None:
    user = register(client)
    client.cookies.clear()
    meme_id = insert_meme(stack_settings)
    with kafka_tail(stack_settings, MEME_VOTES.name) as tail:
        assert vote(client, meme_id, -1, user["headers"]).status_code == 200
        events = events_for(tail, meme_id)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, Vote)
    assert (event.user_id, event.value) == (user["id"], -1)


def test_vote_errors(client: TestClient, stack_settings: Settings) -> None:
    user = register(client)
    client.cookies.clear()
    rendered = insert_meme(stack_settings)
    anonymous = vote(client, rendered, 1, {})
    assert anonymous.status_code == 401
    assert vote(client, new_id(), 1, user["headers"]).status_code == 404
    assert vote(client, "not-an-id", 1, user["headers"]).status_code == 404
    pending = insert_meme(stack_settings, status="pending")
    assert vote(client, pending, 1, user["headers"]).json()["type"].endswith("/meme-not-votable")
    assert vote(client, rendered, 2, user["headers"]).status_code == 422
    deleted = insert_meme(stack_settings, status="deleted")
    assert vote(client, deleted, 1, user["headers"]).status_code == 404


def test_trending_daily_view_scores_net_votes(client: TestClient, stack_settings: Settings) -> None:
    users = [register(client, "v") for _ in range(3)]
    client.cookies.clear()
    meme_id = insert_meme(stack_settings)
    held_back = insert_meme(stack_settings)  # flagged below, after its votes
    for user, value in zip(users, (1, 1, -1), strict=True):
        assert vote(client, meme_id, value, user["headers"]).status_code == 200
        assert vote(client, held_back, 1, user["headers"]).status_code == 200
    with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE memes SET status = 'flagged' WHERE id = %s", (held_back,))

    async def read() -> list:  # type: ignore[type-arg]
        pool = create_pool(stack_settings)
        await pool.open()
        try:
            await refresh_trending_daily(pool)
            return await trending_daily(pool, datetime.now(UTC).date(), limit=100_000)
        finally:
            await pool.close()

    rows = {r.meme_id: r for r in asyncio.run(read())}
    assert rows[meme_id].score == 1.0 and rows[meme_id].votes == 3
    assert held_back not in rows  # moderation holds it back: the fallback does not rank it

    async def public() -> set[str]:
        pool = create_pool(stack_settings)
        await pool.open()
        try:
            return await public_memes(pool, [meme_id, held_back, "not-a-uuid", new_id()])
        finally:
            await pool.close()

    assert asyncio.run(public()) == {meme_id}  # what filters the ClickHouse fallback


def test_a_vote_is_answered_from_its_own_transaction(stack_settings: Settings) -> None:
    """The tally is counted inside the vote's transaction: after the commit the answer needs
    no second connection, so a saturated pool cannot turn a stored vote into a 503."""
    meme_id = insert_meme(stack_settings)

    async def cast() -> tuple[VoteOutcome, int]:
        pool = create_pool(stack_settings)
        await pool.open()
        checkouts = 0
        getconn = pool.getconn

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal checkouts
            checkouts += 1
            return await getconn(*args, **kwargs)

        pool.getconn = counted  # type: ignore[method-assign]
        try:
            user_id = await _user(pool)
            checkouts = 0
            outcome = await VoteRepository(pool).cast(meme_id, user_id, -1)
            return outcome, checkouts
        finally:
            await pool.close()

    outcome, checkouts = asyncio.run(cast())
    assert checkouts == 1
    assert (outcome.previous, outcome.current) == (0, -1)
    assert (outcome.tally.up, outcome.tally.down, outcome.tally.score) == (0, 1, -1)


async def _user(pool: AsyncConnectionPool) -> str:
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "INSERT INTO users (id, username, password_hash) VALUES (%s, %s, 'x')"
            " RETURNING id::text",
            (new_id(), f"tally-{new_id()[-8:]}"),
        )
        row = await cursor.fetchone()
    assert row is not None
    return str(row["id"])


def test_a_memes_tally_is_readable_by_anyone(client: TestClient, stack_settings: Settings) -> None:
    """The meme page shows the votes a meme has, not only the changes the live feed carries."""
    alice, bob = register(client, "alice"), register(client, "bob")
    client.cookies.clear()
    meme_id = insert_meme(stack_settings)
    assert client.get(f"/api/meme/{meme_id}/votes").json() == {
        "meme_id": meme_id,
        "up": 0,
        "down": 0,
        "score": 0,
    }
    vote(client, meme_id, 1, alice["headers"])
    vote(client, meme_id, -1, bob["headers"])
    vote(client, meme_id, 1, bob["headers"])
    tally = client.get(f"/api/meme/{meme_id}/votes")  # anonymous
    assert tally.status_code == 200
    assert tally.json() == {"meme_id": meme_id, "up": 2, "down": 0, "score": 2}
    assert client.get(f"/api/meme/{new_id()}/votes").status_code == 404
    deleted = insert_meme(stack_settings, status="deleted")
    assert client.get(f"/api/meme/{deleted}/votes").status_code == 404
