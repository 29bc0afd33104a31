"""The replay's ledger against the real PostgreSQL and Kafka: what it counts lost and twice."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from confluent_kafka import Producer

from domain.events import MemeRendered, RenderStatus
from domain.ids import id_time, new_id
from domain.settings import Settings
from loadgen.accounts import USERNAME_PREFIX, provision, revoke
from loadgen.ledger import Ledger, check, count_keys
from producers.serialization import AvroCodec
from tests.feed_support import private_topic

pytestmark = pytest.mark.services


def _insert_meme(conn: psycopg.Connection, meme_id: str, status: str, shift_s: float = 0) -> None:
    created = id_time(meme_id) + timedelta(seconds=shift_s)
    rendered = created + timedelta(seconds=0.4) if status == "rendered" else None
    conn.execute(
        "INSERT INTO memes (id, created_at, template_id, texts, status, rendered_at)"
        " VALUES (%s, %s, 'drake', ARRAY['ledger'], %s, %s)",
        (meme_id, created, status, rendered),
    )


@pytest.fixture
def topics(stack_settings: Settings) -> Iterator[tuple[str, str]]:
    with private_topic(stack_settings) as rendered, private_topic(stack_settings) as votes:
        yield rendered, votes


def _produce(settings: Settings, topic: str, keys: list[str], values: Sequence[bytes] = ()) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    for key, value in zip(keys, [*values, *[b"{}"] * (len(keys) - len(values))], strict=True):
        producer.produce(topic, key=key.encode(), value=value)
    assert producer.flush(30) == 0


def _rendered(settings: Settings, meme_id: str, event_id: str | None = None) -> bytes:
    event = MemeRendered(
        meme_id=meme_id,
        template_id="drake",
        status=RenderStatus.RENDERED,
        variants=[],
        render_ms=1.0,
        requested_at=id_time(meme_id),
        **({"event_id": event_id} if event_id else {}),
    )
    return AvroCodec.from_settings(settings).encode(event)


async def test_the_ledger_counts_what_postgres_and_kafka_lost_or_doubled(
    stack_settings: Settings, topics: tuple[str, str]
) -> None:
    rendered_topic, votes_topic = topics
    started = datetime.now(UTC) - timedelta(seconds=1)
    kept, late, never, doubled, twice = (new_id() for _ in range(5))
    voter, other, unanswered = (f"ledger{uuid.uuid4().hex[:6]}" for _ in range(3))
    accounts = await provision(stack_settings, [voter, other, unanswered])
    memes = [kept, late, never, doubled, twice]
    try:
        with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
            _insert_meme(conn, kept, "rendered")
            _insert_meme(conn, late, "pending")
            _insert_meme(conn, doubled, "failed")
            _insert_meme(conn, doubled, "rendered", shift_s=1)  # a second row of the same id
            _insert_meme(conn, twice, "rendered")
            users = dict(
                conn.execute(
                    "SELECT username, id FROM users WHERE username = ANY(%s)",
                    ([USERNAME_PREFIX + u for u in (voter, other, unanswered)],),
                ).fetchall()
            )
            for meme, user in ((kept, voter), (twice, unanswered)):
                conn.execute(
                    "INSERT INTO votes (meme_id, user_id, meme_created_at, value)"
                    " VALUES (%s, %s, %s, -1)",
                    (meme, users[USERNAME_PREFIX + user], id_time(meme)),
                )
        # `kept`'s render redelivered (the same event id twice: absorbed), `twice` rendered
        # twice (two ids), `late`'s value undecodable: counted once, as its own id.
        kept_render = _rendered(stack_settings, kept, new_id())
        _produce(
            stack_settings,
            rendered_topic,
            [kept, kept, twice, twice, late],
            [
                kept_render,
                kept_render,
                _rendered(stack_settings, twice),
                _rendered(stack_settings, twice),
                b"{}",
            ],
        )
        _produce(stack_settings, votes_topic, [kept, kept, kept, kept, twice])
        ledger = Ledger(
            started_at=started,
            memes=memes,
            votes=[
                (kept, voter, 1),
                (kept, voter, -1),  # the last answer is in PostgreSQL: kept
                (kept, other, 1),  # never written: lost
                (twice, voter, 0),  # withdrawn, so no row is right
                (twice, unanswered, 1),  # then -1 committed, its answer never came: kept
            ],
        )
        ledger.sent_votes = [*ledger.votes, (twice, unanswered, -1)]

        def render_late() -> None:
            time.sleep(1.5)
            with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE memes SET status = 'rendered', rendered_at = now()"
                    " WHERE id = %s AND created_at = %s",
                    (late, id_time(late)),
                )

        worker = threading.Thread(target=render_late)
        worker.start()
        result = await check(
            stack_settings,
            ledger,
            wait_s=30,
            settle_s=4,
            rendered_topic=rendered_topic,
            votes_topic=votes_topic,
        )
        worker.join()
        assert result.lost_memes == [never], "the late render was waited for"
        assert result.lost_votes == [(kept, other)]
        assert result.lost == 2
        assert result.duplicated_rows == 1  # `doubled`
        assert result.rendered_twice == 1  # `twice`
        assert result.rendered_redelivered == 1  # `kept`: one copy of the same event
        assert result.vote_events_excess == 1  # 4 events of `kept` for 3 votes sent
        assert result.duplicated_effects == 3
        assert not result.drained, "`never` has no row, so the drain gave up after settling"
        assert result.statuses == {"rendered": 3, "failed": 1}
        summary = result.as_dict()
        assert summary["lost"] == 2 and summary["accepted_votes"] == 5
        assert summary["lost_memes_no_row"] == 1 and summary["lost_memes_pending"] == 0
    finally:
        with psycopg.connect(stack_settings.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM votes WHERE meme_id = ANY(%s::uuid[])", (memes,))
            conn.execute("DELETE FROM memes WHERE id = ANY(%s::uuid[])", (memes,))
        await revoke(stack_settings, accounts)


def test_vote_events_beyond_the_accepted_votes_are_duplicates(
    stack_settings: Settings, topics: tuple[str, str]
) -> None:
    _, votes_topic = topics
    started = datetime.now(UTC) - timedelta(seconds=1)
    meme = new_id()
    _produce(stack_settings, votes_topic, [meme, meme, new_id()])
    counts = count_keys(stack_settings, votes_topic, started, {meme})
    assert counts == {meme: 2}
    assert (
        count_keys(stack_settings, votes_topic, datetime.now(UTC) + timedelta(hours=1), {meme})
        == {}
    )
