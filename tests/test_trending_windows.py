"""The trending windows are declared once (domain/trending_windows.py): a window added there, as
the fixture below adds one, is scored by the worker, written to its own Redis set, served by
the API and spanned by both fallback stores (ClickHouse's minutes, PostgreSQL's days), with no
other file touched."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from domain.events import Vote
from domain.ids import new_id
from domain.settings import Settings
from domain.trending_windows import WINDOWS, UnknownWindow, Window
from sinks.postgres.trending import first_day
from sinks.redis.trending import meta_key, set_key, warm_key
from streams.trending.agents import TrendingWorker
from streams.trending.engine import TrendingEngine

FIVE_MINUTES = Window("5m", 300, 10, 75.0)
#: A Redis database of this module's own (the others' numbers are 10 to 15).
REDIS_DB = 9


def at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


@pytest.fixture
def five_minutes(monkeypatch: pytest.MonkeyPatch) -> Window:
    monkeypatch.setattr(WINDOWS, "windows", (*WINDOWS.windows, FIVE_MINUTES))
    return FIVE_MINUTES


def test_the_declared_windows() -> None:
    assert WINDOWS.names() == ("1h", "24h", "7d")
    assert [(w.minutes, w.days) for w in WINDOWS] == [(60, 1), (24 * 60, 1), (7 * 24 * 60, 7)]
    with pytest.raises(UnknownWindow):
        WINDOWS.get("2h")


def test_an_added_window_is_scored_and_spanned(five_minutes: Window) -> None:
    now = 1_800_000_000.0
    engine = TrendingEngine(view_weight=0.1, grace_s=120.0, now=now)
    assert engine.windows[-1] == five_minutes
    vote = Vote(meme_id=new_id(), user_id="ann", value=1, occurred_at=at(now - 60))
    engine.apply(vote, topic="meme.votes", partition=0, offset=0, now=now)
    state = engine.memes[vote.meme_id]
    assert len(state.buckets) == len(WINDOWS) == 4
    assert engine.score(state, 3, now) > 0
    assert five_minutes.minutes == 5  # what the API asks ClickHouse for
    today = date(2026, 12, 7)
    assert first_day("5m", today) == today - timedelta(days=1)


def test_a_record_from_before_the_window_gains_its_ring(five_minutes: Window) -> None:
    """Rings are stored by position: a record written with three windows loads with four."""
    now = 1_800_000_000.0
    old = TrendingEngine(view_weight=0.1, grace_s=120.0, now=now, windows=WINDOWS.windows[:3])
    meme_id = new_id()
    vote = Vote(meme_id=meme_id, user_id="ann", value=1, occurred_at=at(now - 60))
    old.apply(vote, topic="meme.votes", partition=0, offset=0, now=now)
    record = old.memes[meme_id]
    engine = TrendingEngine(view_weight=0.1, grace_s=120.0, now=now, load_meme=lambda _: record)
    assert len(engine.meme(meme_id, 0).buckets) == 4


@pytest.fixture
def settings(stack_settings: Settings) -> Settings:
    base = stack_settings.redis_url.rsplit("/", 1)[0]
    return stack_settings.model_copy(update={"redis_url": f"{base}/{REDIS_DB}"})


@pytest.fixture
def client(settings: Settings, five_minutes: Window) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


async def _worker_writes(settings: Settings, meme_id: str) -> list[str]:
    """The trending worker's batch path for one fresh vote: the sets it wrote the meme to."""
    app = SimpleNamespace(conf=SimpleNamespace(id="test-trending-windows"))
    worker = TrendingWorker(app, settings, table={})  # type: ignore[arg-type]  # all new
    worker.start()
    assert worker.sets is not None
    redis = worker.sets.redis
    keys = [set_key(w.name) for w in WINDOWS]
    await redis.delete(*keys)
    try:
        now = time.time()
        vote = Vote(meme_id=meme_id, user_id="ann", value=1)
        worker.engine.apply(vote, topic="meme.votes", partition=0, offset=0, now=now)
        assert await worker.publish(worker.engine.drain(), now)
        return [key for key in keys if await redis.zscore(key, meme_id) is not None]
    finally:
        await redis.aclose()
        await asyncio.to_thread(worker.close)


@pytest.mark.services
def test_an_added_window_reaches_redis_and_the_api(
    client: TestClient, settings: Settings, five_minutes: Window
) -> None:
    meme_id = new_id()
    written = asyncio.run(_worker_writes(settings, meme_id))
    assert set_key(five_minutes.name) in written and len(written) == len(WINDOWS)
    response = client.get("/api/meme/trending", params={"window": five_minutes.name})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["window"] == "5m" and body["source"] == "redis"
    assert [item["meme_id"] for item in body["items"]] == [meme_id]
    bad = client.get("/api/meme/trending", params={"window": "2h"})
    assert bad.status_code == 422 and bad.json()["type"].endswith("validation-error")
    assert "5m" in bad.json()["errors"][0]["msg"]
    # An empty set: the fallback stores answer for the new window's span.
    rdb = redis.Redis.from_url(settings.redis_url)
    try:
        rdb.delete(set_key("5m"), warm_key("5m"), meta_key("5m"))
        fallback = client.get("/api/meme/trending", params={"window": "5m"})
        assert fallback.status_code == 200, fallback.text
        assert fallback.json()["source"] in ("clickhouse", "postgres")
    finally:
        rdb.delete(set_key("5m"), warm_key("5m"), meta_key("5m"))
        rdb.close()
