"""The render agent: `meme.requests` -> Pillow in a process pool -> storage, PostgreSQL,
the meme's status on Redis pub/sub, `meme.rendered` and `meme.feed`.

At-least-once: the input offset is committed only after every output is stored, and
each output is idempotent on the meme id (same object keys, an upsert, derived event
ids), so a crash or replay never duplicates a meme. A bad message goes to the DLQ and
a bad render becomes a `failed` meme; store outages are retried until the store is
back, which holds the partition rather than losing the request.

The status (`rendered` or `failed`) is published on `meme-status:<id>` (sinks/redis/status.py)
by this worker, which knows it first, as soon as PostgreSQL holds it: a client waiting on
`POST /api/meme/generate?wait=` wakes and reads the row. Pub/sub is fire-and-forget and the
waiter also polls PostgreSQL, so a failed publish is logged and the render goes on (a Redis that
is down costs it at most the client's 0.5 s socket timeout, sinks/redis/client.py).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faust
import psycopg
import urllib3
from psycopg_pool import PoolTimeout
from redis.asyncio import Redis
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
)

from domain.events import (
    FeedEvent,
    ImageVariant,
    InvalidEvent,
    MemeRendered,
    MemeRequested,
    RenderStatus,
)
from domain.logs import bound_request_id, request_id_from_headers
from domain.metrics import (
    EVENT_PROCESSING_DURATION,
    EVENTS_CONSUMED,
    GENERATION_LATENCY,
    MEMES_GENERATED,
    RENDER_DURATION,
)
from domain.rendering import (
    RenderedMeme,
    RenderError,
    RenderOptions,
    render_meme,
    render_upload,
)
from domain.rendering.errors import InvalidOptions
from domain.rendering.validation import check_request
from domain.settings import ImageQuality, Settings
from domain.templates import TemplateCatalog
from domain.tracing import consume_span, get_tracer
from producers.producer import EventProducer, ProducerUnavailable
from producers.roles import RENDER
from producers.serialization import SerializationError
from producers.topics import MEME_FEED, MEME_RENDERED, MEME_REQUESTS
from sinks.postgres.memes import MemeRepository
from sinks.postgres.pool import create_pool
from sinks.postgres.template_lookup import TemplateLookup
from sinks.postgres.templates import TemplateRepository
from sinks.redis import REDIS_ERRORS, create_redis
from sinks.redis.status import publish_status
from sinks.storage import ObjectStore, object_store
from sinks.storage.base import ObjectNotFound, meme_key
from streams.dlq import dead_letter, message_headers
from streams.moderation import Checked, ModerationStep
from streams.schema_wait import decode_as_holding

log = logging.getLogger(__name__)
tracer = get_tracer(__name__)
# Every outcome exported from the start at 0: the failure-ratio alert and the dashboard's
# generation rate read 0 rather than "no data" until the first failed or held-back meme.
for _status in (*RenderStatus, "flagged", "rejected"):  # domain.events.HELD_BACK
    MEMES_GENERATED.labels(status=str(_status))

# Only a store that is down or slow is waited out (holding the partition); any other error
# is a property of the message and sends it to the DLQ instead of retrying forever.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    PoolTimeout,
    urllib3.exceptions.HTTPError,
    OSError,  # connection refused or reset, timeouts, a full disk under the object folder
)

_INFRA_RETRY = {
    "wait": wait_exponential(multiplier=0.2, max=5.0),
    "stop": stop_never,
    "retry": retry_if_exception_type(TRANSIENT_ERRORS),
    "before_sleep": before_sleep_log(log, logging.WARNING),
    "reraise": True,
}
_KAFKA_RETRY = _INFRA_RETRY | {"retry": retry_if_exception_type(ProducerUnavailable)}


def warm_up() -> int:
    """Runs once in each pool process so the first real render pays no import cost."""
    from domain.templates import TemplateCatalog

    return len(TemplateCatalog.default().all())


class RenderPoolClosed(asyncio.CancelledError):
    """The worker is stopping: the render did not happen and must not be recorded as failed.

    A cancellation, not an error: `render()` turns errors into a `failed` meme, which would make
    every meme in flight at a shutdown (a deploy, a scale-down) fail for good. Cancelled, the
    event is not acknowledged and the next worker renders it (a load run's stop showed it)."""


class RenderPool:
    """A process pool that is rebuilt if a render kills its process."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.closed = False
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        return ProcessPoolExecutor(self.workers, mp_context=context)

    async def warm(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, warm_up) for _ in range(self.workers))
        )

    async def render(
        self, template_id: str, texts: list[str], options: RenderOptions
    ) -> RenderedMeme:
        return await self._run(partial(render_meme, template_id, texts, options))

    async def render_upload(
        self, image: bytes, boxes: list[dict[str, Any]], texts: list[str], options: RenderOptions
    ) -> RenderedMeme:
        """An uploaded template: its stored image and the boxes its uploader defined."""
        return await self._run(partial(render_upload, image, boxes, options, texts=texts))

    async def _run(self, call: Callable[[], RenderedMeme]) -> RenderedMeme:
        """Runs a render in the pool; a process the input killed is replaced."""
        loop = asyncio.get_running_loop()
        if self.closed:
            raise RenderPoolClosed("the render pool is closed")
        try:
            return await loop.run_in_executor(self._executor, call)
        except BrokenProcessPool:
            if self.closed:
                raise RenderPoolClosed("the render pool closed during the render") from None
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new()
            raise RenderError("the renderer crashed on this input") from None
        except RuntimeError:  # "cannot schedule new futures after shutdown"
            if self.closed:
                raise RenderPoolClosed("the render pool closed before the render") from None
            raise

    def close(self) -> None:
        self.closed = True
        self._executor.shutdown(wait=True, cancel_futures=True)


class RenderPipeline:
    def __init__(
        self,
        settings: Settings,
        producer: EventProducer,
        memes: MemeRepository,
        storage: ObjectStore,
        pool: RenderPool,
        redis: Redis,
        moderation: ModerationStep | None = None,
        templates: TemplateRepository | None = None,
    ) -> None:
        self.settings = settings
        self.producer = producer
        self.memes = memes
        self.storage = storage
        self.pool = pool
        #: Where the meme's status is published (pub/sub only: no state of this worker's).
        self.redis = redis
        self.catalog = TemplateCatalog.default()
        # Uploaded templates live in PostgreSQL and object storage, not in `templates/`: the
        # API validated the request with the same lookup (sinks/postgres/template_lookup.py).
        self.templates = TemplateLookup(self.catalog, templates)
        # Text before rendering, image before storing (streams/moderation.py); None: off.
        self.moderation = moderation

    def options(self, request: MemeRequested) -> RenderOptions:
        try:
            quality = (
                ImageQuality(request.quality) if request.quality else self.settings.image_quality
            )
        except ValueError as exc:
            raise InvalidOptions(f"unknown quality {request.quality[:32]!r}") from exc
        boxes = None
        if request.boxes is not None:
            boxes = tuple((b.x, b.y, b.width, b.height) for b in request.boxes)
        return RenderOptions(
            format=request.format,
            quality=quality,
            transform=tuple(request.transform),
            boxes=boxes,
            filters=tuple(request.filters),
            # The cap uploads were checked against (MAX_FRAMES), from this worker's settings.
            max_frames=self.settings.max_frames,
        )

    async def handle(
        self,
        value: bytes | None,
        *,
        key: bytes | None,
        partition: int,
        offset: int,
        headers: list[tuple[str, bytes]],
    ) -> MemeRendered | None:
        """One request, under the API's request id and as a child span of its produce, so a
        generation's logs share one id and its spans one trace."""
        attributes = {"messaging.destination.partition.id": str(partition), "offset": offset}
        with (
            bound_request_id(request_id_from_headers(headers)),
            consume_span(MEME_REQUESTS.name, headers, tracer=tracer, attributes=attributes),
        ):
            return await self._handle(
                value, key=key, partition=partition, offset=offset, headers=headers
            )

    async def _handle(
        self,
        value: bytes | None,
        *,
        key: bytes | None,
        partition: int,
        offset: int,
        headers: list[tuple[str, bytes]],
    ) -> MemeRendered | None:
        outcome: MemeRendered | None = None
        try:
            request = await decode_as_holding(self.producer.codec, value, MemeRequested)
            request.validate()
            refused = _refusal(request)
            outcome = await self._process(request, refused)
            if refused is None:
                return outcome
            # Refused by the API's validator (an event that skipped the API): a failed meme
            # with the reason for its client, and the message parked for its operator.
            error: Exception = refused
        except (SerializationError, InvalidEvent, psycopg.DataError) as exc:
            error = exc
        except Exception as exc:  # a bug must park one message, never kill the worker
            log.exception("unexpected error on %s[%d]@%d", MEME_REQUESTS.name, partition, offset)
            error = exc
        await dead_letter(  # counts it in memestream_dlq_messages_total too
            self.producer,
            error,
            topic=MEME_REQUESTS.name,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            headers=headers,
            group=RENDER.group_id_for(self.settings.consumer_group_prefix),  # the app's conf.id
        )
        return outcome

    async def _process(
        self, request: MemeRequested, refused: RenderError | None = None
    ) -> MemeRendered:
        if refused is None:
            outcome = await self.render(request)
        else:
            outcome = MemeRendered.for_request(
                request, status=RenderStatus.FAILED, variants=[], render_ms=0.0, error=str(refused)
            )
        with tracer.start_as_current_span("postgres upsert meme"):
            async for attempt in AsyncRetrying(**_INFRA_RETRY):
                with attempt:
                    await self.memes.record_render(request, outcome)
        if outcome.variants:
            await self.drop_if_deleted(outcome)
        await self.announce(outcome)
        # Kafka away (a broker restart): wait it out holding the partition, as for the stores;
        # an agent that crashed here exhausted Faust's restarts and left a hung process.
        async for attempt in AsyncRetrying(**_KAFKA_RETRY):
            with attempt:
                await self.producer.send(MEME_RENDERED.name, outcome)
        async for attempt in AsyncRetrying(**_KAFKA_RETRY):
            with attempt:
                await self.producer.send(MEME_FEED.name, FeedEvent.for_render(outcome))
        latency = (datetime.now(UTC) - request.occurred_at).total_seconds()
        MEMES_GENERATED.labels(status=outcome.meme_status).inc()
        GENERATION_LATENCY.observe(latency)
        fields = {"meme_id": outcome.meme_id, "render_ms": outcome.render_ms, "latency_s": latency}
        log.info("meme %s %s", outcome.meme_id, outcome.status.value, extra=fields)
        return outcome

    async def announce(self, outcome: MemeRendered) -> None:
        """The status on the meme's pub/sub channel, once PostgreSQL holds it (see above)."""
        try:
            await publish_status(self.redis, outcome.meme_id, outcome.status.value)
        except REDIS_ERRORS as exc:
            log.warning("status of meme %s not published: %s", outcome.meme_id, exc)

    async def drop_if_deleted(self, outcome: MemeRendered) -> bool:
        """Removes the images just stored when the meme was deleted while it rendered.

        The API deletes the images its delete saw (the row as `soft_delete` locked it); a
        render recorded after that finds the row deleted (record_render leaves it so) and
        cleans up here, so either side removes them and no orphan is left.
        """
        async for attempt in AsyncRetrying(**_INFRA_RETRY):
            with attempt:
                record = await self.memes.get(outcome.meme_id)
        if record is None or record.status != "deleted":
            return False
        for variant in outcome.variants:
            async for attempt in AsyncRetrying(**_INFRA_RETRY):
                with attempt:
                    await asyncio.to_thread(self.storage.delete, variant.key)
        log.info("meme %s was deleted while rendering: images removed", outcome.meme_id)
        return True

    async def uploaded_template(
        self, template_id: str
    ) -> tuple[bytes, list[dict[str, Any]]] | None:
        """An uploaded template's image and boxes; None for the catalog's templates and for
        ids nobody uploaded (the renderer then refuses the id). Stores that are down are
        waited out, like every other store of the pipeline."""
        templates, storage = self.templates, self.storage
        async for attempt in AsyncRetrying(**_INFRA_RETRY):
            with attempt:
                record = await templates.upload(template_id)
                if record is None or not record.image_key:
                    return None
                try:
                    stored = await asyncio.to_thread(storage.get, record.image_key)
                except ObjectNotFound:
                    log.warning("template %s has no image at %s", template_id, record.image_key)
                    return None
        return stored.data, [{k: v for k, v in b.items() if k != "text"} for b in record.boxes]

    async def render(self, request: MemeRequested) -> MemeRendered:
        checked = None
        if self.moderation is not None:
            with tracer.start_as_current_span("moderate text"):
                checked = await self.moderation.check_request(request)
            if checked.rejected:
                return _rejected(request, checked)
        upload = await self.uploaded_template(request.template_id)
        try:
            attributes = {"template": request.template_id}
            with tracer.start_as_current_span("render", attributes=attributes):
                if upload is None:
                    rendered = await self.pool.render(
                        request.template_id, request.texts, self.options(request)
                    )
                else:
                    image, boxes = upload
                    rendered = await self.pool.render_upload(
                        image, boxes, request.texts, self.options(request)
                    )
        except RenderError as exc:
            return MemeRendered.for_request(
                request, status=RenderStatus.FAILED, variants=[], render_ms=0.0, error=str(exc)
            )
        except Exception as exc:  # a renderer bug must fail one meme, not the worker
            log.exception("render of %s failed unexpectedly", request.meme_id)
            return MemeRendered.for_request(
                request,
                status=RenderStatus.FAILED,
                variants=[],
                render_ms=0.0,
                error=f"internal render error ({type(exc).__name__})",
            )
        first = next(iter(rendered.variants.values()), None)
        RENDER_DURATION.labels(format=first.format if first else "none").observe(
            rendered.render_ms / 1000
        )
        ai_fields: dict[str, Any] = {}
        if self.moderation is not None and checked is not None:
            with tracer.start_as_current_span("moderate image"):
                checked = await self.moderation.check_render(checked, rendered, request.template_id)
            if checked.rejected:  # nothing of a rejected meme is stored
                return _rejected(request, checked, render_ms=rendered.render_ms)
            ai_fields = checked.event_fields()
        variants = await self.store(request.meme_id, rendered)
        return MemeRendered.for_request(
            request,
            status=RenderStatus.RENDERED,
            variants=variants,
            render_ms=rendered.render_ms,
            **ai_fields,
        )

    async def store(self, meme_id: str, rendered: RenderedMeme) -> list[ImageVariant]:
        async def put(size: str, data: bytes, extension: str, media_type: str) -> None:
            key = meme_key(meme_id, size, extension)
            with tracer.start_as_current_span("storage put", attributes={"key": key}):
                async for attempt in AsyncRetrying(**_INFRA_RETRY):
                    with attempt:
                        await asyncio.to_thread(self.storage.put, key, data, media_type)

        await asyncio.gather(
            *(
                put(size, image.data, image.format, image.media_type)
                for size, image in rendered.variants.items()
            )
        )
        return [
            ImageVariant(
                size=size,
                key=meme_key(meme_id, size, image.format),
                width=image.width,
                height=image.height,
                bytes=len(image.data),
                media_type=image.media_type,
            )
            for size, image in rendered.variants.items()
        ]


def _refusal(request: MemeRequested) -> RenderError | None:
    """Why the validator the API uses (domain.rendering.validation) refuses `request`."""
    try:
        check_request(request.texts, request.transform, request.filters)
    except RenderError as exc:
        return exc
    return None


def _rejected(request: MemeRequested, checked: Checked, render_ms: float = 0.0) -> MemeRendered:
    """Moderation refused the meme: a failure with the reason, never a silent drop."""
    return MemeRendered.for_request(
        request,
        status=RenderStatus.FAILED,
        variants=[],
        render_ms=render_ms,
        error=f"rejected by moderation ({checked.verdict.reason})",
        **checked.event_fields(),
    )


class PipelineHolder:
    """Builds the pipeline on first use, inside the worker's event loop."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self.pipeline: RenderPipeline | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> RenderPipeline:
        if self.pipeline is None:
            async with self._lock:
                if self.pipeline is None:
                    self.pipeline = await self._build()
        return self.pipeline

    async def _build(self) -> RenderPipeline:
        settings = self.settings
        db_pool = create_pool(settings)
        await db_pool.open(wait=False)
        storage = object_store(settings)
        await asyncio.to_thread(storage.ensure_bucket)
        render_pool = RenderPool(settings.worker_threads)
        await render_pool.warm()
        producer = EventProducer(settings, client_id=self.client_id)
        moderation = ModerationStep.create(settings)
        if moderation is not None:
            moderation.start_warm_up()
        return RenderPipeline(
            settings,
            producer,
            MemeRepository(db_pool),
            storage,
            render_pool,
            create_redis(settings),
            moderation,
            TemplateRepository(db_pool),
        )

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.producer.close()
            self.pipeline.pool.close()


def register(app: faust.App, settings: Settings) -> None:
    topic = app.topic(MEME_REQUESTS.name, key_serializer="raw", value_serializer="raw")
    holder = PipelineHolder(settings, client_id=f"{app.conf.id}-producer")

    @app.on_before_shutdown.connect
    def close_pipeline(app: faust.App, **_: Any) -> None:
        holder.close()

    @app.agent(topic, concurrency=settings.worker_threads * 2)
    async def render(stream: faust.StreamT[bytes]) -> None:
        pipeline = await holder.get()
        async for event in stream.events():
            message = event.message
            started = time.perf_counter()
            await pipeline.handle(
                event.value,
                key=event.key,
                partition=message.partition,
                offset=message.offset,
                headers=message_headers(message.headers),
            )
            labels = {"group": app.conf.id, "topic": message.topic}
            EVENTS_CONSUMED.labels(**labels).inc()
            EVENT_PROCESSING_DURATION.labels(**labels).observe(time.perf_counter() - started)
