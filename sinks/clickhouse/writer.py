"""Batched inserts of analytics events: flushed when `max_rows` are buffered or `max_age_s` old.

Idempotent by event id: a batch never holds one event twice, and the `events` table is a
ReplacingMergeTree keyed on (event_type, hour, event_id), so a replay after a crash merges away
(see schema.sql). `flush` runs the blocking insert in a thread and keeps the rows if it fails,
so the caller (the analytics agent) commits Kafka offsets only after a successful flush.
Each insert is a CLIENT span under the agent's batch span (none outside one), so a trace shows
the write, its size and a failed attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from clickhouse_connect.driver.client import Client

from domain.metrics import QUEUE_DEPTH, SINK_ERRORS, SINK_WRITE_DURATION
from domain.tracing import client_span, get_tracer
from sinks.clickhouse.schema import EVENT_COLUMNS

Row = Sequence[Any]
_EVENT_ID = EVENT_COLUMNS.index("event_id")
tracer = get_tracer(__name__)


class EventWriter:
    def __init__(
        self,
        client: Client,
        *,
        max_rows: int = 5000,
        max_age_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.clock = clock
        self._rows: dict[str, Row] = {}
        self._first_at: float | None = None
        self._lock = asyncio.Lock()
        self._depth = QUEUE_DEPTH.labels(queue="analytics")

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row: Row) -> None:
        if len(row) != len(EVENT_COLUMNS):
            raise ValueError(f"a row has {len(EVENT_COLUMNS)} columns, got {len(row)}")
        if not self._rows:
            self._first_at = self.clock()
        if row[_EVENT_ID] not in self._rows:
            self._depth.inc()
        self._rows[row[_EVENT_ID]] = row

    def due(self) -> bool:
        if not self._rows or self._first_at is None:
            return False
        age = self.clock() - self._first_at
        return len(self._rows) >= self.max_rows or age >= self.max_age_s

    async def flush(self) -> int:
        """Writes the buffer; returns rows written. On error the rows stay for the next try."""
        async with self._lock:
            if not self._rows:
                return 0
            rows = list(self._rows.values())
            started = time.perf_counter()
            attributes = {
                "db.system.name": "clickhouse",
                "db.operation.name": "INSERT",
                "db.collection.name": "events",
                "db.operation.batch.size": len(rows),
            }
            try:
                with client_span("clickhouse insert events", tracer=tracer, attributes=attributes):
                    await asyncio.to_thread(self.insert, rows)
            except Exception:
                SINK_ERRORS.labels(sink="clickhouse").inc()
                raise
            SINK_WRITE_DURATION.labels(sink="clickhouse", operation="insert").observe(
                time.perf_counter() - started
            )
            self._rows.clear()
            self._first_at = None
            self._depth.dec(len(rows))
            return len(rows)

    def insert(self, rows: Sequence[Row]) -> None:
        self.client.insert("events", rows, column_names=list(EVENT_COLUMNS))
