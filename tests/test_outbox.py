"""The transactional outbox (api/outbox.py, sinks/postgres/outbox.py) against real PostgreSQL and
Kafka: a vote Kafka refuses is accepted, kept and published once Kafka takes it; a relay crash
between Kafka's ack and the delete publishes again, and consumers count the vote once; the
relays of two replicas share the rows without publishing one twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer
from fastapi.testclient import TestClient
from psycopg_pool import AsyncConnectionPool

from api import outbox
from api.app import create_app
from api.outbox import OutboxRelay
from domain.events import Vote
from domain.ids import new_id
from domain.settings import Settings
from memestream.testing.memes import insert_meme
from producers.producer import EventProducer
from producers.serialization import AvroCodec
from producers.topics import MEME_VOTES
from sinks.postgres.outbox import Claim, OutboxStore, stage
from sinks.postgres.pool import create_pool
from streams.trending.engine import TrendingEngine
from tests.data_helpers import kafka_tail, register

# Nothing listens on port 1: every produce is refused, as by a broker that is down.
REFUSED = {"kafka_bootstrap_servers": "127.0.0.1:1", "kafka_delivery_timeout_ms": 1000}


@pytest.fixture
def outbox_settings(stack_settings: Settings) -> Iterator[Settings]:
    """Settings whose connections stage into an outbox table of this test's own.

    Every API process on the shared stack (the session's API, other tests' apps) runs a relay
    on the shared `outbox` table and would publish this test's rows before its own relay
    could: the test's schema comes first on the search path, so `outbox` is its own table
    while users, memes and votes stay the shared ones.
    """
    schema = f"test_outbox_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.outbox (LIKE public.outbox INCLUDING ALL)")
        conn.execute(
            f"CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox"
            " FOR EACH STATEMENT EXECUTE FUNCTION public.outbox_notify()"
        )
    separator = "&" if "?" in stack_settings.database_url else "?"
    url = f"{stack_settings.database_url}{separator}options=-csearch_path%3D{schema}%2Cpublic"
    try:
        yield stack_settings.model_copy(update={"database_url": url})
    finally:
        with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
async def pool(outbox_settings: Settings) -> AsyncIterator[AsyncConnectionPool]:
    pool = create_pool(outbox_settings)
    await pool.open()
    yield pool
    await pool.close()


@pytest.fixture
def producer(stack_settings: Settings) -> Any:
    producer = EventProducer(stack_settings, client_id="test-outbox")
    yield producer
    producer.close()


def staged_rows(settings: Settings, meme_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.database_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "SELECT topic, event, attempts, last_error FROM outbox WHERE key = %s ORDER BY id",
            (meme_id.encode(),),
        ).fetchall()


def messages_for(consumer: Consumer, meme_ids: set[str], want: int, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    """(offset, Vote) of the messages keyed by one of `meme_ids`, until `want` or the timeout."""
    codec = AvroCodec()
    found: list[tuple[int, Vote]] = []
    deadline = time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        if message.key().decode() in meme_ids:
            event = codec.decode(message.value())
            assert isinstance(event, Vote)
            found.append((message.offset(), event))
    return found


async def stage_votes(pool: AsyncConnectionPool, votes: list[Vote]) -> None:
    async with pool.connection() as conn, conn.transaction():
        await stage(conn, [outbox.message(MEME_VOTES.name, v) for v in votes])


def test_a_vote_kafka_refuses_is_accepted_kept_and_published_when_kafka_is_back(
    outbox_settings: Settings, producer: EventProducer
) -> None:
    refused = outbox_settings.model_copy(update=REFUSED)
    meme_id = insert_meme(outbox_settings)
    with TestClient(create_app(refused)) as client:
        user = register(client, "ob")
        client.cookies.clear()
        answer = client.post(
            f"/api/meme/{meme_id}/vote", json={"value": 1}, headers=user["headers"]
        )
        assert answer.status_code == 200, answer.text  # PostgreSQL has it: accepted
        assert answer.json()["up"] == 1
        rows = staged_rows(outbox_settings, meme_id)
        assert [r["topic"] for r in rows] == [MEME_VOTES.name]
        # The app's own relay tries Kafka, is refused, and keeps the row.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and rows and rows[0]["attempts"] == 0:
            time.sleep(0.2)
            rows = staged_rows(outbox_settings, meme_id)
        assert len(rows) == 1 and rows[0]["attempts"] >= 1, rows
        assert "ProducerUnavailable" in rows[0]["last_error"]
    staged = AvroCodec().decode(rows[0]["event"])
    assert isinstance(staged, Vote) and (staged.user_id, staged.value) == (user["id"], 1)

    async def relay_with_kafka_back() -> int:
        pool = create_pool(outbox_settings)
        await pool.open()
        try:
            published, failed = await OutboxRelay(
                outbox_settings, OutboxStore(pool), producer
            ).drain()
        finally:
            await pool.close()
        assert failed == 0
        return published

    with kafka_tail(outbox_settings, MEME_VOTES.name) as tail:
        assert asyncio.run(relay_with_kafka_back()) >= 1
        found = messages_for(tail, {meme_id}, want=1)
    assert [e.event_id for _, e in found] == [staged.event_id]  # the staged event, as it was
    assert staged_rows(outbox_settings, meme_id) == []


async def test_a_relay_crash_after_the_ack_publishes_again_and_the_vote_counts_once(
    outbox_settings: Settings,
    pool: AsyncConnectionPool,
    producer: EventProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    meme_id, user_id = new_id(), new_id()
    vote = Vote(meme_id=meme_id, user_id=user_id, value=1)
    await stage_votes(pool, [vote])
    relay = OutboxRelay(outbox_settings, OutboxStore(pool), producer)

    async def crash(self: Claim, ids: Any) -> None:  # dies between Kafka's ack and the delete
        raise RuntimeError("relay killed")

    with kafka_tail(outbox_settings, MEME_VOTES.name) as tail:
        with monkeypatch.context() as patched:
            patched.setattr(Claim, "done", crash)
            with pytest.raises(RuntimeError, match="relay killed"):
                await relay.relay_once()
        assert len(staged_rows(outbox_settings, meme_id)) == 1  # the delete rolled back
        published, failed = await relay.drain()
        assert published >= 1 and failed == 0
        found = await asyncio.to_thread(messages_for, tail, {meme_id}, 2)
    assert staged_rows(outbox_settings, meme_id) == []
    assert [e.event_id for _, e in found] == [vote.event_id, vote.event_id]  # at least once

    # Downstream dedupe: the trending engine applies the copy as a stale vote.
    engine = TrendingEngine(view_weight=0.1, grace_s=120.0, now=time.time())
    for offset, event in found:
        engine.apply(event, topic=MEME_VOTES.name, partition=0, offset=offset, now=time.time())
    assert engine.memes[meme_id].net == 1
    assert engine.stats["votes"] == 1 and engine.stats["stale_vote"] == 1


async def test_two_replicas_relays_share_the_rows_and_publish_each_once(
    outbox_settings: Settings, pool: AsyncConnectionPool, producer: EventProducer
) -> None:
    memes = {new_id() for _ in range(20)}
    votes = [Vote(meme_id=m, user_id=new_id(), value=1) for m in sorted(memes) for _ in range(10)]
    small = outbox_settings.model_copy(update={"outbox_batch_size": 10})
    relays = [OutboxRelay(small, OutboxStore(pool), producer) for _ in range(2)]
    with kafka_tail(outbox_settings, MEME_VOTES.name) as tail:
        await stage_votes(pool, votes)
        results = await asyncio.gather(*(r.drain() for r in relays))
        found = await asyncio.to_thread(messages_for, tail, memes, len(votes))
        extra = await asyncio.to_thread(messages_for, tail, memes, 1, 2.0)
    assert all(failed == 0 for _, failed in results)
    assert all(r.published > 0 for r in relays), [r.published for r in relays]  # both worked
    counts = Counter(e.event_id for _, e in found + extra)
    assert set(counts) == {v.event_id for v in votes}
    assert set(counts.values()) == {1}, "no row published twice"
    assert all(staged_rows(outbox_settings, m) == [] for m in memes)
