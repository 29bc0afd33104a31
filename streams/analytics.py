"""The analytics agent: every event of `roles.ANALYTICS`' topics -> ClickHouse, in batches.

Batches are bounded by size (`ANALYTICS_BATCH_SIZE`) and time (`ANALYTICS_FLUSH_INTERVAL_S`);
Faust's `take_events` acknowledges a batch's offsets only after the loop body returns, i.e. after
the insert succeeded, so a crash replays the batch and the ReplacingMergeTree dedupes it by
event id. An undecodable message goes to its topic's DLQ; an insert that fails is retried until
ClickHouse is back (the partition waits, nothing is lost).

chDB ownership: chDB allows one process per data folder, so with a `chdb://` CLICKHOUSE_URL this
worker owns the folder and serves the API's analytics reads on its Faust web server
(`GET /analytics/{query}` on 127.0.0.1, the port `settings.worker_web_port` + the role's index).
With an `http(s)://` URL the API queries the ClickHouse server itself and this route is unused.

After each batch the minutes it touched are marked; every `FINALIZE_EVERY_S` their exact counts
are recomputed from `events` (`sinks.clickhouse.finalize`), the tables the API's queries read,
so analytics lag the stream by a few seconds.

Tracing: one CONSUMER span per batch (`analytics process`, the batch's one insert under it as
`clickhouse insert events`), linked to the producer spans in the messages' headers, so a
request's trace id reaches the insert that stored its event (domain/tracing.py).

Side duties on `meme.rendered` and `meme.deleted`, done before the batch is written because
they are cheap and latency-sensitive: drop the meme's cache entry, keep the capped recent-memes
list, and publish a deletion on the meme's Redis pub/sub channel (a render's status is published
by the render worker, which knows it first; an admin's review decision by the review route);
every 60 s it refreshes PostgreSQL's `trending_daily` view.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import faust
from tenacity import AsyncRetrying, before_sleep_log, stop_never, wait_exponential

from domain.events import (
    Event,
    MemeDeleted,
    MemeRendered,
    MemeRequested,
    RenderStatus,
    View,
    Vote,
)
from domain.metrics import count_consumed
from domain.settings import Settings
from domain.templates import TemplateCatalog
from domain.tracing import consume_batch_span, get_tracer
from producers.producer import EventProducer
from producers.roles import ANALYTICS
from producers.serialization import SerializationError
from sinks.clickhouse import apply_schema, get_client
from sinks.clickhouse.finalize import ensure_tables, minute_of, recompute
from sinks.clickhouse.queries import QUERIES, run
from sinks.clickhouse.writer import EventWriter
from sinks.postgres.pool import create_pool
from sinks.postgres.votes import refresh_trending_daily
from sinks.redis import REDIS_ERRORS, create_redis
from sinks.redis.cache import MemeCache
from sinks.redis.recent import RecentMemes
from sinks.redis.status import publish_status
from streams.dlq import dead_letter_message
from streams.schema_wait import decode_holding

log = logging.getLogger(__name__)
tracer = get_tracer(__name__)
TRENDING_REFRESH_S = 60.0
FINALIZE_EVERY_S = 1.0


def to_row(event: Event, catalog: TemplateCatalog) -> list[Any]:
    """The `events` row of one event, in `EVENT_COLUMNS` order."""
    template_id = getattr(event, "template_id", None) or ""
    category = catalog.get(template_id).category if template_id in catalog else ""
    user_id = getattr(event, "user_id", None) or ""
    render_ms = vote = size = 0
    fmt = sentiment = moderation = ""
    moderation_score = 0.0
    match event:
        case MemeRequested():
            kind = "requested"
            fmt = event.format or ""
        case MemeRendered():
            kind = "rendered" if event.status is RenderStatus.RENDERED else "failed"
            render_ms = max(0, round(event.render_ms))
            full = next((v for v in event.variants if v.size == "full"), None)
            if full is not None:
                size = full.bytes
                fmt = full.media_type.removeprefix("image/")
            # MemeRendered v2 (domain/ai): ok / flagged / rejected, and the caption's sentiment.
            sentiment = event.sentiment or ""
            moderation = event.moderation or ""
            moderation_score = float(event.moderation_score or 0.0)
        case Vote():
            kind = "vote"
            vote = max(-1, min(1, event.value))
        case View():
            kind = "view"
        case MemeDeleted():
            kind = "deleted"
            user_id = event.deleted_by or ""
        case _:
            raise TypeError(f"no analytics row for {type(event).__name__}")
    return [
        event.event_id,
        kind,
        event.meme_id,
        template_id,
        category,
        user_id,
        event.occurred_at,
        render_ms,
        vote,
        sentiment,
        moderation,
        moderation_score,
        fmt,
        size,
    ]


class AnalyticsSink:
    """ClickHouse writer plus the Redis side duties, built inside the worker's loop."""

    def __init__(
        self, settings: Settings, producer: EventProducer, group: str | None = None
    ) -> None:
        self.settings = settings
        self.producer = producer
        #: The full consumer group id (the app's `conf.id`), as the lag gauge and KEDA name it.
        self.group = group or ANALYTICS.group_id_for(settings.consumer_group_prefix)
        self.catalog = TemplateCatalog.default()
        self.client = get_client(settings)
        apply_schema(self.client)
        ensure_tables(self.client)
        self.dirty: set[datetime] = set()
        self.writer = EventWriter(
            self.client,
            max_rows=settings.analytics_batch_size,
            max_age_s=settings.analytics_flush_interval_s,
        )
        self.redis = create_redis(settings)
        self.cache = MemeCache(self.redis, settings.meme_cache_ttl_s)
        self.recent = RecentMemes(self.redis, settings.recent_memes_max)
        # One chDB session: inserts, recomputations and queries take turns.
        self.client_lock = asyncio.Lock()

    async def handle(self, events: Sequence[faust.EventT[bytes]]) -> None:
        """One CONSUMER span per insert batch (each call flushes once), linked to the messages'
        producer spans (capped), so a request's trace reaches the insert that stored it."""
        with consume_batch_span(
            "analytics",
            (item.message.headers for item in events),
            count=len(events),
            group=self.group,
            tracer=tracer,
        ):
            await self._handle(events)

    async def _handle(self, events: Sequence[faust.EventT[bytes]]) -> None:
        decoded: list[Event] = []
        minutes: set[datetime] = set()
        count_consumed(self.group, (item.message.topic for item in events))
        for item in events:
            message = item.message
            try:
                event = await decode_holding(self.producer.codec, item.value)
                if isinstance(event, MemeRendered) and event.reviewed:
                    # An admin's decision on a meme whose render is counted already: a second
                    # `rendered` or `failed` row would count it twice. Side effects only.
                    decoded.append(event)
                    continue
                row = to_row(event, self.catalog)
            except (SerializationError, TypeError, ValueError) as exc:
                await dead_letter_message(self.producer, exc, message, group=self.group)
                continue
            self.writer.add(row)
            decoded.append(event)
            minutes.add(minute_of(event.occurred_at))
        await self.side_effects(decoded)
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=5.0),
            stop=stop_never,
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        ):
            with attempt:
                async with self.client_lock:
                    await self.writer.flush()
        self.dirty |= minutes

    async def finalize(self) -> int:
        """Recomputes the exact counts of the minutes written since the last call."""
        if not self.dirty:
            return 0
        minutes, self.dirty = self.dirty, set()
        try:
            async with self.client_lock:
                return await asyncio.to_thread(recompute, self.client, minutes)
        except Exception:
            self.dirty |= minutes  # retried on the next tick
            raise

    async def side_effects(self, events: Sequence[Event]) -> None:
        rendered = [e for e in events if isinstance(e, MemeRendered)]
        deleted = [e for e in events if isinstance(e, MemeDeleted)]
        try:
            for event in rendered:
                await self.cache.invalidate(event.meme_id)
            await self.recent.push(
                *(e.meme_id for e in rendered if e.status is RenderStatus.RENDERED)
            )
            for event in deleted:
                await self.cache.invalidate(event.meme_id)
                await self.recent.remove(event.meme_id)
                await publish_status(self.redis, event.meme_id, "deleted")
        except REDIS_ERRORS as exc:  # derived state: rebuilt later, never blocks analytics
            log.warning("redis side effects skipped: %s", exc)

    async def query(self, name: str, args: dict[str, Any]) -> list[dict[str, Any]]:
        async with self.client_lock:
            return await asyncio.to_thread(run, self.client, name, args)

    async def close(self) -> None:
        try:
            await self.writer.flush()
            await self.finalize()
        finally:
            self.client.close()
            await self.redis.aclose()


def register(app: faust.App, settings: Settings) -> None:
    topic = app.topic(*ANALYTICS.topics, key_serializer="raw", value_serializer="raw")
    holder: dict[str, AnalyticsSink] = {}
    building = asyncio.Lock()

    async def sink() -> AnalyticsSink:
        """Built once, on first use (a message or a query), inside the worker's loop."""
        async with building:
            if "sink" not in holder:
                producer = EventProducer(settings, client_id=f"{app.conf.id}-producer")
                holder["sink"] = await asyncio.to_thread(
                    AnalyticsSink, settings, producer, app.conf.id
                )
        return holder["sink"]

    @app.on_before_shutdown.connect
    def close_sink(app: faust.App, **_: Any) -> None:
        if "sink" in holder:
            holder["sink"].producer.close()

    @app.agent(topic, concurrency=1)
    async def analytics(stream: faust.StreamT[bytes]) -> None:
        writer = await sink()
        async for events in stream.take_events(
            settings.analytics_batch_size, within=settings.analytics_flush_interval_s
        ):
            await writer.handle(events)

    @app.timer(FINALIZE_EVERY_S)
    async def finalize_counts() -> None:
        if "sink" in holder:
            try:
                await holder["sink"].finalize()
            except Exception as exc:
                log.warning("analytics counts not recomputed yet: %s", exc)

    @app.timer(TRENDING_REFRESH_S)
    async def refresh_trending() -> None:
        pool = create_pool(settings)
        try:
            await pool.open(wait=True, timeout=5.0)
            await refresh_trending_daily(pool)
        except Exception as exc:
            log.warning("trending_daily refresh failed: %s", exc)
        finally:
            await pool.close()

    @app.page("/analytics/{name}/")
    async def analytics_query(web: Any, request: Any, name: str) -> Any:
        if name not in QUERIES:
            return web.json({"error": f"unknown query {name!r}"}, status=404)
        try:
            rows = await (await sink()).query(name, dict(request.query))
        except ValueError as exc:
            return web.json({"error": str(exc)}, status=422)
        return web.json({"rows": rows})
