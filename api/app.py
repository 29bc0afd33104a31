"""The ASGI app: `uvicorn api.app:app`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import problems
from api.dependencies import Services
from api.limits import BodySizeLimit
from api.routes import health, memes
from domain.settings import Settings, get_settings
from domain.templates import TemplateCatalog
from producers.producer import EventProducer
from sinks.postgres.memes import MemeRepository
from sinks.postgres.pool import create_pool
from sinks.storage import object_store


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = create_pool(settings)
        # The API starts even while PostgreSQL is down: generation still reaches Kafka.
        await pool.open(wait=False)
        storage = object_store(settings)
        producer = EventProducer(settings, client_id="memestream-api")
        app.state.services = Services(
            settings=settings,
            producer=producer,
            pool=pool,
            memes=MemeRepository(pool),
            storage=storage,
            catalog=TemplateCatalog.default(),
        )
        try:
            yield
        finally:
            await asyncio.to_thread(producer.close)
            await pool.close()

    app = FastAPI(
        title="Memestream",
        version="0.1.0",
        summary="Meme generation as a stream: requests, votes and views through Kafka.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(memes.router)
    return app


app = create_app()
