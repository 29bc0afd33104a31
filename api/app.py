"""The ASGI app: `uvicorn api.app:app`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import observability, problems, uvicorn_compat
from api.data_layer import DataLayer
from api.dependencies import Services
from api.feed import FeedRelay
from api.inference import InferenceClient
from api.json_depth import JsonDepthLimit
from api.limits import BodySizeLimit
from api.outbox import OutboxRelay
from api.ratelimit import RateLimitHeaders
from api.routes import (
    ai,
    analytics,
    auth,
    bare,
    export,
    feed,
    health,
    memes,
    rendering,
    review,
    search,
    templates,
    trending,
    vendor,
    votes,
    web,
)
from api.security_headers import SecurityHeaders
from domain import credentials
from domain.ai.suggest import TemplateSuggester
from domain.settings import Settings, get_settings
from domain.templates import TemplateCatalog
from producers.producer import EventProducer
from sinks.postgres.memes import MemeRepository
from sinks.postgres.outbox import OutboxStore
from sinks.postgres.partitions import maintain_partitions
from sinks.postgres.pool import create_pool
from sinks.postgres.template_lookup import TemplateLookup
from sinks.postgres.upload_refresher import UploadRefresher
from sinks.storage import object_store


def freeze_startup_heap() -> None:
    """Hides what start-up allocated from the garbage collector, once per process.

    About 170,000 objects (routes, validators, schemas, clients) live as long as the process,
    and each full collection walked them all: 70-390 ms on this 2-core machine, every few
    seconds under load, a stall every request in flight waited out (most of the reads' p95
    and p99). Frozen, a collection walks only what requests allocated. Once per process: a
    later app in the same process (tests) would otherwise freeze earlier apps' garbage.
    """
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    credentials.enforce(settings, "the API")  # production refuses default store credentials

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        observability.start(settings)
        pool = create_pool(settings)
        # The API starts even while PostgreSQL is down: generation still reaches Kafka.
        await pool.open(wait=False)
        storage = object_store(settings)
        producer = EventProducer(settings, client_id="memestream-api")
        catalog = TemplateCatalog.default()
        data = await DataLayer.open(settings, pool, producer, storage)
        app.state.services = Services(
            settings=settings,
            producer=producer,
            pool=pool,
            memes=MemeRepository(pool),
            storage=storage,
            catalog=catalog,
            template_lookup=TemplateLookup(catalog, data.templates),
            data=data,
            feed=FeedRelay(settings, producer),
            inference=InferenceClient(settings),
            suggester=TemplateSuggester(None, catalog),
            uploads=UploadRefresher(data.templates),
            outbox=OutboxRelay(settings, OutboxStore(pool), producer),
        )
        await app.state.services.feed.start()
        await app.state.services.inference.start()
        freeze_startup_heap()
        # Here rather than in a worker: every deployment runs the API, and it has the pool.
        partitions = asyncio.create_task(maintain_partitions(pool), name="memes-partitions")
        # In every API process: they stage the rows; replicas share them (api/outbox.py).
        relay = asyncio.create_task(app.state.services.outbox.run(), name="outbox-relay")
        try:
            yield
        finally:
            for task in (partitions, relay):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.services.feed.stop()
            await app.state.services.inference.stop()
            await app.state.services.data.close()
            await asyncio.to_thread(producer.close)
            await pool.close()
            observability.flush()

    # The feed's direct writes and drain, and slow-client deadlines, use uvicorn's internals.
    uvicorn_compat.check()
    app = FastAPI(
        title="Memestream",
        version="0.1.0",
        summary="Meme generation as a stream: requests, votes and views through Kafka.",
        lifespan=lifespan,
        telemetry=observability.TELEMETRY,
        # Any route may fail unexpectedly: `problems.install` answers that with this body.
        responses=problems.problem_responses(500),
    )
    problems.install(app)
    # Inside BodySizeLimit (added after it, so outer): it only ever buffers bounded bodies.
    app.add_middleware(JsonDepthLimit, max_depth=settings.max_json_depth)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        upload_max_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(SecurityHeaders)  # nosniff, no framing, and the pages' CSP
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(search.router)
    app.include_router(analytics.router)
    # Before any `/api/meme/{meme_id}` route, which would shadow `/api/meme/trending`.
    app.include_router(trending.router)
    # POST /api/meme/caption and POST /api/templates/suggest (no GET route to shadow).
    app.include_router(ai.router)
    app.include_router(bare.router)
    app.include_router(templates.router)
    app.include_router(export.router)
    app.include_router(votes.router)
    app.include_router(review.router)  # /api/admin/review: moderation's flagged memes
    for memes_router in memes.ROUTERS:
        app.include_router(memes_router)
    app.include_router(feed.router)
    app.include_router(rendering.router)
    app.include_router(web.router)
    app.include_router(vendor.router)  # /vendor: uPlot and Yjs from node_modules (package.json)
    app.mount("/static", web.static_files(), name="static")
    # Last, so its middlewares are outermost and see every response.
    observability.install(app)
    # Outermost of all: the live feed's long-lived streams skip the per-request stack.
    feed.install_fast_path(app)
    return app


app = create_app()
