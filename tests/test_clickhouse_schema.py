"""The analytics schema on chDB: idempotent to apply, replay-safe, rollups that agree with raw rows.

chDB allows one data folder per process, so every test module of this process that opens chDB
uses the same folder, `<pytest basetemp>/chdb`, each in its own database, and closes its clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain.settings import PROJECT_ROOT, Settings
from sinks.clickhouse import EVENT_COLUMNS, EVENT_TYPES, apply_schema, chdb_location, get_client
from sinks.clickhouse.schema import TABLES, VIEWS, statements

DATABASE = "schema_test"


def chdb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB data folder of this pytest process."""
    return tmp_path_factory.getbasetemp() / "chdb"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url = f"chdb://{chdb_folder(tmp_path_factory)}"
    admin = get_client(url=url)
    admin.command(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin.command(f"CREATE DATABASE {DATABASE}")
    admin.close()
    ch = get_client(url=f"{url}?database={DATABASE}")
    try:
        yield ch
    finally:
        ch.close()


def row(event_id: str, event_type: str, ts: datetime, **values: Any) -> list[Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "meme_id": values.pop("meme_id", "m1"),
        "template_id": "drake",
        "category": "reaction",
        "user_id": "u1",
        "ts": ts,
        "render_ms": 0,
        "vote": 0,
        "sentiment": "",
        "moderation_label": "",
        "moderation_score": 0.0,
        "format": "",
        "bytes": 0,
    }
    base.update(values)
    return [base[c] for c in EVENT_COLUMNS]


def test_statements_create_tables_before_their_views() -> None:
    stmts = statements()
    assert len(stmts) == len(TABLES) + len(VIEWS)
    assert all("IF NOT EXISTS" in s for s in stmts)
    first = {
        name: next(i for i, s in enumerate(stmts) if f" {name}\n" in s or f" {name} " in s)
        for name in (*TABLES, *VIEWS)
    }
    assert first["events"] < first["events_per_minute"] < first["events_per_minute_mv"]
    assert first["engagement_per_minute"] < first["engagement_per_minute_mv"]


def test_apply_schema_is_idempotent(client: Any) -> None:
    apply_schema(client)
    apply_schema(client)
    names = {r[0] for r in client.query("SHOW TABLES").result_rows}
    assert set(TABLES) | set(VIEWS) <= names


def test_events_columns_and_engine(client: Any) -> None:
    apply_schema(client)
    types = dict(
        client.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
            "AND table = 'events'"
        ).result_rows
    )
    assert set(EVENT_COLUMNS) <= set(types)
    assert types["event_type"] == "LowCardinality(String)"
    assert types["ts"] == "DateTime64(3, 'UTC')"
    assert types["vote"] == "Int8"
    engine, create = client.query(
        "SELECT engine, create_table_query FROM system.tables "
        "WHERE database = currentDatabase() AND name = 'events'"
    ).result_rows[0]
    assert engine == "ReplacingMergeTree"
    assert "TTL toDateTime(ts) + toIntervalDay(90)" in create


def test_replayed_events_are_deduplicated_everywhere(client: Any) -> None:
    apply_schema(client)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    batch = [
        row("r1", "requested", now, sentiment="positive"),
        row(
            "d1",
            "rendered",
            now + timedelta(seconds=1),
            render_ms=120,
            format="png",
            bytes=50_000,
            sentiment="positive",
            moderation_label="ok",
            moderation_score=0.02,
        ),
        row("v1", "view", now + timedelta(seconds=2), user_id="u2"),
        row("v2", "view", now + timedelta(seconds=3), user_id="u3"),
        row("u1", "vote", now + timedelta(seconds=4), vote=1),
        row("u2", "vote", now + timedelta(seconds=5), vote=-1, user_id="u4"),
    ]
    for _ in range(3):  # at-least-once delivery: the same batch arrives three times
        client.insert("events", batch, column_names=list(EVENT_COLUMNS))

    raw = client.query("SELECT count() FROM events").result_rows[0][0]
    exact = client.query("SELECT count() FROM events FINAL").result_rows[0][0]
    assert raw == 18 and exact == 6
    client.command("OPTIMIZE TABLE events FINAL")
    assert client.query("SELECT count() FROM events").result_rows[0][0] == 6

    per_type = dict(
        client.query(
            "SELECT event_type, uniqMerge(events) FROM events_per_minute GROUP BY event_type"
        ).result_rows
    )
    assert per_type == {"requested": 1, "rendered": 1, "view": 2, "vote": 2}
    views, up, down, viewers = client.query(
        "SELECT uniqMerge(views), uniqMerge(upvotes), uniqMerge(downvotes), uniqMerge(viewers) "
        "FROM engagement_per_minute"
    ).result_rows[0]
    assert (views, up, down, viewers) == (2, 1, 1, 2)
    p50, _, p99 = client.query(
        "SELECT quantilesTDigestMerge(0.5, 0.95, 0.99)(render_ms) FROM events_per_minute "
        "WHERE event_type = 'rendered'"
    ).result_rows[0][0]
    assert p50 == pytest.approx(120) and p99 == pytest.approx(120)


def test_constraints_reject_unknown_event_types_and_votes(client: Any) -> None:
    apply_schema(client)
    now = datetime.now(UTC)
    with pytest.raises(Exception, match="known_event_type"):
        client.insert("events", [row("x1", "bogus", now)], column_names=list(EVENT_COLUMNS))
    with pytest.raises(Exception, match="vote_range"):
        client.insert("events", [row("x2", "vote", now, vote=5)], column_names=list(EVENT_COLUMNS))
    assert set(EVENT_TYPES) == {"requested", "rendered", "failed", "view", "vote", "deleted"}


def test_chdb_urls() -> None:
    settings = Settings(clickhouse_url="chdb://.stack/data/chdb")
    assert chdb_location(settings.clickhouse_url, settings) == (
        str(PROJECT_ROOT / ".stack/data/chdb"),
        None,
    )
    assert chdb_location("chdb:///var/lib/chdb?database=analytics") == (
        "/var/lib/chdb",
        "analytics",
    )
    assert chdb_location("chdb://memory") == (None, None)
    assert chdb_location("chdb://:memory:?database=x") == (None, "x")
    with pytest.raises(ValueError):
        chdb_location("http://localhost:8123")


def test_server_urls_go_to_clickhouse_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    import clickhouse_connect

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(clickhouse_connect, "get_client", lambda **kw: calls.append(kw) or "ok")
    url = "http://memestream:secret@clickhouse:8123/memestream"
    assert get_client(url=url) == "ok"
    assert calls == [{"dsn": url, "autogenerate_session_id": False}]
    with pytest.raises(ValueError, match="CLICKHOUSE_URL"):
        get_client(url="tcp://clickhouse:9000")
