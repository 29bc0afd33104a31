"""Analytics on chDB: event rows, batched idempotent writes, the API's queries over the rollups.

chDB allows one data folder per process: this module uses the pytest process' folder
(`<basetemp>/chdb`, shared with tests/test_clickhouse_schema.py) in a database of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.events import (
    ImageVariant,
    MemeDeleted,
    MemeRendered,
    MemeRequested,
    RenderStatus,
    View,
    Vote,
)
from domain.ids import new_id
from domain.templates import TemplateCatalog
from sinks.clickhouse import EVENT_COLUMNS, apply_schema, get_client
from sinks.clickhouse.finalize import (
    bucket_of,
    ensure_tables,
    minute_of,
    percentiles,
    ranges,
    recompute,
)
from sinks.clickhouse.queries import Window, run
from sinks.clickhouse.writer import EventWriter
from streams.analytics import to_row

DATABASE = "analytics_test"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url = f"chdb://{tmp_path_factory.getbasetemp() / 'chdb'}"
    admin = get_client(url=url)
    admin.command(f"DROP DATABASE IF EXISTS {DATABASE}")
    admin.command(f"CREATE DATABASE {DATABASE}")
    admin.close()
    ch = get_client(url=f"{url}?database={DATABASE}")
    apply_schema(ch)
    ensure_tables(ch)
    try:
        yield ch
    finally:
        ch.close()


def rendered(request: MemeRequested, ms: float, ok: bool = True) -> MemeRendered:
    variants = (
        [ImageVariant(size="full", key="k", width=1, height=1, bytes=2048, media_type="image/png")]
        if ok
        else []
    )
    return MemeRendered.for_request(
        request,
        status=RenderStatus.RENDERED if ok else RenderStatus.FAILED,
        variants=variants,
        render_ms=ms,
        error=None if ok else "bad",
    )


def test_rows_of_every_event_type() -> None:
    catalog = TemplateCatalog.default()
    request = MemeRequested(
        meme_id=new_id(), template_id="drake", texts=["a"], format="png", user_id="u1"
    )
    rows = {
        "requested": to_row(request, catalog),
        "rendered": to_row(rendered(request, 12.6), catalog),
        "failed": to_row(rendered(request, 0, ok=False), catalog),
        "vote": to_row(Vote(meme_id=request.meme_id, user_id="u2", value=-1), catalog),
        "view": to_row(View(meme_id=request.meme_id), catalog),
        "deleted": to_row(MemeDeleted(meme_id=request.meme_id, deleted_by="u1"), catalog),
    }
    for kind, row in rows.items():
        values = dict(zip(EVENT_COLUMNS, row, strict=True))
        assert values["event_type"] == kind and values["meme_id"] == request.meme_id
    as_dict = {k: dict(zip(EVENT_COLUMNS, r, strict=True)) for k, r in rows.items()}
    assert as_dict["requested"]["category"] == catalog.get("drake").category
    assert as_dict["rendered"]["render_ms"] == 13 and as_dict["rendered"]["bytes"] == 2048
    assert as_dict["rendered"]["format"] == "png"
    assert as_dict["vote"]["vote"] == -1 and as_dict["deleted"]["user_id"] == "u1"


async def test_writer_flushes_by_size_and_by_age() -> None:
    now = [0.0]

    class Recorder(EventWriter):
        def __init__(self) -> None:
            super().__init__(None, max_rows=3, max_age_s=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
            self.batches: list[int] = []

        def insert(self, rows: Any) -> None:
            self.batches.append(len(rows))

    writer = Recorder()
    catalog = TemplateCatalog.default()
    view = View(meme_id=new_id())
    writer.add(to_row(view, catalog))
    writer.add(to_row(view, catalog))  # the same event twice is one row
    assert len(writer) == 1 and not writer.due()
    now[0] = 1.5
    assert writer.due()
    assert await writer.flush() == 1
    for _ in range(3):
        writer.add(to_row(View(meme_id=new_id()), catalog))
    assert writer.due() and await writer.flush() == 3
    assert writer.batches == [1, 3] and await writer.flush() == 0


async def test_replayed_batches_never_double_count(client: Any) -> None:
    catalog = TemplateCatalog.default()
    writer = EventWriter(client, max_rows=100)
    now = datetime.now(UTC) - timedelta(minutes=2)
    events: list[Any] = []
    for i in range(10):
        request = MemeRequested(
            meme_id=new_id(),
            template_id="drake" if i < 7 else "classic",
            texts=["x"],
            occurred_at=now,
        )
        events += [request, rendered(request, 100.0 + i * 10, ok=i < 9)]
    meme = events[0].meme_id
    events += [View(meme_id=meme, occurred_at=now) for _ in range(4)]
    events += [Vote(meme_id=meme, user_id=f"u{i}", value=1, occurred_at=now) for i in range(3)]
    for _ in range(2):  # a crash before the commit replays the whole batch
        for event in events:
            writer.add(to_row(event, catalog))
        await writer.flush()
        recompute(client, {minute_of(e.occurred_at) for e in events})
    raw = client.query("SELECT count() FROM events FINAL").result_rows[0][0]
    assert raw == len(events)
    window = {"minutes": 10, "step_minutes": 10}
    rate = run(client, "generation-rate", window)
    assert sum(r["requested"] for r in rate) == 10
    assert sum(r["rendered"] for r in rate) == 9 and sum(r["failed"] for r in rate) == 1
    top = run(client, "top-templates", {**window, "limit": 5})
    assert [(t["template_id"], t["memes"]) for t in top] == [("drake", 7), ("classic", 2)]
    latency = run(client, "render-latency", window)
    assert sum(r["renders"] for r in latency) == 9
    # Renders took 100..180 ms: p50 ~140, p95 ~180, within the histogram's 5 % buckets.
    assert 130 <= latency[0]["p50_ms"] <= 150 and 170 <= latency[0]["p95_ms"] <= 190
    engagement = run(client, "engagement", {**window, "meme_id": meme})
    assert sum(r["views"] for r in engagement) == 4 and sum(r["upvotes"] for r in engagement) == 3
    assert isinstance(rate[0]["bucket"], str)
    assert datetime.fromisoformat(rate[0]["bucket"]).utcoffset() == timedelta(0)  # UTC, said so


def test_windows_are_validated() -> None:
    with pytest.raises(ValueError):
        Window(0)
    with pytest.raises(ValueError):
        Window(10, 20)


def test_minutes_coalesce_into_ranges() -> None:
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    minutes = [t0, t0 + timedelta(minutes=1), t0 + timedelta(minutes=5), t0]
    assert ranges(minutes) == [
        (t0, t0 + timedelta(minutes=2)),
        (t0 + timedelta(minutes=5), t0 + timedelta(minutes=6)),
    ]
    assert minute_of(t0 + timedelta(seconds=59, microseconds=5)) == t0


def test_histogram_percentiles_are_within_the_bucket_width() -> None:
    samples = list(range(1, 1001))
    counts: dict[int, int] = {}
    for ms in samples:
        counts[bucket_of(ms)] = counts.get(bucket_of(ms), 0) + 1
    p50, p95, p99 = percentiles(list(counts), list(counts.values()))
    for value, exact in ((p50, 500), (p95, 950), (p99, 990)):
        assert value is not None and abs(value - exact) / exact < 0.05
    assert percentiles([], []) == [None, None, None]
